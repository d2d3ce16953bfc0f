import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

import ccr_metrics as cm
from ccr_metrics import Comparison, Intervals, MetricKey, Report, bootstrap_intervals, compare
from ccr_metrics.analysis._report_ratios import ratios as report_ratios

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "multi30k_synthetic.npz"
LANGUAGES = ["en", "de", "fr", "cs"]


@pytest.fixture(scope="module")
def report() -> Report:
    d = np.load(EXAMPLE)
    return cm.evaluate(
        d["image"],
        {lang: d[f"text.{lang}"] for lang in LANGUAGES},
        {lang: d[f"text_to_image.{lang}"] for lang in LANGUAGES},
        device="cpu",
    )


@pytest.fixture(scope="module")
def other(report: Report) -> Report:
    """A second model on the same test set: noisier image embeddings."""
    d = np.load(EXAMPLE)
    noise = np.random.default_rng(0).standard_normal(d["image"].shape).astype(np.float32)
    return cm.evaluate(
        d["image"] + 0.3 * noise,
        {lang: d[f"text.{lang}"] for lang in LANGUAGES},
        {lang: d[f"text_to_image.{lang}"] for lang in LANGUAGES},
        device="cpu",
    )


def lookup(summary, key):
    node = summary
    for part in key:
        node = node[str(part)]
    return node


def leaf_keys(summary):
    """Every metric key of Report.to_dict() with an interval, found by walking it."""
    keys = []
    for lang, dirs in summary["recall"].items():
        keys += [MetricKey(lang, d, "recall", int(k)) for d, by_k in dirs.items() for k in by_k]
    keys += [MetricKey(lang, None, "mean_recall") for lang in summary["mean_recall"]]
    for d, by_k in summary["average"].items():
        if d == "mean_recall":
            keys.append(MetricKey("average", None, "mean_recall"))
        else:
            keys += [MetricKey("average", d, "recall", int(k)) for k in by_k]
    for d, values in summary["mrv"].items():
        keys += [MetricKey(None, d, f"mrv_{r}") for r in values or {}]
    return keys


def path_of(key):
    """Where a MetricKey's number sits in Report.to_dict()."""
    if key.metric == "recall":
        if key.language == "average":
            return ("average", key.direction, key.k)
        return ("recall", key.language, key.direction, key.k)
    if key.metric == "mean_recall":
        if key.language == "average":
            return ("average", "mean_recall")
        return ("mean_recall", key.language)
    return ("mrv", key.direction, key.reduction)


def simple_report(i2t, t2i=None, *, ks=(1, 5, 10), **settings) -> Report:
    """One caption per image and language; ``i2t``/``t2i`` are [N, L] rank matrices."""
    i2t = np.asarray(i2t, dtype=np.float64)
    t2i = i2t if t2i is None else np.asarray(t2i, dtype=np.float64)
    n, n_lang = i2t.shape
    names = ["en", "de", "fr"][:n_lang]
    return Report(
        ranks={lang: {"i2t": i2t[:, j], "t2i": t2i[:, j]} for j, lang in enumerate(names)},
        text_to_image={lang: np.arange(n) for lang in names},
        n_images=n,
        ks=ks,
        settings={"ties": "average", "caption_reduction": "first", **settings},
    )


def resampled_report(report: Report, drawn: np.ndarray) -> Report:
    """The report of the images ``drawn``, each with all its texts (the slow way)."""
    ranks, counts, text_to_image = {}, {}, {}
    for lang in report.languages:
        owner = report.text_to_image[lang]
        texts = [np.flatnonzero(owner == i) for i in drawn]
        picked = np.concatenate(texts)
        text_to_image[lang] = np.repeat(np.arange(len(drawn)), [len(t) for t in texts])
        ranks[lang] = {
            "i2t": report.ranks[lang]["i2t"][drawn],
            "t2i": report.ranks[lang]["t2i"][picked],
        }
        if report.counts is not None:
            by_dir = report.counts[lang]
            counts[lang] = {"i2t": by_dir["i2t"][drawn], "t2i": by_dir["t2i"][picked]}
    if report.counts is not None:
        return Report.from_counts(counts, text_to_image, len(drawn), report.ks, report.settings)
    return Report(ranks, text_to_image, len(drawn), report.ks, report.settings)


# --- point estimates and the resampling formulas ------------------------------------


