"""Released ranked lists: reading them, exact recall, and rank and MRV bounds over censoring.

Oracles: a naive loop over each query's list for ranks and recall, and a brute force
over every completion of the censored ranks for the MRV bounds. The published IGLUE
zero-shot text-to-image R@1 table is reproduced from the released lists.
"""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ccr_metrics.core._lists as core_lists
from ccr_metrics import ListsReport, evaluate_lists, load_ranked_lists
from ccr_metrics.cli import main

SHARED = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"
RESULTS = SHARED / "iglue" / "results" / "xflickrco"
MODELS = ("ctrl_muniter", "ctrl_xuniter", "uc2", "m3p")
LANGUAGES = ("en", "de", "es", "id", "ja", "ru", "tr", "zh")
needs_shared = pytest.mark.skipif(not RESULTS.is_dir(), reason="../shared/benchmarks is absent")


# --- oracles ---------------------------------------------------------------------------


def naive_rank_bounds(rows, positives, largest):
    """Per query: (position of a positive + 1, same) or (d + 1, largest[i]) if none is listed."""
    out = []
    for i, row in enumerate(rows):
        rank = None
        for p, item in enumerate(row):
            if item in positives[i]:
                rank = p + 1
                break
        out.append((rank, rank) if rank is not None else (len(row) + 1, largest[i]))
    return out


def brute_mrv(cells, reduction):
    """Smallest and largest mean spread over every completion of every instance at once.

    ``cells``: per instance, per language, a range of the values its rank can take.
    """
    spread = np.var if reduction == "variance" else np.std
    choices = [list(itertools.product(*instance)) for instance in cells]
    values = [np.mean([spread(c) for c in combo]) for combo in itertools.product(*choices)]
    return min(values), max(values)


def per_instance_brute(cells, reduction):
    """The same, instance by instance (for problems too large to enumerate at once)."""
    spread = np.var if reduction == "variance" else np.std
    lows, highs = [], []
    for instance in cells:
        values = [spread(c) for c in itertools.product(*instance)]
        lows.append(min(values))
        highs.append(max(values))
    return float(np.mean(lows)), float(np.mean(highs))


@st.composite
def problems(draw, max_images=6, max_languages=3):
    """Text-to-image lists: per language a depth and, per text, a top-d of a permutation."""
    n = draw(st.integers(2, max_images))
    languages = [f"l{i}" for i in range(draw(st.integers(2, max_languages)))]
    lists, depths = {}, {}
    for lang in languages:
        depth = draw(st.integers(1, n - 1))
        rows = [draw(st.permutations(range(n)))[:depth] for _ in range(n)]
        lists[lang], depths[lang] = np.array(rows), depth
    return n, lists, depths


def cells_of(n, lists, depths):
    """The values each image's rank can take in each language (text i is image i)."""
    bounds = {
        lang: naive_rank_bounds(rows.tolist(), [{i} for i in range(n)], [n] * n)
        for lang, rows in lists.items()
    }
    return [[range(bounds[lang][j][0], bounds[lang][j][1] + 1) for lang in lists] for j in range(n)]


# --- recall and rank bounds ------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(problems())
def test_recall_and_rank_bounds_match_a_naive_loop(problem):
    n, lists, depths = problem
    k = sorted({1, min(depths.values())})
    report = evaluate_lists(lists, n_images=n, k=k)
    for lang, rows in lists.items():
        expected = naive_rank_bounds(rows.tolist(), [{i} for i in range(n)], [n] * n)
        low, high = report.ranks[lang]["t2i"]
        assert list(zip(low.tolist(), high.tolist(), strict=True)) == expected
        for cut in k:
            hits = sum(1 for i in range(n) if i in rows[i][:cut].tolist())
            assert report.recall()[lang]["t2i"][cut] == hits / n
        means = report.rank_bounds()[lang]["t2i"]["mean"]
        assert means == pytest.approx(
            (np.mean([e[0] for e in expected]), np.mean([e[1] for e in expected]))
        )


