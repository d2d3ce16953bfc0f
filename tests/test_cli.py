"""The ccr-metrics command end to end: files in, table / JSON / CSV / exit status out.

Numbers are checked against a naive oracle: a per-query Python loop over the scores.
"""

from __future__ import annotations

import json
import math
import pickle
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from cli_stderr import only_the_mixed_gallery_warning
from early import early, outputs, popen, running
from safetensors.torch import save_file

import ccr_metrics as cm
from ccr_metrics import cli
from ccr_metrics.cli import main

REPO = Path(__file__).resolve().parents[1]
FORMATS = ["npz", "safetensors", "pt"]
TIES = ["expected", "average", "optimistic", "pessimistic"]
N, D = 6, 3
# en: image 5 has no caption; de: no mapping key (text i is image i); fr: shuffled.
OWNERS = {"en": [0, 0, 1, 2, 2, 3, 4, 4], "de": None, "fr": [5, 3, 1, 0, 2, 4, 1]}


def save(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``arrays`` in the format named by the suffix of ``path``."""
    if path.suffix == ".npz":
        np.savez(path, **arrays)
    elif path.suffix == ".safetensors":
        save_file({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}, path)
    else:
        torch.save({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}, path)
    return path


def dataset(seed: int = 0):
    """Small embeddings with entries in {-1, 0, 1}: exact products, and many ties."""
    rng = np.random.default_rng(seed)
    image = rng.integers(-1, 2, (N, D)).astype(np.float32)
    texts, owners = {}, {}
    for lang, owner in OWNERS.items():
        owners[lang] = np.arange(N) if owner is None else np.array(owner)
        noise = rng.integers(-1, 2, (len(owners[lang]), D))
        texts[lang] = np.clip(image[owners[lang]] + noise, -1, 1).astype(np.float32)
    return image, texts, owners


def embedding_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    image, texts, owners = dataset(seed)
    arrays = {"image": image}
    for lang in texts:
        arrays[f"text.{lang}"] = texts[lang]
        if OWNERS[lang] is not None:
            arrays[f"text_to_image.{lang}"] = owners[lang]
    return arrays


def score_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    image, texts, owners = dataset(seed)
    arrays = {}
    for lang, t in texts.items():
        arrays[f"i2t.{lang}"] = image.astype(np.float64) @ t.T
        arrays[f"t2i.{lang}"] = t.astype(np.float64) @ image.T
        if OWNERS[lang] is not None:
            arrays[f"text_to_image.{lang}"] = owners[lang]
    return arrays


# ------------------------------------------------------------------------- oracle


def oracle_counts(scores, positives):
    """g items above the best positive, n negatives and p positives tied with it."""
    b = max(scores[j] for j in positives)
    g = sum(1 for s in scores if s > b)
    n = sum(1 for j, s in enumerate(scores) if s == b and j not in positives)
    p = sum(1 for j in positives if scores[j] == b)
    return g, n, p


def oracle_rank(scores, positives, ties):
    """Rank of the best positive under ``ties``; "expected" is the expected rank."""
    g, n, p = oracle_counts(scores, positives)
    average = g + (n + p + 1) / (p + 1)
    return {"expected": average, "average": average, "optimistic": g + 1, "pessimistic": g + n + 1}[
        ties
    ]


def oracle_queries(lang):
    """The (scores, positives) of every image and every text query of ``lang``."""
    image, texts, owners = dataset()
    scores = image.astype(np.float64) @ texts[lang].T.astype(np.float64)
    i2t = [(list(scores[i]), {j for j, o in enumerate(owners[lang]) if o == i}) for i in range(N)]
    t2i = [(list(scores[:, j]), {o}) for j, o in enumerate(owners[lang])]
    return {"i2t": i2t, "t2i": t2i}


def oracle(ties="expected"):
    """``{lang: {"i2t": [N] (NaN: no caption), "t2i": [M]}}`` by per-query loops."""
    return {
        lang: {
            d: np.array([oracle_rank(s, pos, ties) if pos else np.nan for s, pos in queries])
            for d, queries in oracle_queries(lang).items()
        }
        for lang in OWNERS
    }


def oracle_recall(ranks, k):
    queries = ranks[~np.isnan(ranks)]
    return float(np.mean(queries <= k))


def oracle_expected_recall(lang, direction, k):
    """Mean over the queries of P(best positive in the top k) under a shuffled tie."""
    hits = []
    for scores, positives in oracle_queries(lang)[direction]:
        if not positives:
            continue
        g, n, p = oracle_counts(scores, positives)
        m = k - g
        hits.append(0.0 if m <= 0 else 1.0 if m > n else 1 - math.comb(n, m) / math.comb(n + p, m))
    return float(np.mean(hits))


def oracle_any_recall(ranks, lang, direction, k, ties):
    if ties == "expected":
        return oracle_expected_recall(lang, direction, k)
    return oracle_recall(ranks, k)


def oracle_mrv(ranks, direction, reduction):
    """Mean over images with >= 2 languages of np.var / np.std of their ranks.

    Text-to-image takes each image's first caption per language (caption_reduction="first").
    """
    _, _, owners = dataset()
    spread = np.var if reduction == "variance" else np.std
    values = []
    for i in range(N):
        row = []
        for lang in OWNERS:
            if direction == "i2t":
                r = ranks[lang]["i2t"][i]
            else:
                mine = np.flatnonzero(owners[lang] == i)
                r = ranks[lang]["t2i"][mine[0]] if len(mine) else np.nan
            if not np.isnan(r):
                row.append(r)
        if len(row) >= 2:
            values.append(spread(row))
    return float(np.mean(values))


# --------------------------------------------------------------------------- helpers


def run(argv, capsys):
    """``main(argv)`` in-process: (status, stdout, stderr)."""
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def assert_one_line_error(status, err, expected_status, fragment):
    assert status == expected_status, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("ccr-metrics: error: ")
    assert "Traceback" not in err
    assert fragment in lines[0]


def input_file(tmp_path, command, fmt):
    arrays = embedding_arrays() if command == "evaluate" else score_arrays()
    return save(tmp_path / f"input.{fmt}", arrays)


# ------------------------------------------------------------------- evaluate, scores


@pytest.mark.quick
@pytest.mark.parametrize("ties", TIES)
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("command", ["evaluate", "scores"])
def test_json_matches_oracle(tmp_path, capsys, command, fmt, ties):
    path = input_file(tmp_path, command, fmt)
    out_json = tmp_path / "report.json"
    argv = [command, path, "--k", 1, 2, 5, "--ties", ties, "--device", "cpu", "--json", out_json]
    status, out, err = run(argv, capsys)
    assert status == 0 and only_the_mixed_gallery_warning(err), err
    report = json.loads(out_json.read_text())
    expected = oracle(ties)
    # safetensors keeps no key order: its languages come sorted.
    assert report["languages"] == (sorted(OWNERS) if fmt == "safetensors" else list(OWNERS))
    assert report["settings"]["ties"] == ties
    assert report["settings"]["source"] == ("embeddings" if command == "evaluate" else "scores")
    for lang, by_dir in expected.items():
        for direction, ranks in by_dir.items():
            saved = [np.nan if r is None else r for r in report["ranks"][lang][direction]]
            np.testing.assert_allclose(saved, ranks)
            for k in (1, 2, 5):
                got = report["recall"][lang][direction][str(k)]
                assert got == pytest.approx(oracle_any_recall(ranks, lang, direction, k, ties))
    for direction in ("i2t", "t2i"):
        for reduction in ("variance", "std"):
            got = report["mrv"][direction][reduction]
            assert got == pytest.approx(oracle_mrv(expected, direction, reduction))
    assert "Recall (%)" in out


@pytest.mark.parametrize("command", ["evaluate", "scores"])
def test_csv_matches_oracle(tmp_path, capsys, command):
    path = input_file(tmp_path, command, "npz")
    status, _, _ = run([command, path, "--device", "cpu", "--csv", tmp_path / "r.csv"], capsys)
    assert status == 0
    frame = pd.read_csv(tmp_path / "r.csv")
    assert list(frame.columns) == [
        "language",
        "direction",
        "R@1",
        "R@5",
        "R@10",
        "mean_rank",
        "median_rank",
        "queries",
    ]
    expected = oracle()
    for _, row in frame[frame.language != "average"].iterrows():
        lang, direction = row["language"], row["direction"]
        ranks = expected[lang][direction]
        queries = ranks[~np.isnan(ranks)]
        assert row["queries"] == len(queries)
        for k in (1, 5, 10):
            assert row[f"R@{k}"] == pytest.approx(oracle_expected_recall(lang, direction, k))
        assert row["mean_rank"] == pytest.approx(np.mean(queries))
        assert row["median_rank"] == np.floor(np.median(queries))
    averages = frame[frame.language == "average"].set_index("direction")
    for direction in ("i2t", "t2i"):
        mean = np.mean([oracle_expected_recall(lang, direction, 1) for lang in OWNERS])
        assert averages.loc[direction, "R@1"] == pytest.approx(mean)


def test_table_is_printed_in_percent(tmp_path, capsys):
    path = input_file(tmp_path, "evaluate", "npz")
    status, out, _ = run(["evaluate", path, "--device", "cpu", "--k", 1], capsys)
    assert status == 0
    en = next(line for line in out.splitlines() if line.startswith("en "))
    expected = 100 * oracle_expected_recall("en", "i2t", 1)
    assert f"{expected:.2f}" in en.split()
    assert "Mean Rank Variance over 3 languages" in out


def test_languages_select_and_order(tmp_path, capsys):
    path = input_file(tmp_path, "evaluate", "pt")
    argv = ["evaluate", path, "--languages", "fr", "en", "--device", "cpu"]
    status, _, _ = run([*argv, "--json", tmp_path / "r.json"], capsys)
    assert status == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["languages"] == ["fr", "en"]
    assert list(report["ranks"]) == ["fr", "en"]


def test_scores_with_one_direction(tmp_path, capsys):
    arrays = {k: v for k, v in score_arrays().items() if not k.startswith("t2i.")}
    path = save(tmp_path / "s.npz", arrays)
    status, out, _ = run(["scores", path, "--device", "cpu", "--json", tmp_path / "r.json"], capsys)
    assert status == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert set(report["recall"]["en"]) == {"i2t"}
    assert "t2i R@1" not in out


def test_saved_report_loads_back(tmp_path, capsys):
    from ccr_metrics import Report

    path = input_file(tmp_path, "evaluate", "safetensors")
    run(["evaluate", path, "--device", "cpu", "--json", tmp_path / "r.json"], capsys)
    report = Report.load(tmp_path / "r.json")
    np.testing.assert_allclose(report.ranks["fr"]["t2i"], oracle()["fr"]["t2i"])


@pytest.mark.parametrize(
    ("flag", "shown"), [([], False), (["--no-progress"], False), (["--progress"], True)]
)
def test_progress_bar(tmp_path, capsys, flag, shown):
    # Under capsys stderr is no terminal, so the default is off.
    path = input_file(tmp_path, "evaluate", "npz")
    status, _, err = run(["evaluate", path, "--device", "cpu", *flag], capsys)
    assert status == 0
    assert ("ranking" in err) == shown


# ------------------------------------------------------------------------------ mrv


@pytest.mark.parametrize("reduction", ["variance", "std"])
def test_mrv_matches_numpy(tmp_path, capsys, reduction):
    rng = np.random.default_rng(1)
    ranks = rng.integers(0, 50, (40, 3))  # 0-based, as the released code saves them
    np.save(tmp_path / "en.npy", ranks[:, 0])
    np.savetxt(tmp_path / "de.txt", ranks[:, 1], fmt="%d")
    np.savetxt(tmp_path / "ja.csv", ranks[:, 2], fmt="%d", header="ranks")
    files = [f"en={tmp_path / 'en.npy'}", f"de={tmp_path / 'de.txt'}", f"ja={tmp_path / 'ja.csv'}"]
    argv = ["mrv", "--ranks", *files, "--reduction", reduction, "--json", tmp_path / "m.json"]
    status, out, err = run(argv, capsys)
    assert (status, err) == (0, "")
    expected = {
        "variance": float(np.mean(np.var(ranks, axis=1))),
        "std": float(np.mean(np.std(ranks, axis=1))),
    }
    saved = json.loads((tmp_path / "m.json").read_text())
    assert saved["mrv"] == pytest.approx(expected)
    assert saved["reduction"] == reduction
    assert saved["languages"] == ["en", "de", "ja"]
    assert saved["n_instances"] == 40
    assert "over 3 languages (en, de, ja), 40 instances" in out
    asked = next(line for line in out.splitlines() if "<- --reduction" in line)
    assert asked.split()[:2] == [reduction, f"{expected[reduction]:.4f}"]
    # MRV does not depend on the offset: 1-based files give the same numbers.
    np.save(tmp_path / "en.npy", ranks[:, 0] + 1)
    np.savetxt(tmp_path / "de.txt", ranks[:, 1] + 1, fmt="%d")
    np.savetxt(tmp_path / "ja.csv", ranks[:, 2] + 1, fmt="%d")
    run(argv, capsys)
    assert json.loads((tmp_path / "m.json").read_text())["mrv"] == pytest.approx(expected)


def test_mrv_repeated_flag(tmp_path, capsys):
    np.save(tmp_path / "en.npy", np.array([0, 1]))
    np.save(tmp_path / "de.npy", np.array([1, 0]))
    argv = ["mrv", "--ranks", f"en={tmp_path / 'en.npy'}", "--ranks", f"de={tmp_path / 'de.npy'}"]
    status, out, _ = run(argv, capsys)
    assert status == 0
    assert "(en, de), 2 instances" in out


@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        (["mrv", "scores.npz"], "run 'ccr-metrics scores scores.npz' (score matrices)"),
        (["mrv", "model.safetensors"], "'ccr-metrics evaluate model.safetensors' (embeddings)"),
        (["mrv", "--ranks", "scores.npz"], "run 'ccr-metrics scores scores.npz'"),
        (["mrv", "en.npy", "de.npy"], "give it with its language: --ranks LANG=en.npy"),
        (["mrv"], "give rank files with --ranks LANG=PATH or --released-dir DIR"),
    ],
)
def test_mrv_points_a_stray_file_to_the_command_that_reads_it(argv, hint, capsys):
    status, out, err = run(argv, capsys)
    assert_one_line_error(status, err, 2, hint)
    assert out == ""


# ------------------------------------------------------------------------- bad input


def with_arrays(change):
    """A case writing the embeddings after ``change(arrays)``: (tmp_path) -> file."""

    def make(tmp_path):
        arrays = embedding_arrays()
        change(arrays)
        return save(tmp_path / "bad.npz", arrays)

    return make


def setitem(key, value):
    return lambda arrays: arrays.__setitem__(key, value)


def delitem(key):
    return lambda arrays: arrays.__delitem__(key)


def nan_at(key, index, value=np.nan):
    def change(arrays):
        arrays[key] = arrays[key].copy()
        arrays[key][index] = value

    return change


def missing(tmp_path):
    return tmp_path / "nope.npz"


def corrupt(tmp_path):
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file at all")
    return tmp_path / "bad.safetensors"


def unknown_extension(tmp_path):
    return save(tmp_path / "bad.npz", embedding_arrays()).rename(tmp_path / "bad.h5")


BAD_EMBEDDINGS = {
    "missing file": (missing, [], "nope.npz: no such file"),
    "unknown extension": (unknown_extension, [], "unknown file type '.h5'"),
    "corrupt file": (corrupt, [], "not a readable safetensors file"),
    "missing image key": (with_arrays(delitem("image")), [], "no 'image' key"),
    "no text keys": (
        with_arrays(lambda a: [a.pop(k) for k in list(a) if k.startswith("text")]),
        [],
        "no 'text.<lang>' key",
    ),
    "unexpected key": (with_arrays(setitem("labels", np.ones(3))), [], "['labels']"),
    "mapping without texts": (
        with_arrays(setitem("text_to_image.ja", np.zeros(2, dtype=int))),
        [],
        "['text_to_image.ja']",
    ),
    "image not 2-D": (with_arrays(setitem("image", np.ones(6))), [], "image_embeds must be 2-D"),
    "dimension mismatch": (
        with_arrays(setitem("text.de", np.ones((6, 4), dtype=np.float32))),
        [],
        "has dimension 4",
    ),
    "NaN embedding": (with_arrays(nan_at("text.fr", (2, 1))), [], "nan at index [2, 1]"),
    "inf embedding": (with_arrays(nan_at("image", (0, 0), np.inf)), [], "inf at index [0, 0]"),
    "mapping out of range": (
        with_arrays(setitem("text_to_image.fr", np.array([5, 3, 1, 0, 2, 4, 6]))),
        [],
        "language 'fr'",
    ),
    "mapping wrong length": (
        with_arrays(setitem("text_to_image.en", np.arange(3))),
        [],
        "language 'en'",
    ),
    "unknown language": (with_arrays(lambda a: None), ["--languages", "en", "xx"], "['xx']"),
}


@pytest.mark.parametrize("case", list(BAD_EMBEDDINGS))
def test_bad_embeddings_exit_2(tmp_path, capsys, case):
    make, extra, fragment = BAD_EMBEDDINGS[case]
    status, out, err = run(["evaluate", make(tmp_path), "--device", "cpu", *extra], capsys)
    assert_one_line_error(status, err, 2, fragment)
    assert out == ""


def test_data_errors_name_the_file(tmp_path, capsys):
    path = with_arrays(nan_at("text.fr", (2, 1)))(tmp_path)
    _, _, err = run(["evaluate", path, "--device", "cpu"], capsys)
    assert f"error: {path}: text_embeds['fr'] contains nan" in err


def score_case(change):
    def make(tmp_path):
        arrays = score_arrays()
        change(arrays)
        return save(tmp_path / "bad.pt", arrays)

    return make


BAD_SCORES = {
    "embeddings given": (lambda p: save(p / "e.npz", embedding_arrays()), "load_embeddings"),
    "no matrices": (score_case(lambda a: [a.pop(k) for k in list(a) if "2" in k]), "no 'i2t"),
    "directions disagree": (score_case(setitem("t2i.en", np.ones((8, 5)))), "t2i['en']"),
    "not 2-D": (score_case(setitem("i2t.de", np.ones(6))), "i2t['de'] must be 2-D"),
    "NaN score": (score_case(nan_at("i2t.en", (1, 2))), "nan at index [1, 2]"),
}


@pytest.mark.parametrize("case", list(BAD_SCORES))
def test_bad_scores_exit_2(tmp_path, capsys, case):
    make, fragment = BAD_SCORES[case]
    status, out, err = run(["scores", make(tmp_path), "--device", "cpu"], capsys)
    assert_one_line_error(status, err, 2, fragment)
    assert out == ""


class Hostile:
    """Unpickling this writes ``marker``: what a malicious file would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


@pytest.mark.parametrize("command", ["evaluate", "scores"])
def test_hostile_pt_is_refused_unrun(tmp_path, capsys, command):
    marker = tmp_path / "marker"
    torch.save({"image": Hostile(marker), "text.en": torch.ones(2, 2)}, tmp_path / "evil.pt")
    status, _, err = run([command, tmp_path / "evil.pt"], capsys)
    assert_one_line_error(status, err, 2, "evil.pt: refused")
    assert "never unpickles" in err
    assert not marker.exists()


def test_hostile_raw_pickle_is_refused_unrun(tmp_path, capsys):
    marker = tmp_path / "marker"
    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"image": Hostile(marker)}))
    status, _, err = run(["evaluate", tmp_path / "evil.pt"], capsys)
    assert_one_line_error(status, err, 2, "evil.pt: refused")
    assert not marker.exists()


