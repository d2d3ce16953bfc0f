"""Reports, intervals and comparisons check themselves when built and when loaded.

Each refused case names the field and the first offending position; valid reports still
round-trip exactly, intervals included.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import ccr_metrics as cm
from ccr_metrics import Comparison, Difference, Interval, Intervals, MetricKey, Report
from ccr_metrics.cli import main

# The fixtures leave some images without a text in a language and rank every language
# among all images on purpose: the mixed-gallery warning (test_galleries.py) is expected.
pytestmark = pytest.mark.filterwarnings("ignore:the texts of the languages cover:UserWarning")


def hand_made(**changes):
    """Two languages, four images; German captions two of them (NaN i2t elsewhere)."""
    fields = {
        "ranks": {
            "en": {"i2t": np.array([1.0, 2.0, 1.0, 3.0]), "t2i": np.array([1.0, 1.0, 2.0, 4.0])},
            "de": {"i2t": np.array([1.0, np.nan, 2.0, np.nan]), "t2i": np.array([2.0, 1.0])},
        },
        "text_to_image": {"en": np.arange(4), "de": np.array([0, 2])},
        "n_images": 4,
        "ks": (1, 2),
    }
    return Report(**{**fields, **changes})


def ranks_with(lang, direction, values):
    report = hand_made()
    return {**report.ranks, lang: {**report.ranks[lang], direction: np.asarray(values)}}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"n_images": 2.5}, r"^n_images must be a positive integer, got 2.5"),
        ({"n_images": 0}, r"^n_images must be a positive integer"),
        ({"ks": (0, -5)}, r"^ks: 0 at position 0 is not a positive integer"),
        ({"ks": ()}, r"^ks must be a non-empty sequence"),
        ({"ks": (1, 1)}, r"^ks: 1 is given twice"),
        ({"settings": ["ties"]}, r"^settings must be a mapping"),
        ({"settings": {"ties": "sometimes"}}, r"^settings.ties must be one of"),
        ({"settings": {"ties": "expected"}}, r"needs the rank counts"),
        ({"settings": {"caption_reduction": "last"}}, r"^settings.caption_reduction must be"),
        ({"ranks": {}}, r"^ranks: no language"),
        ({"ranks": [1.0]}, r"^ranks: expected a mapping"),
        (
            {"ranks": {"en": {}}, "text_to_image": {"en": np.arange(4)}},
            r"^ranks.en: no direction",
        ),
        (
            {"ranks": {"en": {"x2y": [1.0]}}, "text_to_image": {"en": np.arange(4)}},
            r"^ranks.en: unknown direction 'x2y'",
        ),
        (
            {"ranks": ranks_with("en", "i2t", [1.0, 2.0])},
            r"^ranks.en.i2t: 2 values, expected 4 \(n_images\)$",
        ),
        (
            {"ranks": ranks_with("de", "t2i", [1.0, 1.0, 1.0])},
            r"^ranks.de.t2i: 3 values, expected 2 \(the texts of text_to_image.de\)$",
        ),
        ({"ranks": ranks_with("en", "i2t", [[1.0]] * 4)}, r"^ranks.en.i2t: expected a 1-D array"),
        ({"ranks": ranks_with("en", "i2t", ["1"] * 4)}, r"^ranks.en.i2t: expected a 1-D array"),
        (
            {"ranks": ranks_with("en", "i2t", [1.0, 0.5, 1.0, 1.0])},
            r"^ranks.en.i2t: 0.5 at image 1 is out of range \[1, 4\]",
        ),
        (
            {"ranks": ranks_with("en", "t2i", [1.0, 1.0, 5.0, 1.0])},
            r"^ranks.en.t2i: 5.0 at text 2 is out of range \[1, 4\] .*the 4 images",
        ),
        (
            {"ranks": ranks_with("en", "i2t", [1.0, np.inf, 1.0, 1.0])},
            r"^ranks.en.i2t: inf at image 1 is out of range",
        ),
        (
            {"ranks": ranks_with("en", "i2t", [1.0, np.nan, 1.0, 1.0])},
            r"^ranks.en.i2t: NaN at image 1, which is a query",
        ),
        (
            {"ranks": ranks_with("de", "i2t", [1.0, 1.0, 2.0, np.nan])},
            r"^ranks.de.i2t: 1.0 at image 1, which has no text in 'de' \(expected NaN",
        ),
        ({"text_to_image": {"en": np.arange(4)}}, r"^text_to_image: no entry for language 'de'"),
        (
            {"text_to_image": {"en": np.arange(4), "de": [0, 2], "fr": [0]}},
            r"^text_to_image: language 'fr' has no ranks",
        ),
        (
            {"text_to_image": {"en": np.array([0, 1, 2, 9]), "de": [0, 2]}},
            r"^text_to_image.en: image 9 at text 3 is out of range \[0, 4\) \(n_images\)",
        ),
        (
            {"text_to_image": {"en": np.arange(4.0), "de": [0, 2]}},
            r"^text_to_image.en: expected a 1-D array of integers",
        ),
        (
            {"text_to_image": {"en": np.arange(4), "de": np.zeros(0, dtype=int)}},
            r"^text_to_image.de: no texts",
        ),
        ({"intervals": {"en/i2t/R@1": (0.5, 0.4, 0.6)}}, r"^intervals: expected Intervals"),
    ],
)
def test_inconsistent_reports_are_refused_naming_the_field(changes, message):
    with pytest.raises(cm.InputError, match=message):
        hand_made(**changes)


def test_the_hand_made_report_is_valid_and_normalised():
    report = hand_made(ks=[2, 1], text_to_image={"en": [0, 1, 2, 3], "de": [0, 2]})
    assert report.ks == (2, 1)
    assert report.text_to_image["en"].dtype == np.int64
    assert report.recall()["de"]["i2t"] == {2: 1.0, 1: 0.5}


def counted():
    images = np.eye(4, dtype=np.float32)
    texts = {"en": images + 0.1, "de": images[[0, 2]]}
    return cm.evaluate(images, texts, {"de": np.array([0, 2])}, k=(1, 2), device="cpu")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c["en"].pop("t2i"), r"^counts.en: directions \['i2t'\] differ"),
        (lambda c: c.pop("de"), r"^counts: no entry for language 'de'"),
        (lambda c: c["en"].update(i2t={"above": [0]}), r"^counts.en.i2t: expected RankCounts"),
        (
            lambda c: c["en"].update(i2t=c["en"]["i2t"][:3]),
            r"^counts.en.i2t: 3 queries, expected 4 \(n_images\)$",
        ),
        (
            lambda c: c["de"].update(
                i2t=cm.RankCounts(np.zeros(4, int), np.zeros(4, int), np.array([1, 1, 1, 0]))
            ),
            r"^counts.de.i2t.tied_positives: 1 at image 1, which has no text in 'de'",
        ),
        (
            lambda c: c["en"].update(
                t2i=cm.RankCounts(np.array([0, 9, 0, 0]), np.zeros(4, int), np.ones(4, int))
            ),
            r"^counts.en.t2i: text 1 counts 10 items .* more than the 4 images",
        ),
    ],
)
def test_inconsistent_counts_are_refused_naming_the_field(edit, message):
    report = counted()
    counts = {lang: dict(dirs) for lang, dirs in report.counts.items()}
    edit(counts)
    with pytest.raises(cm.InputError, match=message):
        Report(report.ranks, report.text_to_image, 4, report.ks, report.settings, None, counts)


def test_ranks_that_are_not_what_the_counts_give_are_refused():
    report = counted()
    ranks = {**report.ranks, "en": {**report.ranks["en"], "t2i": report.ranks["en"]["t2i"] + 1}}
    with pytest.raises(cm.InputError, match=r"^ranks.en.t2i: 2.0 at text 0, but counts.en.t2i"):
        Report(ranks, report.text_to_image, 4, report.ks, report.settings, None, report.counts)


def test_intervals_must_name_the_reports_numbers():
    report = hand_made()
    good = report.with_confidence(n_resamples=20).intervals
    unknown = {**good.values, MetricKey("fr", "i2t", "recall", 1): Interval(0.5, 0.4, 0.6)}
    with pytest.raises(cm.InputError, match=r"^intervals\['fr/i2t/R@1'\]: the report has no"):
        hand_made(intervals=Intervals(0.95, "percentile", 20, 0, unknown))
    moved = {**good.values, MetricKey("en", "i2t", "recall", 1): Interval(0.1, 0.0, 0.2)}
    with pytest.raises(cm.InputError, match=r"estimate 0.1 is not the report's number 0.5"):
        hand_made(intervals=Intervals(0.95, "percentile", 20, 0, moved))


KEY = MetricKey("en", "i2t", "recall", 1)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ci": 1.5}, r"^Intervals.ci must be a level in \(0, 1\)"),
        ({"method": "basic"}, r"^Intervals.method must be one of"),
        ({"n_resamples": 0}, r"^Intervals.n_resamples must be a positive integer"),
        ({"seed": 1.5}, r"^Intervals.seed must be a non-negative integer or None"),
        ({"values": {"en/i2t/R@1": (0.5, 0.4, 0.6)}}, r"key 'en/i2t/R@1' is not a MetricKey"),
        ({"values": {KEY: (0.5, 0.6, 0.4)}}, r"^intervals\['en/i2t/R@1'\]: low 0.6 is above"),
        ({"values": {KEY: (0.5, math.nan, 0.6)}}, r"undefined at both ends or at neither"),
        ({"values": {KEY: (0.5, 0.4)}}, r"expected 3 numbers \(estimate, low, high\)"),
        ({"values": {KEY: (0.5, -math.inf, 0.6)}}, r"low is infinite"),
    ],
)
def test_inconsistent_intervals_are_refused(options, message):
    fields = {"ci": 0.95, "method": "percentile", "n_resamples": 10, "seed": 0, "values": {}}
    with pytest.raises(cm.InputError, match=message):
        Intervals(**{**fields, **options})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n_permutations": -1}, r"^Comparison.n_permutations must be a positive integer"),
        ({"n_images": 0}, r"^Comparison.n_images must be a positive integer"),
        ({"names": ("A",)}, r"^Comparison.names must be two strings"),
        (
            {"values": {KEY: (0.5, 0.7, 0.3, 0.1, 0.3, 0.5)}},
            r"^comparison\['en/i2t/R@1'\]: difference 0.3 is not b - a = 0.7 - 0.5",
        ),
        ({"values": {KEY: (0.5, 0.7, 0.2, 0.3, 0.1, 0.5)}}, r"low 0.3 is above high 0.1"),
        ({"values": {KEY: (0.5, 0.7, 0.2, 0.1, 0.3, 0.0)}}, r"p_value 0.0 is not in \(0, 1\]"),
    ],
)
def test_inconsistent_comparisons_are_refused(options, message):
    fields = {
        "ci": 0.95,
        "method": "percentile",
        "n_resamples": 10,
        "n_permutations": 10,
        "seed": 0,
        "n_images": 4,
        "values": {KEY: Difference(0.5, 0.7, 0.2, 0.1, 0.3, 0.5)},
    }
    Comparison(**fields)  # the control: valid as it stands
    with pytest.raises(cm.InputError, match=message):
        Comparison(**{**fields, **options})


# ------------------------------------------------------------------- loading


@pytest.fixture
def saved(tmp_path):
    report = counted().with_confidence(n_resamples=30)
    path = tmp_path / "a.json"
    report.save(path)
    return report, path


def edited(path, edit):
    document = json.loads(path.read_text())
    edit(document)
    out = path.with_name("edited.json")
    out.write_text(json.dumps(document))
    return out


def test_valid_reports_round_trip_exactly(saved, tmp_path):
    report, path = saved
    loaded = Report.load(path)
    assert loaded.to_dict() == report.to_dict()
    assert loaded.intervals == report.intervals
    for lang in report.languages:
        for d in report.ranks[lang]:
            np.testing.assert_array_equal(loaded.ranks[lang][d], report.ranks[lang][d])
            np.testing.assert_array_equal(
                loaded.counts[lang][d].above, report.counts[lang][d].above
            )
    loaded.save(tmp_path / "again.json")
    assert (tmp_path / "again.json").read_text() == path.read_text()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda d: d["ranks"]["en"].update(i2t=[1.0] * 3),
            r"ranks.en.i2t: 3 values, expected 4 \(n_images\)",
        ),
        (lambda d: d.update(n_images=5), r"counts.en.i2t: 4 queries, expected 5 \(n_images\)"),
        (
            lambda d: d["text_to_image"]["de"].__setitem__(1, 7),
            r"text_to_image.de: image 7 at text 1 is out of range \[0, 4\)",
        ),
        (
            lambda d: d["settings"].update(ks=[0, -5]),
            r"settings.ks: 0 at position 0 is not a positive integer",
        ),
        (lambda d: d["settings"].pop("ks"), r"settings.ks: missing"),
        (
            lambda d: d.update(format="ccr-metrics-report/4"),
            r"format 'ccr-metrics-report/4' is not one this release of ccr-metrics reads .*upgrade",
        ),
        (
            lambda d: d.update(format="ccr-metrics-mrv/1"),
            r"not a ccr-metrics report: format \"ccr-metrics-mrv/1\"",
        ),
        (lambda d: d.pop("format"), r"not a ccr-metrics report: no 'format' field"),
        (
            lambda d: d["recall"]["en"]["i2t"].update({"1": 0.25}),
            r"recall.en.i2t.1: the file says 0.25, its counts give 1.0",
        ),
        (lambda d: d["mean_rank"]["de"].update(t2i=9.0), r"mean_rank.de.t2i: the file says 9.0"),
        (
            lambda d: d["recall"]["en"]["i2t"].update({"5": 1.0}),
            r"recall.en.i2t.5: in the file, but its counts hold no such",
        ),
        (lambda d: d.pop("mrv"), r"mrv: missing"),
        (
            lambda d: d["counts"]["en"]["t2i"]["above"].__setitem__(2, -1),
            r"counts.en.t2i.above: -1 at position 2; counts are >= 0",
        ),
        (
            lambda d: d["counts"]["en"]["t2i"]["above"].__setitem__(2, "0"),
            r"counts.en.t2i.above: \"0\" at position 2 is not an integer",
        ),
        (
            lambda d: d["counts"]["en"]["t2i"]["above"].pop(),
            r"counts.en.t2i.tied_negatives: 4 values, expected 3 as counts.en.t2i.above",
        ),
        (
            lambda d: d["counts"]["en"].update(t2i=[1, 2]),
            r"counts.en.t2i: expected an object \{...\}, got an array",
        ),
        (
            lambda d: d["interval_values"].update({"en/i2t/R@1": [1.0, 0.9]}),
            r"interval_values.en/i2t/R@1: expected \[estimate, low, high\]",
        ),
        (
            lambda d: d["interval_values"].update({"en/i2t/R@1": [1.0, 0.9, 0.8]}),
            r"interval_values: intervals\['en/i2t/R@1'\]: low 0.9 is above high 0.8",
        ),
        (
            lambda d: d["confidence"].update(method="basic"),
            r"confidence.method: Intervals.method must be one of",
        ),
        (
            lambda d: d.pop("interval_values"),
            r"interval_values: missing \(it goes with confidence\)",
        ),
        (
            lambda d: d["intervals"]["recall"]["en"]["i2t"].update({"1": [1.0, 0.0, 1.0]}),
            r"intervals.recall.en.i2t.1\[1\]: the file says 0.0",
        ),
    ],
)
def test_edited_files_are_refused_naming_the_file_and_the_field(saved, edit, message):
    _, path = saved
    bad = edited(path, edit)
    with pytest.raises(cm.InputError, match=f"^{bad}: .*{message}"):
        Report.load(bad)


def test_files_that_are_not_json_reports(tmp_path):
    cases = {
        "nan.json": ('{"format": NaN}', "NaN is not JSON"),
        "cut.json": ('{"format": "ccr-metrics-report/2", "n_', "not a JSON report: "),
        "list.json": ("[1, 2]", "holds an array, not an object"),
        "bytes.json": (b"\xff\xfe{", "not UTF-8 text"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        with pytest.raises(cm.InputError, match=f"^{path}: .*{message}"):
            Report.load(path)
    with pytest.raises(FileNotFoundError):
        Report.load(tmp_path / "absent.json")


def test_format_1_is_read_as_ranks_only_without_intervals(saved, tmp_path):
    report, path = saved
    document = json.loads(path.read_text())
    for key in ("counts", "interval_values", "mean_rank", "median_rank", "intervals"):
        document.pop(key)
    document["format"] = "ccr-metrics-report/1"
    document["settings"]["ties"] = "optimistic"
    document["recall"] = report.with_ties("optimistic").to_dict()["recall"]
    document["mean_recall"] = report.with_ties("optimistic").to_dict()["mean_recall"]
    document["average"] = report.with_ties("optimistic").to_dict()["average"]
    document["mrv"] = report.with_ties("optimistic").to_dict()["mrv"]
    document["ranks"] = {
        lang: {d: [None if math.isnan(x) else x for x in r.tolist()] for d, r in dirs.items()}
        for lang, dirs in report.with_ties("optimistic").ranks.items()
    }
    old = tmp_path / "old.json"
    old.write_text(json.dumps(document))
    loaded = Report.load(old)
    assert loaded.counts is None and loaded.intervals is None
    assert loaded.recall() == report.with_ties("optimistic").recall()
    document["recall"]["en"]["t2i"]["1"] = 0.5
    old.write_text(json.dumps(document))
    with pytest.raises(cm.InputError, match=r"recall.en.t2i.1: the file says 0.5, its ranks give"):
        Report.load(old)


# ------------------------------------------------------------------------- CLI


def test_compare_names_the_file_and_the_field(saved, capsys):
    _, path = saved
    short = edited(path, lambda d: d["ranks"]["en"].update(i2t=[1.0] * 3))
    assert main(["compare", str(path), str(short)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    [line] = err.strip().splitlines()
    assert line.startswith(f"ccr-metrics: error: {short}: ranks.en.i2t: 3 values, expected 4")


def test_compare_of_different_test_sets_says_what_differs(saved, tmp_path, capsys):
    _, path = saved
    images = np.eye(5, dtype=np.float32)
    other = tmp_path / "five.json"
    cm.evaluate(images, {"en": images + 0.1}, k=(1, 2), device="cpu").save(other)
    assert (
        main(["compare", str(path), str(other), "--n-resamples", "10", "--permutations", "10"]) == 2
    )
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line == (
        f"ccr-metrics: error: {path} (A) and {other} (B): report_a and report_b are over "
        "different test sets: n_images 4 != 5"
    )