@settings(max_examples=60, deadline=None)
@given(problems(), st.sampled_from(["variance", "std"]), st.booleans())
def test_mrv_bounds_equal_a_brute_force_over_completions(problem, reduction, by_sums):
    n, lists, depths = problem
    # by_sums: the upper bound's search over sums, which many distinct censoring
    # intervals take instead of enumerating counts.
    with mock.patch.object(core_lists, "ENUMERATION_LIMIT", 0 if by_sums else 4096):
        report = evaluate_lists(lists, n_images=n, k=1)
        low, high = report.mrv_bounds("t2i", reduction)
    expected = per_instance_brute(cells_of(n, lists, depths), reduction)
    assert (low, high) == pytest.approx(expected, abs=1e-12)


@st.composite
def boxes(draw):
    """Rows of integer intervals [low, high], some known (equal), some absent."""
    n, k = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    cell = st.tuples(st.integers(1, 8), st.integers(0, 5), st.booleans(), st.integers(0, 5))
    rows = [[draw(cell) for _ in range(k)] for _ in range(n)]
    low = np.array([[c[0] for c in row] for row in rows])
    high = low + np.array([[c[1] if c[2] else 0 for c in row] for row in rows])
    present = np.array([[c[3] > 0 for c in row] for row in rows])
    return low, high, present


@settings(max_examples=80, deadline=None)
@given(boxes(), st.booleans())
def test_spread_bounds_of_any_integer_box_equal_a_brute_force(box, by_sums):
    """Beyond what lists give: any bounds per cell, differing across languages."""
    low, high, present = box
    with mock.patch.object(core_lists, "ENUMERATION_LIMIT", 0 if by_sums else 4096):
        smallest, largest = core_lists.spread_bounds(low, high, present)
    for i in range(low.shape[0]):
        ranges = [range(low[i, j], high[i, j] + 1) for j in range(low.shape[1]) if present[i, j]]
        if len(ranges) < 2:
            assert np.isnan(smallest[i]) and np.isnan(largest[i])
            continue
        values = [np.var(c) for c in itertools.product(*ranges)]
        assert (smallest[i], largest[i]) == pytest.approx((min(values), max(values)), abs=1e-12)


def test_the_bounds_of_the_mean_are_the_means_of_the_bounds():
    """Enumerating the completions of all images at once gives the same bounds."""
    rng = np.random.default_rng(3)
    for _ in range(20):
        n = 3
        lists = {lang: np.array([rng.permutation(n)[:1] for _ in range(n)]) for lang in "ab"}
        cells = cells_of(n, lists, {"a": 1, "b": 1})
        report = evaluate_lists(lists, n_images=n, k=1)
        for reduction in ("variance", "std"):
            assert report.mrv_bounds("t2i", reduction) == pytest.approx(
                brute_mrv(cells, reduction), abs=1e-12
            )


def test_per_language_galleries_bound_censored_ranks_by_their_size():
    # en ranks 4 images, de only images 0, 1, 2: de's censored rank is 3, en's 3 or 4.
    lists = {"en": np.array([[1], [1], [0], [3]]), "de": np.array([[1], [1], [2]])}
    t2i = {"en": np.arange(4), "de": np.array([0, 1, 2])}
    report = evaluate_lists(lists, t2i, n_images=4, k=1, galleries={"de": [0, 1, 2]})
    assert report.ranks["de"]["t2i"][1].tolist() == [3, 1, 1]
    assert report.ranks["en"]["t2i"][1].tolist() == [4, 1, 4, 1]
    cells = [[range(2, 5), range(2, 4)], [range(1, 2), range(1, 2)], [range(2, 5), range(1, 2)]]
    assert report.mrv_instances("t2i") == 3  # image 3 is in en only
    assert report.mrv_bounds("t2i") == pytest.approx(brute_mrv(cells, "variance"))