def test_estimates_are_the_report_numbers_exactly(report):
    summary = report.to_dict()
    intervals = bootstrap_intervals(report, n_resamples=50)
    assert list(intervals.values) == leaf_keys(summary)
    for key, (estimate, low, high) in intervals.values.items():
        assert estimate == lookup(summary, path_of(key)), key
        assert low <= high


def test_a_resample_equals_the_report_of_the_resampled_images(report):
    ratios = report_ratios(report)
    rng = np.random.default_rng(3)
    for drawn in (np.arange(report.n_images), rng.integers(0, report.n_images, report.n_images)):
        weights = np.bincount(drawn, minlength=report.n_images).astype(np.float64)
        got = ratios.statistics(weights[None])[0]
        expected = resampled_report(report, drawn).to_dict()
        for key, value in zip(ratios.keys, got, strict=True):
            assert value == pytest.approx(lookup(expected, path_of(key)), rel=1e-12, abs=1e-12), key


def test_loaded_reports_give_the_same_intervals(report, tmp_path):
    report.save(tmp_path / "a.json")
    loaded = Report.load(tmp_path / "a.json")
    assert bootstrap_intervals(loaded, n_resamples=200) == bootstrap_intervals(
        report, n_resamples=200
    )


# --- intervals -----------------------------------------------------------------------


@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_degenerate_metric_gives_a_point_interval_without_warnings(method):
    rng = np.random.default_rng(0)
    report = simple_report(rng.integers(1, 11, size=(100, 2)))  # every rank <= 10
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        intervals = bootstrap_intervals(report, n_resamples=300, method=method)
    assert intervals["en/i2t/R@10"] == (1.0, 1.0, 1.0)
    assert intervals["average/t2i/R@10"] == (1.0, 1.0, 1.0)
    assert not np.isnan(intervals.to_frame()[["estimate", "low", "high"]].to_numpy()).any()


def test_identical_ranks_in_every_language_give_mrv_zero_interval():
    ranks = np.random.default_rng(0).integers(1, 50, size=(80, 1))
    report = simple_report(np.repeat(ranks, 3, axis=1))
    intervals = bootstrap_intervals(report, n_resamples=200, method="bca")
    assert intervals["i2t/mrv_variance"] == (0.0, 0.0, 0.0)


@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_95_percent_intervals_cover_the_true_recall(method):
    # Each image's query is a hit with probability p: R@1 estimates p.
    p_i2t, p_t2i, n, repetitions = 0.3, 0.7, 300, 200
    rng = np.random.default_rng(12345)
    covered = np.zeros(2)
    for repetition in range(repetitions):
        i2t = np.where(rng.random((n, 1)) < p_i2t, 1.0, 20.0)
        t2i = np.where(rng.random((n, 1)) < p_t2i, 1.0, 20.0)
        intervals = bootstrap_intervals(
            simple_report(i2t, t2i), n_resamples=1000, method=method, seed=repetition
        )
        for j, (direction, p) in enumerate((("i2t", p_i2t), ("t2i", p_t2i))):
            _, low, high = intervals[f"en/{direction}/R@1"]
            covered[j] += low <= p <= high
    coverage = covered / repetitions
    assert ((coverage >= 0.90) & (coverage <= 0.99)).all(), coverage


def scipy_interval(numerators, denominators, method, n_resamples=4000):
    result = scipy_stats.bootstrap(
        (numerators, denominators),
        lambda num, den, axis: num.sum(axis) / den.sum(axis),
        paired=True,
        vectorized=True,
        method=method,
        n_resamples=n_resamples,
        random_state=np.random.default_rng(7),
    )
    return result.confidence_interval.low, result.confidence_interval.high


@pytest.mark.parametrize("method", ["bca", "percentile"])
def test_intervals_agree_with_scipy_bootstrap(report, method):
    # Czech text-to-image R@1 (several languages lack captions) and image-to-text MRV.
    owner = report.text_to_image["cs"]
    t2i_hits = np.bincount(owner, weights=report.ranks["cs"]["t2i"] <= 1, minlength=300)
    t2i_queries = np.bincount(owner, minlength=300).astype(np.float64)
    ranks, mask = report.rank_matrix("i2t")
    spread = cm.instance_rank_variance(ranks, mask=mask)
    valid = ~np.isnan(spread)
    cases = {
        "cs/t2i/R@1": (t2i_hits, t2i_queries),
        "i2t/mrv_variance": (np.where(valid, spread, 0.0), valid.astype(np.float64)),
    }
    scipy_method = {"bca": "BCa", "percentile": "percentile"}[method]
    ours = bootstrap_intervals(report, n_resamples=4000, method=method, seed=1)
    for key, (num, den) in cases.items():
        estimate, low, high = ours[key]
        assert num.sum() / den.sum() == pytest.approx(estimate, rel=1e-12)
        expected_low, expected_high = scipy_interval(num, den, scipy_method)
        width = expected_high - expected_low
        assert low == pytest.approx(expected_low, abs=0.1 * width), key
        assert high == pytest.approx(expected_high, abs=0.1 * width), key