def test_hostile_npz_is_refused_unrun(tmp_path, capsys):
    marker = tmp_path / "marker"
    arrays = {**embedding_arrays(), "text.en": np.array([Hostile(marker)], dtype=object)}
    np.savez(tmp_path / "evil.npz", **arrays)
    status, _, err = run(["evaluate", tmp_path / "evil.npz"], capsys)
    assert_one_line_error(status, err, 2, "key 'text.en' is an object array")
    assert not marker.exists()


def test_hostile_rank_file_is_refused_unrun(tmp_path, capsys):
    marker = tmp_path / "marker"
    np.save(tmp_path / "en.npy", np.array([Hostile(marker)], dtype=object))
    np.save(tmp_path / "de.npy", np.array([0]))
    argv = ["mrv", "--ranks", f"en={tmp_path / 'en.npy'}", f"de={tmp_path / 'de.npy'}"]
    status, _, err = run(argv, capsys)
    assert_one_line_error(status, err, 2, "object array of pickled Python objects")
    assert not marker.exists()


def rank_files(tmp_path):
    np.save(tmp_path / "en.npy", np.array([0, 1, 2]))
    np.save(tmp_path / "de.npy", np.array([2, 1, 0]))
    np.save(tmp_path / "ja.npy", np.array([2, 1]))
    return {lang: f"{lang}={tmp_path / f'{lang}.npy'}" for lang in ("en", "de", "ja")}


