"""Typed results: one key type for every number, iteration, flat names; old forms refused."""

import json
from pathlib import Path

import numpy as np
import pytest

import ccr_metrics as cm
from ccr_metrics import MetricKey

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "multi30k_synthetic.npz"
LANGUAGES = ["en", "de", "fr", "cs"]


@pytest.fixture(scope="module")
def report():
    d = np.load(EXAMPLE)
    return cm.evaluate(
        d["image"],
        {lang: d[f"text.{lang}"] for lang in LANGUAGES},
        {lang: d[f"text_to_image.{lang}"] for lang in LANGUAGES},
        device="cpu",
    )


def test_every_number_of_a_report_has_a_key_and_a_name(report):
    summary = report.to_dict()
    keys = list(report)
    assert len(keys) == len(set(keys)) == len(report)
    for key in keys:
        assert MetricKey.parse(key.name) == key
        assert report[key] == report[key.name]
    # The numbers are the ones to_dict nests.
    for lang in LANGUAGES:
        for d in ("i2t", "t2i"):
            for k in report.ks:
                assert report[f"{lang}/{d}/R@{k}"] == summary["recall"][lang][d][str(k)]
            assert report[f"{lang}/{d}/mean_rank"] == summary["mean_rank"][lang][d]
        assert report[f"{lang}/mean_recall"] == summary["mean_recall"][lang]
    assert report["average/mean_recall"] == summary["average"]["mean_recall"]
    assert report["t2i/mrv_std"] == summary["mrv"]["t2i"]["std"]


def test_flat_dict_is_json_ready_for_a_logger(report):
    flat = report.to_flat_dict()
    assert list(flat) == [key.name for key in report]
    assert all(isinstance(v, float) for v in flat.values())
    assert json.loads(json.dumps(flat)) == flat


def test_intervals_comparison_and_breakdown_share_the_key(report):
    confident = report.with_confidence(n_resamples=100)
    intervals = confident.intervals
    assert set(intervals) <= set(report)
    assert intervals["en/i2t/R@1"].estimate == report["en/i2t/R@1"]
    assert set(intervals.to_flat_dict()) == {
        f"{key.name}/{end}" for key in intervals for end in ("low", "high")
    }
    comparison = cm.compare(report, report, n_resamples=50, n_permutations=50)
    assert list(comparison) == list(intervals)
    assert comparison["average/i2t/R@5"].difference == 0.0
    breakdown = cm.consistency_breakdown(report)
    for key in breakdown:
        assert MetricKey.parse(key.name) == key
    assert breakdown.to_frame()["name"].tolist() == list(breakdown.to_flat_dict())


def test_tuple_keys_are_refused(report):
    # The first release's paths into to_dict() are no keys; a MetricKey (a tuple) is.
    intervals = report.with_confidence(n_resamples=50).intervals
    for result, legacy in (
        (intervals, ("recall", "en", "i2t", 1)),
        (report, ("mrv", "i2t", "std")),
    ):
        with pytest.raises(cm.InputError, match="is not a metric key"):
            result[legacy]
        assert legacy not in result
    assert report[MetricKey(None, "i2t", "mrv_std")] == report["i2t/mrv_std"]
    breakdown = cm.consistency_breakdown(report)
    with pytest.raises(cm.InputError, match="is not a metric name"):
        breakdown["languages"]  # the JSON form's fields are to_dict()'s


@pytest.mark.parametrize(
    "name", ["en/i2t/R@x", "en/i2t/recall", "en/R@1", "x", "en/i2t/mean_recall", ""]
)
def test_bad_names_are_refused(name):
    with pytest.raises(cm.InputError, match="is not a metric name"):
        MetricKey.parse(name)


def test_old_argument_names_are_refused():
    rng = np.random.default_rng(0)
    images = rng.standard_normal((8, 4)).astype(np.float32)
    texts = {"en": images + 0.1 * rng.standard_normal((8, 4)).astype(np.float32)}
    with pytest.raises(TypeError, match="ks"):
        cm.evaluate(images, texts, ks=(1,), device="cpu")
    with pytest.raises(TypeError, match="caption_reduce"):
        cm.evaluate_scores({"en": images @ texts["en"].T}, caption_reduce="min", device="cpu")
    with pytest.raises(TypeError, match="reduce"):
        cm.ranks_per_image([1.0, 2.0], [0, 0], 1, reduce="min")
    ranks, _ = cm.ranks_per_image([1.0, 2.0], [0, 0], 1, caption_reduction="min")
    assert ranks.tolist() == [1.0]


def test_metrics_with_a_prefix_give_the_report_names_and_numbers():
    from ccr_metrics.metrics import MeanRankVariance, RecallAtK

    rng = np.random.default_rng(1)
    images = rng.standard_normal((30, 8)).astype(np.float32)
    texts = {
        lang: images + scale * rng.standard_normal((30, 8)).astype(np.float32)
        for lang, scale in (("en", 0.5), ("de", 1.5))
    }
    report = cm.evaluate(images, texts, k=(1, 5), device="cpu")
    expected = report.to_flat_dict()
    mrv = MeanRankVariance(prefix="t2i")
    scores = []
    for lang, t in texts.items():
        metric = RecallAtK(k=(1, 5), prefix=f"{lang}/t2i")
        metric.update(t @ images.T, np.arange(30))
        for name, value in metric.compute().items():
            assert float(value) == pytest.approx(expected[name], abs=1e-12), name
        scores.append(t @ images.T)
    mrv.update(np.stack(scores, axis=1), np.arange(30))
    [(name, value)] = mrv.compute().items()
    assert float(value) == pytest.approx(expected[name])
    with pytest.raises(cm.InputError, match="prefix"):
        RecallAtK(prefix=3)