def test_bca_moves_a_skewed_interval(report):
    # MRV is right-skewed: BCa differs from the percentile interval there.
    key = "t2i/mrv_variance"
    percentile = bootstrap_intervals(report, n_resamples=2000)[key]
    bca = bootstrap_intervals(report, n_resamples=2000, method="bca")[key]
    assert percentile.estimate == bca.estimate
    assert (percentile.low, percentile.high) != (bca.low, bca.high)


def test_same_seed_same_intervals_other_seed_other_intervals(report):
    first = bootstrap_intervals(report, n_resamples=300, seed=5)
    assert first == bootstrap_intervals(report, n_resamples=300, seed=5)
    other = bootstrap_intervals(report, n_resamples=300, seed=6)
    assert first.values != other.values
    assert [v.estimate for v in first.values.values()] == [
        v.estimate for v in other.values.values()
    ]


def test_intervals_outputs(report):
    intervals = bootstrap_intervals(report, n_resamples=200, method="bca", seed=2)
    assert isinstance(intervals, Intervals)
    summary = json.loads(json.dumps(intervals.to_dict(), allow_nan=False))
    assert (summary["ci"], summary["method"], summary["n_resamples"], summary["seed"]) == (
        0.95,
        "bca",
        200,
        2,
    )
    for key, value in intervals.values.items():
        assert lookup(summary, path_of(key)) == list(value)
    frame = intervals.to_frame()
    assert len(frame) == len(intervals.values)
    average = frame[(frame.metric == "recall") & (frame.language == "average")]
    assert len(average) == 6
    assert frame.loc[frame.metric == "mrv", "reduction"].tolist() == ["variance", "std"] * 2
    assert str(frame["k"].dtype) == "Int64"


# --- paired comparison ---------------------------------------------------------------


def test_identical_reports_differ_by_zero_with_p_one(report):
    result = compare(report, report, n_resamples=300, n_permutations=300)
    assert isinstance(result, Comparison)
    for key, row in result.values.items():
        assert (row.difference, row.low, row.high, row.p_value) == (0.0, 0.0, 0.0, 1.0), key
        assert row.a == row.b == lookup(report.to_dict(), path_of(key))


def test_a_model_better_on_every_image_gets_the_smallest_p():
    rng = np.random.default_rng(0)
    worse = simple_report(rng.integers(20, 40, size=(200, 2)))
    better = simple_report(np.ones((200, 2)))
    result = compare(worse, better, n_resamples=200, n_permutations=999)
    for k in (1, 5, 10):
        row = result[f"average/i2t/R@{k}"]
        assert row.difference == 1.0
        assert row.p_value == 1 / 1000
        assert row.low == row.high == 1.0
    assert result["average/mean_recall"].p_value == 1 / 1000
    assert result["i2t/mrv_std"].difference < 0  # B's ranks agree across languages


def test_swapping_the_reports_flips_the_differences(report, other):
    ab = compare(report, other, n_resamples=500, n_permutations=500, seed=3)
    ba = compare(other, report, n_resamples=500, n_permutations=500, seed=3)
    assert ab.values.keys() == ba.values.keys()
    for key, row in ab.values.items():
        flipped = ba[key]
        assert (flipped.a, flipped.b) == (row.b, row.a)
        assert flipped.difference == -row.difference
        assert flipped.low == pytest.approx(-row.high, abs=1e-12)
        assert flipped.high == pytest.approx(-row.low, abs=1e-12)
        assert flipped.p_value == row.p_value


def test_paired_interval_uses_the_resamples_of_bootstrap_intervals(report, other):
    key = "average/t2i/R@1"
    result = compare(report, other, n_resamples=400, seed=9)[key]
    a = bootstrap_intervals(report, n_resamples=400, seed=9)[key]
    b = bootstrap_intervals(other, n_resamples=400, seed=9)[key]
    assert (result.a, result.b) == (a.estimate, b.estimate)
    assert result.difference == b.estimate - a.estimate
    # Paired: the interval of the difference is narrower than the two side by side.
    assert result.high - result.low < (a.high - a.low) + (b.high - b.low)