BAD_MRV = {
    "no '='": (lambda f, p: ["--ranks", f["en"], str(p / "de.npy")], 2, "expected LANG=PATH"),
    "empty language": (lambda f, p: ["--ranks", f["en"], f"={p / 'de.npy'}"], 2, "LANG=PATH"),
    "empty path": (lambda f, p: ["--ranks", f["en"], "de="], 2, "expected LANG=PATH, got 'de='"),
    "language twice": (lambda f, p: ["--ranks", f["en"], f["en"]], 2, "'en' is given twice"),
    "one language": (lambda f, p: ["--ranks", f["en"]], 2, "at least two languages"),
    "no --ranks": (lambda f, p: [], 2, "--ranks"),
    "bad reduction": (
        lambda f, p: ["--ranks", f["en"], f["de"], "--reduction", "mean"],
        2,
        "invalid choice: 'mean'",
    ),
    "lengths differ": (lambda f, p: ["--ranks", f["en"], f["ja"]], 2, "has 2 ranks"),
    "missing file": (lambda f, p: ["--ranks", f["en"], "de=nope.npy"], 2, "nope.npy: no such"),
}


@pytest.mark.parametrize("case", list(BAD_MRV))
def test_bad_mrv_input(tmp_path, capsys, case):
    argv, expected_status, fragment = BAD_MRV[case]
    status, out, err = run(["mrv", *argv(rank_files(tmp_path), tmp_path)], capsys)
    assert_one_line_error(status, err, expected_status, fragment)
    assert out == ""