def test_image_to_text_lists_with_several_captions():
    # Texts 0, 1 describe image 0, text 2 image 1, text 3 image 2 (one language).
    owner = np.array([0, 0, 2, 1])
    rows = np.array([[2, 1], [2, 3], [0, 1]])  # per image, its list of 2 of the 4 texts
    lists = {"en": rows, "de": np.array([[0, 2], [3, 0], [2, 3]])}
    report = evaluate_lists(
        lists, {"en": owner, "de": owner}, n_images=3, k=(1, 2), direction="i2t"
    )
    positives = [{t for t in range(4) if owner[t] == j} for j in range(3)]
    largest = [4 - len(p) + 1 for p in positives]
    for lang, given_rows in lists.items():
        expected = naive_rank_bounds(given_rows.tolist(), positives, largest)
        low, high = report.ranks[lang]["i2t"]
        assert list(zip(low.tolist(), high.tolist(), strict=True)) == expected
    bounds = {lang: naive_rank_bounds(r.tolist(), positives, largest) for lang, r in lists.items()}
    cells = [
        [range(bounds[lang][j][0], bounds[lang][j][1] + 1) for lang in lists] for j in range(3)
    ]
    assert report.mrv_bounds("i2t") == pytest.approx(brute_mrv(cells, "variance"))


def test_mrv_at_depth_and_consistency_against_naive_loops():
    rng = np.random.default_rng(7)
    n, depth = 30, 4
    lists = {lang: np.array([rng.permutation(n)[:depth] for _ in range(n)]) for lang in "abc"}
    report = evaluate_lists(lists, n_images=n, k=(1, 4))
    at_depth = np.array(
        [
            [
                next((p + 1 for p, x in enumerate(lists[lang][j]) if x == j), depth + 1)
                for lang in "abc"
            ]
            for j in range(n)
        ]
    )
    assert report.mrv_at_depth("t2i") == pytest.approx(np.var(at_depth, axis=1).mean())
    assert report.mrv_at_depth("t2i", "std") == pytest.approx(np.std(at_depth, axis=1).mean())
    # Every language has depth 4: setting censored ranks to 5 is the smallest completion.
    assert report.mrv_bounds("t2i")[0] == pytest.approx(report.mrv_at_depth("t2i"))
    for k in (1, 4):
        found = (at_depth <= k).sum(1)
        expected = {
            "all": np.mean(found == 3),
            "some": np.mean((found > 0) & (found < 3)),
            "none": np.mean(found == 0),
        }
        assert report.consistency("t2i", k) == pytest.approx(expected)
        flat = report.to_flat_dict()
        assert flat[f"t2i/consistent_none@{k}"] == pytest.approx(expected["none"])


def test_outputs_name_every_number_and_survive_save_and_load(tmp_path):
    lists = {
        "en": np.array([[0, 1], [1, 0], [3, 0], [3, 2]]),
        "de": np.array([[1, 0], [1, 2], [2, 3], [0, 1]]),
    }
    report = evaluate_lists(lists, n_images=4, k=(1, 2))
    flat = report.to_flat_dict()
    assert flat["en/t2i/R@1"] == 0.75 and flat["average/t2i/R@2"] == (3 / 4 + 3 / 4) / 2
    assert (flat["t2i/mrv_std/low"], flat["t2i/mrv_std/high"]) == report.mrv_bounds("t2i", "std")
    frame = report.to_frame()
    assert frame[["language", "beyond", "R@1"]].values.tolist() == [["en", 1, 0.75], ["de", 1, 0.5]]
    table = report.to_table()
    assert "75.00" in table and "[0.56, 1.19]" in table
    report.save(tmp_path / "r.json")
    again = ListsReport.load(tmp_path / "r.json")
    assert again.to_flat_dict() == flat
    assert again.ranks["en"]["t2i"][1].tolist() == report.ranks["en"]["t2i"][1].tolist()


# --- refusals --------------------------------------------------------------------------