def test_a_real_difference_is_found(report, other):
    result = compare(report, other, method="bca")
    row = result["average/t2i/R@1"]
    assert row.difference < 0 and row.high < 0 and row.p_value < 0.01
    assert row.p_value >= 1 / 2001


def test_compare_works_on_loaded_reports_and_other_language_orders(report, tmp_path):
    report.save(tmp_path / "a.json")
    loaded = Report.load(tmp_path / "a.json")
    reordered = Report.from_counts(
        {lang: report.counts[lang] for lang in reversed(report.languages)},
        {lang: report.text_to_image[lang] for lang in reversed(report.languages)},
        report.n_images,
        report.ks,
        report.settings,
    )
    for b in (loaded, reordered):
        result = compare(report, b, n_resamples=100, n_permutations=100)
        assert list(result.values) == leaf_keys(report.to_dict())
        for key, row in result.values.items():
            assert row.difference == pytest.approx(0.0, abs=1e-9), key
            assert row.p_value == 1.0, key


def test_comparison_outputs(report, other):
    result = compare(report, other, n_resamples=300, n_permutations=300)
    summary = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert summary["difference"] == "b - a"
    row = result["fr/t2i/R@1"]
    assert lookup(summary, ("recall", "fr", "t2i", 1)) == row._asdict()
    frame = result.to_frame()
    assert list(frame.columns) == [
        *["name", "metric", "language", "direction", "k", "reduction"],
        *["a", "b", "difference", "low", "high", "p_value"],
    ]
    assert frame["name"].tolist() == [key.name for key in result]
    assert len(frame) == len(result.values)
    table = result.to_table()
    line = next(x for x in table.splitlines() if x.startswith("fr t2i R@1 "))
    assert f"  {100 * row.difference:+.2f}  " in line
    assert f"[{100 * row.low:+.2f}, {100 * row.high:+.2f}]" in line
    assert re.search(r"p=\d\.\d{3}$", line)
    mrv = next(x for x in table.splitlines() if x.startswith("MRV t2i variance"))
    assert f"{result['t2i/mrv_variance'].difference:+.2f}" in mrv


def changed(report: Report, **fields) -> Report:
    args = {
        "ranks": report.ranks,
        "text_to_image": report.text_to_image,
        "n_images": report.n_images,
        "ks": report.ks,
        "settings": report.settings,
    }
    return Report(**{**args, **fields})


@pytest.mark.parametrize(
    ("make_b", "match"),
    [
        (lambda r: simple_report(np.ones((41, 2))), "n_images 40 != 41"),
        (lambda r: simple_report(np.ones((40, 3))), "different languages"),
        (
            lambda r: changed(
                r, text_to_image={**r.text_to_image, "de": r.text_to_image["de"][::-1]}
            ),
            r"text_to_image\['de'\]",
        ),
        (
            lambda r: changed(r, ranks={**r.ranks, "de": {"i2t": r.ranks["de"]["i2t"]}}),
            "directions",
        ),
        (lambda r: changed(r, settings={**r.settings, "ties": "optimistic"}), "ties"),
        (
            lambda r: changed(r, settings={**r.settings, "caption_reduction": "min"}),
            "caption_reduction",
        ),
        (lambda r: changed(r, ks=(1, 5)), "ks"),
    ],
)
def test_compare_refuses_different_test_sets_and_settings(make_b, match):
    a = simple_report(np.ones((40, 2)))
    with pytest.raises(ValueError, match=match):
        compare(a, make_b(a), n_resamples=10, n_permutations=10)


# --- options -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"ci": 0.0}, "ci"),
        ({"ci": 1.0}, "ci"),
        ({"ci": 95}, "ci"),
        ({"ci": float("nan")}, "ci"),
        ({"n_resamples": 0}, "n_resamples"),
        ({"n_resamples": 2.5}, "n_resamples"),
        ({"n_resamples": True}, "n_resamples"),
        ({"method": "basic"}, "method"),
    ],
)
def test_bad_options_are_refused_by_name(options, name):
    report = simple_report(np.ones((10, 2)))
    with pytest.raises(ValueError, match=f"^{name} "):
        bootstrap_intervals(report, **options)
    with pytest.raises(ValueError, match=f"^{name} "):
        compare(report, report, **options)


def test_bad_permutation_count_is_refused_by_name():
    report = simple_report(np.ones((10, 2)))
    with pytest.raises(ValueError, match=r"^n_permutations "):
        compare(report, report, n_permutations=0)
