"""Every public object is reachable from the top level and listed once in docs/api.md."""

import importlib
import pkgutil
import re
from collections import defaultdict
from pathlib import Path

import pytest

import ccr_metrics as cm

# In the quick tier (python -m pytest -m quick): a first signal in seconds.
pytestmark = pytest.mark.quick

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
    import ccr_metrics.analysis.breakdown
    import ccr_metrics.analysis.plots
    import ccr_metrics.analysis.report
    import ccr_metrics.analysis.results
    import ccr_metrics.analysis.stats
    import ccr_metrics.core.consistency
    import ccr_metrics.core.mrv
    import ccr_metrics.core.ranking
    import ccr_metrics.core.recall
    import ccr_metrics.harness
    import ccr_metrics.io
    import ccr_metrics.metrics
    import ccr_metrics.training.losses
    import ccr_metrics.training.sampling

    modules = [
        ccr_metrics.analysis.breakdown,
        ccr_metrics.core.consistency,
        ccr_metrics.harness,
        ccr_metrics.io,
        ccr_metrics.training.losses,
        ccr_metrics.metrics,
        ccr_metrics.core.mrv,
        ccr_metrics.analysis.plots,
        ccr_metrics.core.ranking,
        ccr_metrics.core.recall,
        ccr_metrics.analysis.report,
        ccr_metrics.analysis.results,
        ccr_metrics.training.sampling,
        ccr_metrics.analysis.stats,
    ]
    missing = {
        f"{module.__name__}.{name}"
        for module in modules
        for name in module.__all__
        if name not in cm.__all__ and not name.isupper()
    }
    assert missing == set()


def test_each_public_object_has_one_exporting_module():
    """Of the public modules, one lists each object in its ``__all__``: its home.

    Private modules (a part of the path starting with ``_``) and packages, which gather
    their own modules for the top level, do not count.
    """
    homes = defaultdict(list)
    for info in pkgutil.walk_packages(cm.__path__, "ccr_metrics."):
        parts = info.name.split(".")
        if info.ispkg or any(part.startswith("_") for part in parts):
            continue
        module = importlib.import_module(info.name)
        for name in getattr(module, "__all__", []):
            homes[name, id(getattr(module, name))].append(info.name)
    assert homes  # the walk found the modules
    shared = {name: modules for (name, _), modules in homes.items() if len(modules) > 1}
    assert shared == {}