def test_load_refuses_a_tampered_or_foreign_file(tmp_path):
    report = evaluate_lists(
        {"en": np.array([[0], [0]]), "de": np.array([[0], [1]])}, n_images=2, k=1
    )
    path = tmp_path / "r.json"
    report.save(path)
    document = json.loads(path.read_text())
    document["metrics"]["en/t2i/R@1"] = 0.9
    (tmp_path / "metric.json").write_text(json.dumps(document))
    with pytest.raises(ValueError, match=r"metric\.json: metrics\.en/t2i/R@1: saved 0\.9"):
        ListsReport.load(tmp_path / "metric.json")
    document = json.loads(path.read_text())
    document["lists"]["en"]["t2i"]["high"] = [1, 5]
    (tmp_path / "high.json").write_text(json.dumps(document))
    with pytest.raises(ValueError, match=r"ranks\.en\.t2i: query 1 has \(2, 5\)"):
        ListsReport.load(tmp_path / "high.json")
    (tmp_path / "other.json").write_text(json.dumps({"format": "ccr-metrics-report/3"}))
    with pytest.raises(ValueError, match="not a ranked-lists report"):
        ListsReport.load(tmp_path / "other.json")


@pytest.mark.parametrize(
    ("lists", "options", "message"),
    [
        ({"en": [[0, 1], [1, 0]]}, {"k": (1, 5)}, r"k=5 is beyond the depth 2 .* K <= 2"),
        (
            {"en": [[0, 2], [1, 0]]},
            {},
            r"lists\['en'\] holds 2 at query 0, position 1, which is not an image of the en",
        ),
        ({"en": [[0, 0], [1, 0]]}, {}, r"query 0 lists item 0 twice \(positions 0 and 1\)"),
        ({"en": [[0, 1], [1]]}, {}, r"query 1 has a list of another length"),
        ({"en": [[0.0, 1.0], [1.0, 0.0]]}, {}, r"integer indices, got dtype float64"),
        ({"en": [[-1, 1], [1, 0]]}, {}, r"holds -1 at query 0, position 0"),
        ({"en": [[0, 1]]}, {}, r"has 1 queries but there are 2 images; give text_to_image\['en'\]"),
        ({"en": [[0, 1], [1, 0]]}, {"text_to_image": {"en": [0]}}, r"2 queries, expected 1"),
        (
            {"en": [[0, 1], [1, 0]]},
            {"galleries": {"en": [1, 0]}},
            r"galleries\['en'\] must be .*sorted",
        ),
        (
            {"en": [[0], [1]]},
            {"text_to_image": {"en": [0, 0]}, "direction": "i2t"},
            r"image 1 has no en caption",
        ),
        ({"en": [[0, 1], [1, 0]]}, {"direction": "both"}, r"direction must be one of"),
        ([[0, 1], [1, 0]], {}, r"lists must map each language"),
    ],
)
def test_evaluate_lists_refuses_bad_input(lists, options, message):
    options = {"n_images": 2, "k": (1,), **options}
    text_to_image = options.pop("text_to_image", None)
    with pytest.raises(ValueError, match=message):
        evaluate_lists(lists, text_to_image, **options)


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


IDS = {"query_ids": ["q0", "q1"], "gallery_ids": ["a", "b", "c"]}
GOOD_RUN = "q0 Q0 a 1 0.9 r\nq0 Q0 b 2 0.5 r\nq1 Q0 c 1 0.8 r\nq1 Q0 a 2 0.1 r\n"


