"""Every public object is reachable from the top level and listed once in docs/api.md."""

import re
from pathlib import Path

import ccr_metrics as cm

API = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def listed() -> list[str]:
    return re.findall(r"^\| `([\w]+)` \|", API.read_text(), re.MULTILINE)


def test_docs_api_lists_every_export_once():
    names = listed()
    repeated = sorted({n for n in names if names.count(n) > 1})
    assert repeated == []
    assert sorted(names) == sorted(cm.__all__)


def test_every_export_resolves():
    for name in cm.__all__:
        assert getattr(cm, name) is not None, name


def test_submodules_export_nothing_the_top_level_lacks():
    """A public name of a public module is also a top-level name (or a module constant)."""
    import ccr_metrics.breakdown
    import ccr_metrics.consistency
    import ccr_metrics.harness
    import ccr_metrics.io
    import ccr_metrics.losses
    import ccr_metrics.metrics
    import ccr_metrics.mrv
    import ccr_metrics.plots
    import ccr_metrics.ranking
    import ccr_metrics.recall
    import ccr_metrics.report
    import ccr_metrics.results
    import ccr_metrics.sampling
    import ccr_metrics.stats

    modules = [
        ccr_metrics.breakdown,
        ccr_metrics.consistency,
        ccr_metrics.harness,
        ccr_metrics.io,
        ccr_metrics.losses,
        ccr_metrics.metrics,
        ccr_metrics.mrv,
        ccr_metrics.plots,
        ccr_metrics.ranking,
        ccr_metrics.recall,
        ccr_metrics.report,
        ccr_metrics.results,
        ccr_metrics.sampling,
        ccr_metrics.stats,
    ]
    missing = {
        f"{module.__name__}.{name}"
        for module in modules
        for name in module.__all__
        if name not in cm.__all__ and not name.isupper()
    }
    assert missing == set()