# ---------------------------------------------------------- mrv --released-dir DIR


RELEASED_MODEL = "ccr10_e"  # underscores, as released model names may have
WRITE_ORDER = ["fr", "zh", "en", "es", "ja", "de"]  # any order: the file system keeps none
SHOWN_ORDER = ["en", "de", "ja", "zh", "es", "fr"]  # en, de, ja, zh, then alphabetically


def released_ranks(n=2000, seed=3):
    """0-based float positions per direction and language, with many ties.

    Ties: the first tenth of the instances gets the same rank in every language (no
    spread), values repeat within a language, and some are halves, as tie-averaged
    ranks are.
    """
    rng = np.random.default_rng(seed)
    out = {}
    for direction in ("tr", "ir"):
        ranks = rng.integers(0, 40, (n, len(WRITE_ORDER))).astype(np.float64)
        ranks[: n // 10] = ranks[: n // 10, :1]
        ranks[rng.random((n, len(WRITE_ORDER))) < 0.1] += 0.5
        out[direction] = {lang: ranks[:, k] for k, lang in enumerate(WRITE_ORDER)}
    return out


def save_released(folder, ranks, model=RELEASED_MODEL):
    """``np.save`` each array as ``<folder>/{language}_{model}_{tr,ir}.npy``, as released."""
    folder.mkdir(exist_ok=True)
    for tag, by_lang in ranks.items():
        for lang, values in by_lang.items():
            np.save(folder / f"{lang}_{model}_{tag}.npy", np.asarray(values, dtype=np.float64))
    return folder


def released_analysis_ranks(folder, model_cap, rtype):
    """The released ``analysis_ranks`` (xFlickrCO.py), loop for loop, returning its print."""
    lanls = ["en", "de", "ja", "zh", "es", "ru", "id", "tr"]
    lan2ranks = {
        "en": np.load(f"{folder}/en_{model_cap}_{rtype}.npy"),
        "de": np.load(f"{folder}/de_{model_cap}_{rtype}.npy"),
        "ja": np.load(f"{folder}/ja_{model_cap}_{rtype}.npy"),
        "zh": np.load(f"{folder}/zh_{model_cap}_{rtype}.npy"),
    }
    rank_stds = []
    for i in range(2000):
        ranks_per = []
        for j in range(4):
            ranks_per.append(lan2ranks[lanls[j]][i])
        rank_stds.append(np.array(ranks_per).std())
    return np.array(rank_stds).mean()


def printed_mrv(out):
    """{direction: {reduction: value}} and {direction: header} from the printed table."""
    values, headers, direction = {}, {}, None
    for line in out.splitlines():
        if "Mean Rank Variance over" in line:
            direction = line.split()[0]
            headers[direction] = line
            values[direction] = {}
        elif line.startswith("  ") and direction is not None:
            reduction, value = line.split()[:2]
            values[direction][reduction] = float(value)
    return values, headers


@pytest.mark.parametrize("reduction", ["variance", "std"])
def test_mrv_released_dir_round_trip(tmp_path, capsys, reduction):
    ranks = released_ranks()
    folder = save_released(tmp_path / "ranks", ranks)
    argv = ["mrv", "--released-dir", folder, "--model", RELEASED_MODEL, "--reduction", reduction]
    status, out, err = run([*argv, "--json", tmp_path / "m.json"], capsys)
    assert (status, err) == (0, "")
    saved = json.loads((tmp_path / "m.json").read_text())
    assert saved["format"] == "ccr-metrics-mrv-released/1"
    assert (saved["model"], saved["directory"], saved["reduction"]) == (
        RELEASED_MODEL,
        str(folder),
        reduction,
    )
    assert saved["notes"] == []
    values, headers = printed_mrv(out)
    assert list(values) == list(saved["directions"]) == ["i2t", "t2i"]
    for direction, tag in (("i2t", "tr"), ("t2i", "ir")):
        stacked = np.stack([ranks[tag][lang] for lang in SHOWN_ORDER], axis=1)
        expected = {r: cm.mean_rank_variance(stacked, reduction=r) for r in ("variance", "std")}
        result = saved["directions"][direction]
        assert result["mrv"] == pytest.approx(expected, rel=1e-12)
        assert result["languages"] == SHOWN_ORDER
        assert result["n_instances"] == 2000
        assert result["files"] == {
            lang: str(folder / f"{lang}_{RELEASED_MODEL}_{tag}.npy") for lang in SHOWN_ORDER
        }
        assert values[direction] == pytest.approx(expected, abs=5e-5)  # printed to 4 places
        assert headers[direction] == (
            f"{direction} ({tag} files): Mean Rank Variance over 6 languages "
            "(en, de, ja, zh, es, fr), 2000 instances:"
        )
    asked = [line for line in out.splitlines() if "<- --reduction" in line]
    assert [line.split()[0] for line in asked] == [reduction, reduction]


def test_mrv_released_dir_std_is_the_released_number(tmp_path, capsys):
    folder = save_released(tmp_path / "ranks", released_ranks())
    argv = ["mrv", "--released-dir", folder, "--model", RELEASED_MODEL]
    argv += ["--languages", "en", "de", "ja", "zh", "--json", tmp_path / "m.json"]
    status, out, _ = run(argv, capsys)
    assert status == 0
    saved = json.loads((tmp_path / "m.json").read_text())["directions"]
    values, _ = printed_mrv(out)
    for direction, rtype in (("i2t", "tr"), ("t2i", "ir")):
        released = released_analysis_ranks(folder, RELEASED_MODEL, rtype)
        assert saved[direction]["languages"] == ["en", "de", "ja", "zh"]
        assert saved[direction]["mrv"]["std"] == pytest.approx(released, rel=1e-12)
        assert values[direction]["std"] == pytest.approx(released, abs=5e-5)


def test_mrv_released_dir_languages_order(tmp_path, capsys):
    folder = save_released(tmp_path / "ranks", released_ranks(n=20))
    argv = ["mrv", "--released-dir", folder, "--model", RELEASED_MODEL, "--languages", "zh", "en"]
    status, out, _ = run(argv, capsys)
    assert status == 0
    assert "i2t (tr files): Mean Rank Variance over 2 languages (zh, en), 20 instances:" in out


def test_mrv_released_dir_ignores_other_models(tmp_path, capsys):
    ranks = released_ranks(n=20)
    folder = save_released(tmp_path / "ranks", ranks)
    # Model "e" is a suffix of "ccr10_e": its files must not pick up en_ccr10_e_tr.npy.
    save_released(folder, {"tr": {"en": [0, 1], "de": [1, 1]}}, model="e")
    status, out, _ = run(["mrv", "--released-dir", folder, "--model", "e"], capsys)
    assert status == 0
    assert out.splitlines() == [
        f"Released ranks of model 'e' in {folder}:",
        "i2t (tr files): Mean Rank Variance over 2 languages (en, de), 2 instances:",
        "  variance        0.1250  (paper Eq. 7)                   <- --reduction",
        "  std             0.2500  (the released code's number)",
        "note: t2i: no ir files of 'e'; no MRV in this direction (it needs two languages)",
    ]


def test_mrv_released_dir_language_in_one_direction(tmp_path, capsys):
    ranks = released_ranks(n=20)
    del ranks["ir"]["ja"]
    folder = save_released(tmp_path / "ranks", ranks)
    argv = ["mrv", "--released-dir", folder, "--model", RELEASED_MODEL, "--json", tmp_path / "m"]
    status, out, err = run(argv, capsys)
    assert (status, err) == (0, "")
    note = "t2i: no ir file for ja; its MRV is over the 5 languages it has"
    assert f"note: {note}" in out
    saved = json.loads((tmp_path / "m").read_text())
    assert saved["notes"] == [note]
    assert saved["directions"]["i2t"]["languages"] == SHOWN_ORDER
    assert saved["directions"]["t2i"]["languages"] == ["en", "de", "zh", "es", "fr"]
    stacked = np.stack([ranks["ir"][lang] for lang in ["en", "de", "zh", "es", "fr"]], axis=1)
    assert saved["directions"]["t2i"]["mrv"]["variance"] == pytest.approx(
        cm.mean_rank_variance(stacked)
    )


def test_mrv_released_dir_direction_with_one_language(tmp_path, capsys):
    folder = save_released(
        tmp_path / "ranks", {"tr": {"en": [0, 1], "de": [1, 1]}, "ir": {"en": [0, 0]}}
    )
    status, out, err = run(["mrv", "--released-dir", folder, "--model", RELEASED_MODEL], capsys)
    assert (status, err) == (0, "")
    assert "i2t (tr files): Mean Rank Variance over 2 languages (en, de), 2 instances:" in out
    assert f"note: t2i: ir files of '{RELEASED_MODEL}' for en only; no MRV" in out


def test_mrv_released_dir_first_instances_is_the_released_analysis(tmp_path, capsys):
    """--instances 2000 on files of 2,500 instances: the released loop reads 2,000."""
    folder = save_released(tmp_path / "ranks", released_ranks(n=2500))
    argv = ["mrv", "--released-dir", folder, "--model", RELEASED_MODEL, "--instances", "2000"]
    argv += ["--languages", "en", "de", "ja", "zh", "--json", tmp_path / "m.json"]
    status, out, err = run(argv, capsys)
    assert (status, err) == (0, "")
    saved = json.loads((tmp_path / "m.json").read_text())
    assert saved["instances"] == 2000
    values, headers = printed_mrv(out)
    for direction, rtype in (("i2t", "tr"), ("t2i", "ir")):
        released = released_analysis_ranks(folder, RELEASED_MODEL, rtype)
        files = [folder / f"{lang}_{RELEASED_MODEL}_{rtype}.npy" for lang in ("en", "de", "ja")]
        files.append(folder / f"zh_{RELEASED_MODEL}_{rtype}.npy")
        stacked = np.stack([np.load(f) for f in files], axis=1)
        every = cm.mean_rank_variance(stacked, reduction="std")
        assert every != pytest.approx(released)  # the cut matters for these ranks
        assert saved["directions"][direction]["mrv"]["std"] == pytest.approx(released, rel=1e-12)
        assert saved["directions"][direction]["n_instances"] == 2000
        assert values[direction]["std"] == pytest.approx(released, abs=5e-5)
        assert headers[direction] == (
            f"{direction} ({rtype} files): Mean Rank Variance over 4 languages "
            "(en, de, ja, zh), the first 2000 of 2500 instances:"
        )


def test_mrv_ranks_first_instances(tmp_path, capsys):
    np.save(tmp_path / "en.npy", np.array([0.0, 4.0, 2.0, 9.0]))
    np.save(tmp_path / "de.npy", np.array([0.0, 1.0, 2.0, 0.0]))
    argv = ["mrv", "--ranks", f"en={tmp_path / 'en.npy'}", f"de={tmp_path / 'de.npy'}"]
    status, out, err = run([*argv, "--instances", "3", "--json", tmp_path / "m.json"], capsys)
    assert (status, err) == (0, "")
    # Per instance, the first three: variances 0, 2.25, 0; standard deviations 0, 1.5, 0.
    values, headers = printed_mrv("x " + out)
    assert values["x"] == pytest.approx({"variance": 0.75, "std": 0.5}, abs=5e-5)
    assert headers["x"].endswith("(en, de), the first 3 of 4 instances:")
    saved = json.loads((tmp_path / "m.json").read_text())
    assert (saved["n_instances"], saved["instances"]) == (3, 3)
    assert saved["mrv"] == pytest.approx({"variance": 0.75, "std": 0.5}, rel=1e-12)


def released_error_folder(tmp_path):
    """A ranks/ folder with en, de, ja of the model, and a file of another model."""
    folder = save_released(tmp_path / "ranks", released_ranks(n=5))
    np.save(folder / "en_xvlm_tr.npy", np.zeros(5))
    return folder


def write_one_language(folder):
    for file in folder.glob("*.npy"):
        if not file.name.startswith("en_"):
            file.unlink()


def write_array(name, array):
    def change(folder):
        np.save(folder / name, array)

    return change


def write_hostile(folder):
    np.save(folder / f"de_{RELEASED_MODEL}_ir.npy", np.array([Hostile(folder / "ran")], object))


def write_raw_pickle(folder):
    (folder / f"de_{RELEASED_MODEL}_ir.npy").write_bytes(pickle.dumps([Hostile(folder / "ran")]))


M = RELEASED_MODEL
RELEASED_ARGS = ["--released-dir", "{dir}", "--model", M]
BAD_RELEASED = {
    # (extra arguments, change to the folder, exit status, fragment of the one line)
    "with --ranks": (
        [*RELEASED_ARGS, "--ranks", "en=a.npy", "de=b.npy"],
        None,
        2,
        "argument --ranks: not allowed with argument --released-dir",
    ),
    "no --model": (["--released-dir", "{dir}"], None, 2, "--released-dir needs --model NAME"),
    "--model with --ranks": (
        ["--ranks", "en=a.npy", "de=b.npy", "--model", M],
        None,
        2,
        "--model goes with --released-dir",
    ),
    "--languages with --ranks": (
        ["--ranks", "en=a.npy", "de=b.npy", "--languages", "en", "de"],
        None,
        2,
        "--languages goes with --released-dir",
    ),
    "--languages one": (
        [*RELEASED_ARGS, "--languages", "en"],
        None,
        2,
        "argument --languages: MRV needs at least two languages, got ['en']",
    ),
    "--languages twice": (
        [*RELEASED_ARGS, "--languages", "en", "de", "en"],
        None,
        2,
        "--languages names ['en'] more than once",
    ),
    "only one language": (
        RELEASED_ARGS,
        write_one_language,
        2,
        f"MRV needs ranks in at least two languages in a direction, and model '{M}' has "
        "i2t (tr): en; t2i (ir): en",
    ),
    "--instances beyond the files": (
        [*RELEASED_ARGS, "--instances", "6"],
        None,
        2,
        "argument --instances: 6 is more than the 5 instances the tr files rank",
    ),
    "--instances zero": (
        [*RELEASED_ARGS, "--instances", "0"],
        None,
        2,
        "argument --instances: expected a positive integer, got '0'",
    ),
    "folder missing": (
        ["--released-dir", "{dir}/nope", "--model", M],
        None,
        2,
        "ranks/nope: no such directory",
    ),
    "folder is a file": (
        ["--released-dir", f"{{dir}}/en_{M}_tr.npy", "--model", M],
        None,
        2,
        f"en_{M}_tr.npy: not a directory",
    ),
    "unknown model": (
        ["--released-dir", "{dir}", "--model", "ccr10"],
        None,
        2,
        f"no rank file of model 'ccr10' (<language>_ccr10_tr.npy or <language>_ccr10_ir.npy); "
        f"models present: {M}, xvlm",
    ),
    "--languages not found": (
        [*RELEASED_ARGS, "--languages", "en", "ru"],
        None,
        2,
        "for language(s) ['ru']; languages present: de, en, es, fr, ja, zh",
    ),
    "counts differ": (
        RELEASED_ARGS,
        write_array(f"ja_{M}_tr.npy", np.zeros(4)),
        2,
        f"the tr (i2t) files of model '{M}' rank different numbers of instances "
        "(en 5, de 5, ja 4, zh 5, es 5, fr 5)",
    ),
    "nan": (
        RELEASED_ARGS,
        write_array(f"zh_{M}_ir.npy", np.array([0, 1, np.nan, 2, 3])),
        2,
        f"zh_{M}_ir.npy: rank 2 is nan; ranks must be finite",
    ),
    "inf": (
        RELEASED_ARGS,
        write_array(f"zh_{M}_ir.npy", np.array([0, 1, 2, 3, np.inf])),
        2,
        f"zh_{M}_ir.npy: rank 4 is inf",
    ),
    "negative": (
        RELEASED_ARGS,
        write_array(f"de_{M}_tr.npy", np.array([0, -1, 2, 3, 4.0])),
        2,
        f"de_{M}_tr.npy: rank 1 is -1.0; the released ranks are 0-based positions",
    ),
    "2-D": (
        RELEASED_ARGS,
        write_array(f"de_{M}_tr.npy", np.zeros((5, 2))),
        2,
        f"de_{M}_tr.npy: ranks must be a non-empty 1-D array",
    ),
    "pickled object array": (
        RELEASED_ARGS,
        write_hostile,
        2,
        f"de_{M}_ir.npy: holds an object array of pickled Python objects",
    ),
    "raw pickle": (
        RELEASED_ARGS,
        write_raw_pickle,
        2,
        f"de_{M}_ir.npy: not a .npy file; it could only be read as a pickle",
    ),
}


@pytest.mark.parametrize("case", list(BAD_RELEASED))
def test_bad_mrv_released_dir(tmp_path, capsys, case):
    extra, change, expected_status, fragment = BAD_RELEASED[case]
    folder = released_error_folder(tmp_path)
    if change is not None:
        change(folder)
    argv = ["mrv", *(str(a).replace("{dir}", str(folder)) for a in extra)]
    status, out, err = run([*argv, "--json", tmp_path / "m.json"], capsys)
    assert_one_line_error(status, err, expected_status, fragment)
    assert out == ""
    assert not (tmp_path / "m.json").exists()
    assert not (folder / "ran").exists()  # nothing in a file was run
    # Usage mistakes point to --help; a problem in the files names the file instead.
    assert ("--help" in err) == (case in RELEASED_USAGE_CASES)


RELEASED_USAGE_CASES = {
    "with --ranks",
    "no --model",
    "--model with --ranks",
    "--languages with --ranks",
    "--languages one",
    "--languages twice",
    "only one language",
    "--instances beyond the files",
    "--instances zero",
}


BAD_USAGE = {
    "no command": ([], "the following arguments are required: command"),
    "unknown command": (["rank"], "invalid choice: 'rank'"),
    "no file": (["evaluate"], "the following arguments are required: FILE"),
    "k zero": (["evaluate", "{file}", "--k", "0"], "expected a positive integer, got '0'"),
    "k not int": (["evaluate", "{file}", "--k", "five"], "got 'five'"),
    "no k": (["evaluate", "{file}", "--k"], "expected at least one argument"),
    "bad ties": (["scores", "{file}", "--ties", "random"], "argument --ties"),
    "bad caption reduction": (["evaluate", "{file}", "--caption-reduction", "max"], "max"),
    "first release's flag": (
        ["evaluate", "{file}", "--caption-reduce", "min"],
        "unrecognized arguments: --caption-reduce",
    ),
    "bad chunk size": (["evaluate", "{file}", "--chunk-size", "-3"], "got '-3'"),
    "bad device": (["evaluate", "{file}", "--device", "tpu"], "argument --device"),
    "json to missing dir": (["evaluate", "{file}", "--json", "no/dir/r.json"], "'no/dir'"),
    "csv to missing dir": (["scores", "{file}", "--csv", "no/dir/r.csv"], "'no/dir'"),
    "unknown option": (["evaluate", "{file}", "--top", "5"], "unrecognized arguments"),
}


@pytest.mark.quick
@pytest.mark.parametrize("case", list(BAD_USAGE))
def test_bad_usage_exit_2(tmp_path, capsys, case):
    argv, fragment = BAD_USAGE[case]
    file = str(input_file(tmp_path, "evaluate", "npz"))
    status, out, err = run([a.replace("{file}", file) for a in argv], capsys)
    assert_one_line_error(status, err, 2, fragment)
    assert "--help" in err
    assert out == ""


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda(tmp_path, capsys):
    path = input_file(tmp_path, "evaluate", "npz")
    status, out, err = run(["evaluate", path, "--device", "cuda"], capsys)
    assert_one_line_error(status, err, 2, "CUDA is not available")
    assert out == ""


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(tmp_path, capsys):
    path = input_file(tmp_path, "evaluate", "npz")
    for device in ("cpu", "cuda"):
        run(["evaluate", path, "--device", device, "--json", tmp_path / f"{device}.json"], capsys)
    cpu, cuda = (json.loads((tmp_path / f"{d}.json").read_text()) for d in ("cpu", "cuda"))
    assert cpu["ranks"] == cuda["ranks"]


def test_internal_errors_exit_1_with_traceback_and_a_report_note(tmp_path, capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli, "evaluate", broken)
    path = input_file(tmp_path, "evaluate", "npz")
    status, out, err = run(["evaluate", path, "--device", "cpu"], capsys)
    assert status == 1 and out == ""
    assert "Traceback" in err and "RuntimeError: a bug" in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("ccr-metrics: error: internal error: this is a bug in ccr-metrics")
    assert "please report it" in last


def test_interrupt_exits_130(tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "evaluate", interrupted)
    status, _, err = run(["evaluate", input_file(tmp_path, "evaluate", "npz")], capsys)
    assert_one_line_error(status, err, 130, "interrupted")


def test_help_exits_0(capsys):
    status, out, _ = run(["evaluate", "--help"], capsys)
    assert status == 0
    assert "--caption-reduction" in out


# ----------------------------------------------------------------------- the README


@early
def python_m_commands(items: Sequence[pytest.Item]) -> Iterator[dict[str, subprocess.Popen[str]]]:
    """The module's ``python -m ccr_metrics`` commands, started at once (see early.py).

    Each spends seconds importing torch: side by side they share the cores instead of
    taking turns.
    """
    with tempfile.TemporaryDirectory(prefix="ccr-metrics-test-") as folder:
        path = input_file(Path(folder), "evaluate", "npz")
        evaluate = [sys.executable, "-m", "ccr_metrics", "evaluate"]
        commands = {
            "bundled example": shlex.join([*evaluate, "examples/multi30k_synthetic.npz"]),
            # `ccr-metrics ... | head`: the reader leaves early.
            "closed stdout": shlex.join([*evaluate, str(path), "--device", "cpu"]) + " | head -c 0",
        }
        processes = {
            name: popen(
                command,
                shell=True,
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for name, command in commands.items()
        }
        yield from running(processes)


@pytest.fixture(scope="module")
def python_m(early_work):
    """What the module's ``python -m ccr_metrics`` commands printed, once all have ended."""
    with early_work(python_m_commands) as processes:
        return outputs(processes, 120)


def test_python_m_on_the_bundled_example(python_m):
    result = python_m["bundled example"]
    assert result.returncode == 0, result.stderr
    # Not a terminal: no progress bar. Czech describes 270 of the 300 images: one line
    # says that every language is ranked among all 300.
    assert result.stderr.startswith(
        "ccr-metrics: warning: the texts of the languages cover different images "
        "(en 300, de 300, fr 300, cs 270 of 300; 270 in every language)"
    )
    assert len(result.stderr.splitlines()) == 1
    assert result.stdout.startswith("Recall (%): 300 images, languages en, de, fr, cs")
    assert "average" in result.stdout
    assert "Mean Rank Variance over 4 languages" in result.stdout


def test_closed_stdout_is_quiet(python_m):
    # `ccr-metrics ... | head`: the reader leaves early; no traceback, no complaint.
    result = python_m["closed stdout"]
    # The mixed-gallery warning follows the table, once the table is written.
    assert result.stderr == "" or only_the_mixed_gallery_warning(result.stderr), result.stderr