def test_trec_runs_are_read_in_query_order_through_ids_or_a_benchmark(tmp_path):
    run = write(
        tmp_path,
        "run.trec",
        "q1 Q0 c 1 0.8 r\nq1 Q0 a 2 0.1 r\n\nq0 Q0 a 1 0.9 r\nq0 Q0 b 2 0.9 r\n",
    )
    assert load_ranked_lists(run, **IDS).tolist() == [[0, 1], [2, 0]]
    benchmark = SimpleNamespace(image_ids=["a", "b", "c"], captions={"en": ["x", "y"]})
    run = write(tmp_path, "b.run", GOOD_RUN.replace("q0", "0").replace("q1", "1"))
    assert load_ranked_lists(run, benchmark=benchmark, language="en").tolist() == [[0, 1], [2, 0]]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("q0 Q0 a 1 0.9\n", r"line 1: 5 fields, expected 6"),
        (GOOD_RUN + "q9 Q0 a 1 0.9 r\n", r"line 5: unknown query id 'q9'"),
        (GOOD_RUN.replace("q1 Q0 c", "q1 Q0 z"), r"line 3: unknown item id 'z'"),
        (
            GOOD_RUN.replace("q0 Q0 b", "q0 Q0 a"),
            r"line 2: query 'q0' lists 'a' again \(first at rank 1\)",
        ),
        (GOOD_RUN.replace("q0 Q0 b 2", "q0 Q0 b 3"), r"line 2: query 'q0' has rank 3 after 1 item"),
        (
            GOOD_RUN.replace("b 2 0.5", "b 2 0.95"),
            r"line 2: query 'q0' scores rank 2 \(0.95\) above rank 1 .*out of order",
        ),
        (GOOD_RUN.replace("a 1 0.9", "a x 0.9"), r"line 1: rank 'x' is not a positive integer"),
        (GOOD_RUN.replace("a 1 0.9", "a 1 nan"), r"line 1: score 'nan' is not a finite number"),
        ("q0 Q0 a 1 0.9 r\n", r"query 'q1' has no line"),
        (GOOD_RUN.rsplit("q1 Q0 a", 1)[0], r"query 'q1' lists 1 items, query 'q0' 2"),
    ],
)
def test_trec_runs_are_refused_naming_file_and_line(tmp_path, text, message):
    run = write(tmp_path, "bad.trec", text)
    with pytest.raises(ValueError, match=r"bad\.trec.*" + message):
        load_ranked_lists(run, **IDS)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{}", r"expected a non-empty JSON list"),
        ("[[0, 1], 3]", r"query 1 is int, expected a list"),
        ("[[0, 1.5]]", r"query 0, position 1 is 1.5, not an integer index"),
        ("[[0, true]]", r"query 0, position 1 is True"),
        ("[[0, NaN]]", r"not a JSON file"),
        ("[[0, 1], [2]]", r"query 1 has a list of another length"),
        ("[[0, 1], [2, 2]]", r"query 1 lists item 2 twice"),
        ("[[0, 1], [2, -1]]", r"holds -1 at query 1, position 1"),
        (
            "[[0, 1], [2, 7]]",
            r"holds 7 at query 1, position 1, which is not a gallery index \(< 3\)",
        ),
        ("[[0, 1]]", r"1 queries, expected 2"),
    ],
)
def test_iglue_json_is_refused_naming_file_and_query(tmp_path, text, message):
    path = write(tmp_path, "test_en_0_result.json", text)
    with pytest.raises(ValueError, match=r"test_en_0_result\.json.*" + message):
        load_ranked_lists(path, **IDS)


def test_npy_and_format_refusals(tmp_path):
    np.save(tmp_path / "ok.npy", np.array([[2, 0], [1, 2]]))
    assert load_ranked_lists(tmp_path / "ok.npy").tolist() == [[2, 0], [1, 2]]
    assert load_ranked_lists(tmp_path / "ok.npy", format="npy").dtype == np.int64
    np.save(tmp_path / "float.npy", np.array([[2.0, 0.0]]))
    with pytest.raises(ValueError, match=r"float\.npy must hold integer indices"):
        load_ranked_lists(tmp_path / "float.npy")
    np.save(tmp_path / "flat.npy", np.array([2, 0]))
    with pytest.raises(ValueError, match=r"flat\.npy must be 2-D \[Q, d\]"):
        load_ranked_lists(tmp_path / "flat.npy")
    np.save(tmp_path / "objects.npy", np.array([[0, None]], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"objects\.npy"):
        load_ranked_lists(tmp_path / "objects.npy")
    write(tmp_path, "lists.csv", "0,1\n")
    with pytest.raises(ValueError, match=r"cannot tell the format .*'\.csv'; pass format="):
        load_ranked_lists(tmp_path / "lists.csv")
    with pytest.raises(ValueError, match=r"format must be one of"):
        load_ranked_lists(tmp_path / "ok.npy", format="tsv")
    with pytest.raises(FileNotFoundError):
        load_ranked_lists(tmp_path / "missing.json")
    run = write(tmp_path, "run.trec", GOOD_RUN)
    with pytest.raises(ValueError, match=r"a TREC run names queries and items by id"):
        load_ranked_lists(run)
    with pytest.raises(ValueError, match=r"query_ids repeats 'q0'"):
        load_ranked_lists(run, query_ids=["q0", "q0"], gallery_ids=["a"])
    benchmark = SimpleNamespace(image_ids=["a"], captions={"en": ["x"]})
    with pytest.raises(ValueError, match=r"benchmark= needs language= one of its languages \(en\)"):
        load_ranked_lists(run, benchmark=benchmark, language="de")
    with pytest.raises(ValueError, match=r"either as query_ids= and gallery_ids= or through"):
        load_ranked_lists(run, benchmark=benchmark, language="en", **IDS)


# --- the released IGLUE lists ----------------------------------------------------------


def published_ir_table():
    with open(RESULTS / "xFlickrCO_ir_0.csv", newline="") as f:
        return {row["model"]: row for row in csv.DictReader(f)}


def iglue_lists(model):
    return {
        lang: load_ranked_lists(RESULTS / "zero_shot" / model / f"test_{lang}_0_result.json")
        for lang in LANGUAGES
    }


@needs_shared
@pytest.mark.parametrize("model", MODELS)
def test_iglue_zero_shot_r1_table_is_reproduced_to_the_printed_digit(model):
    published = published_ir_table()[model]
    report = evaluate_lists(iglue_lists(model), n_images=2000, k=1)
    recall = report.recall()
    for lang in LANGUAGES:
        printed = published[lang]
        decimals = len(printed.partition(".")[2])
        assert round(100 * recall[lang]["t2i"][1], decimals) == float(printed), (model, lang)
    # The table's average is over the seven languages other than English.
    others = [100 * recall[lang]["t2i"][1] for lang in LANGUAGES if lang != "en"]
    assert np.mean(others) == pytest.approx(float(published["avg"]), abs=1e-9)


@needs_shared
def test_cli_prints_the_table_of_one_model(tmp_path, capsys):
    pattern = str(RESULTS / "zero_shot" / "uc2" / "test_{language}_0_result.json")
    argv = ["lists", "--lists", pattern, "--languages", *LANGUAGES, "--n-images", "2000"]
    assert main([*argv, "--json", str(tmp_path / "uc2.json")]) == 0
    out = capsys.readouterr().out
    published = published_ir_table()["uc2"]
    for lang in LANGUAGES:
        row = next(line for line in out.splitlines() if line.startswith(f"{lang} "))
        assert row.split()[1] == f"{float(published[lang]):.2f}", lang
    report = ListsReport.load(tmp_path / "uc2.json")
    low, high = report.mrv_bounds("t2i", "std")
    assert low <= report.mrv_at_depth("t2i", "std") + 1e-12 and low < high
    assert f"[{low:.2f}, {high:.2f}]" in out
    assert main([*argv, "--k", "1", "21"]) == 2
    assert "k=21 is beyond the depth 20" in capsys.readouterr().err
    assert main(["lists", "--lists", "x.json", "--languages", "en", "--n-images", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has no {language}" in err


@needs_shared
def test_cli_maps_a_benchmark(capsys):
    pytest.importorskip("ccr_metrics.datasets")
    pattern = str(RESULTS / "zero_shot" / "m3p" / "test_{language}_0_result.json")
    root = SHARED / "iglue" / "xFlickrCO"
    argv = ["lists", "--lists", pattern, "--languages", "en", "de", "--benchmark", "xflickrco"]
    assert main([*argv, "--root", str(root), "--k", "1"]) == 0
    out = capsys.readouterr().out
    assert next(line for line in out.splitlines() if line.startswith("de ")).split()[1] == "13.35"
    assert main([*argv, "--k", "1"]) == 2
    assert "--benchmark NAME and --root DIR go together" in capsys.readouterr().err
