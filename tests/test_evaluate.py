"""evaluate / evaluate_scores / Report against naive oracles, and their invariants."""

import io
import json
import math
import re
import sys
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
import torch

import ccr_metrics as cm
from ccr_metrics.harness import stream as stream_module

# The fixtures leave some images without a text in a language and rank every language
# among all images on purpose: the mixed-gallery warning (test_galleries.py) is expected.
pytestmark = pytest.mark.filterwarnings("ignore:the texts of the languages cover:UserWarning")


def naive_counts(row, positives):
    """(above, tied negatives, tied positives) of the best positive in ``row``."""
    best = max(row[j] for j in positives)
    above = sum(1 for v in row if v > best)
    tied_pos = sum(1 for j in set(positives) if row[j] == best)
    tied_neg = sum(1 for j, v in enumerate(row) if v == best and j not in set(positives))
    return above, tied_neg, tied_pos


def naive_hit(row, positives, k, ties):
    """What one query adds to R@k: 0/1 from its rank, or the exact expected hit."""
    if ties != "expected":
        return float(naive_rank(row, positives, ties) <= k)
    above, n, p = naive_counts(row, positives)
    m = k - above
    if m <= 0:
        return 0.0
    if m > n:
        return 1.0
    return float(1 - Fraction(math.comb(n, m), math.comb(n + p, m)))


def naive_rank(row, positives, ties):
    """Rank of the best positive in ``row`` by the definition, one query at a time."""
    above, tied_neg, tied_pos = naive_counts(row, positives)
    if ties == "optimistic":
        return float(above + 1)
    if ties == "pessimistic":
        return float(above + tied_neg + 1)
    return float(above + Fraction(tied_neg + tied_pos + 1, tied_pos + 1))


def naive_report(images, texts, owners, ties):
    """{lang: {"i2t": [N] (NaN without caption), "t2i": [M]}} by explicit loops."""
    n = len(images)
    out = {}
    for lang, t in texts.items():
        s = (images @ t.T).tolist()
        i2t = []
        for i in range(n):
            pos = [j for j, o in enumerate(owners[lang]) if o == i]
            i2t.append(naive_rank(s[i], pos, ties) if pos else np.nan)
        t2i = [
            naive_rank([s[i][j] for i in range(n)], [owners[lang][j]], ties) for j in range(len(t))
        ]
        out[lang] = {"i2t": np.array(i2t), "t2i": np.array(t2i)}
    return out


def integer_problem(seed=0, n=12, dim=5):
    """Small-integer embeddings: every product is exact, so ties are real and any
    summation order gives the same scores."""
    rng = np.random.default_rng(seed)
    images = rng.integers(-2, 3, (n, dim)).astype(np.float32)
    owners = {
        "en": np.repeat(np.arange(n), 2),  # two captions per image
        "de": rng.permutation(n),  # one each, shuffled
        "fr": np.array([i for i in range(n) if i % 3]),  # missing for every third image
    }
    texts = {
        lang: (images[o] + rng.integers(-1, 2, (len(o), dim))).astype(np.float32)
        for lang, o in owners.items()
    }
    return images, texts, owners


def assert_same_ranks(a, b):
    assert list(a.ranks) == list(b.ranks)
    for lang in a.ranks:
        assert set(a.ranks[lang]) == set(b.ranks[lang])
        for d in a.ranks[lang]:
            np.testing.assert_array_equal(a.ranks[lang][d], b.ranks[lang][d])


@pytest.mark.quick
@pytest.mark.parametrize("ties", cm.TIES)
@pytest.mark.parametrize("chunk_size", [1, 5, None])
def test_evaluate_matches_naive_loop(ties, chunk_size):
    images, texts, owners = integer_problem()
    report = cm.evaluate(images, texts, owners, ties=ties, chunk_size=chunk_size, device="cpu")
    expected = naive_report(images, texts, owners, ties)
    for lang in texts:
        for d in ("i2t", "t2i"):
            np.testing.assert_array_equal(report.ranks[lang][d], expected[lang][d])


@pytest.mark.parametrize("ties", cm.TIES)
def test_streaming_equals_precomputed_matrices(ties):
    images, texts, owners = integer_problem(seed=1)
    streamed = cm.evaluate(images, texts, owners, ties=ties, chunk_size=4, device="cpu")
    stored = cm.evaluate_scores(
        i2t={lang: images @ t.T for lang, t in texts.items()},
        t2i={lang: t @ images.T for lang, t in texts.items()},
        text_to_image=owners,
        ties=ties,
        chunk_size=3,
        device="cpu",
    )
    assert_same_ranks(streamed, stored)
    assert streamed.to_dict()["recall"] == stored.to_dict()["recall"]
    assert streamed.mrv() == stored.mrv()


def test_streaming_equals_precomputed_on_float_embeddings():
    rng = np.random.default_rng(3)
    images = rng.standard_normal((300, 32)).astype(np.float32)
    texts = {"en": images + rng.standard_normal((300, 32)).astype(np.float32)}
    streamed = cm.evaluate(images, texts, chunk_size=64, device="cpu")
    stored = cm.evaluate_scores(
        i2t={"en": images @ texts["en"].T}, t2i={"en": texts["en"] @ images.T}, device="cpu"
    )
    assert_same_ranks(streamed, stored)


@pytest.mark.parametrize("ties", ["average", "expected"])
def test_recall_and_mrv_follow_from_the_ranks(ties):
    images, texts, owners = integer_problem(seed=2)
    report = cm.evaluate(images, texts, owners, k=(1, 3), ties=ties, device="cpu")
    ranks = naive_report(images, texts, owners, "average")
    summary = report.to_dict()
    for lang in texts:
        s = (images @ texts[lang].T).tolist()
        i2t_queries = [
            (s[i], [j for j, o in enumerate(owners[lang]) if o == i]) for i in range(len(images))
        ]
        t2i_queries = [
            ([s[i][j] for i in range(len(images))], [o]) for j, o in enumerate(owners[lang])
        ]
        lang_values = []
        for d, queries in (("i2t", i2t_queries), ("t2i", t2i_queries)):
            queries = [(row, pos) for row, pos in queries if pos]
            for k in (1, 3):
                expected = np.mean([naive_hit(row, pos, k, ties) for row, pos in queries])
                assert summary["recall"][lang][d][str(k)] == pytest.approx(expected, abs=1e-12)
                lang_values.append(expected)
        assert summary["mean_recall"][lang] == pytest.approx(np.mean(lang_values))
    # MRV over present languages per image, first caption for text-to-image.
    n = len(images)
    for d in ("i2t", "t2i"):
        rows = []
        for i in range(n):
            values = []
            for lang in texts:
                captions = [j for j, o in enumerate(owners[lang]) if o == i]
                if captions:
                    values.append(ranks[lang][d][i] if d == "i2t" else ranks[lang][d][captions[0]])
            if len(values) >= 2:
                rows.append(values)
        assert summary["mrv"][d]["variance"] == pytest.approx(np.mean([np.var(v) for v in rows]))
        assert summary["mrv"][d]["std"] == pytest.approx(np.mean([np.std(v) for v in rows]))


@pytest.mark.parametrize("reduce", cm.CAPTION_REDUCTIONS)
def test_caption_reduction_decides_text_to_image_mrv(reduce):
    images, texts, owners = integer_problem(seed=4)
    report = cm.evaluate(images, texts, owners, caption_reduction=reduce, device="cpu")
    ranks, mask = report.rank_matrix("t2i")
    en = report.ranks["en"]["t2i"].reshape(-1, 2)  # two captions per image, in order
    expected = {
        "first": en[:, 0],
        "min": en.min(1),
        "mean": en.mean(1),
        "median": np.median(en, axis=1),
    }[reduce]
    np.testing.assert_array_equal(ranks[:, 0], expected)
    assert mask[:, 0].all() and not mask[0, 2]  # image 0 has no French text


def test_languages_selects_and_orders():
    images, texts, owners = integer_problem()
    report = cm.evaluate(images, texts, owners, languages=["fr", "en"], device="cpu")
    assert report.languages == ["fr", "en"]
    assert report.to_dict()["settings"]["languages"] == ["fr", "en"]
    with pytest.raises(ValueError, match=r"unknown language.*'xx'"):
        cm.evaluate(images, texts, owners, languages=["en", "xx"], device="cpu")


def test_identity_mapping_when_counts_match():
    images, texts, owners = integer_problem()
    de = texts["de"][np.argsort(owners["de"])]  # text i belongs to image i
    report = cm.evaluate(images, {"de": de}, device="cpu")
    expected = cm.evaluate(images, {"de": de}, {"de": np.arange(len(images))}, device="cpu")
    assert_same_ranks(report, expected)


def test_report_dict_is_json_and_save_load_round_trips(tmp_path):
    images, texts, owners = integer_problem()
    report = cm.evaluate(images, texts, owners, device="cpu")
    summary = report.to_dict()
    assert json.loads(json.dumps(summary, allow_nan=False)) == summary
    assert summary["n_images"] == 12
    assert summary["n_texts"] == {"en": 24, "de": 12, "fr": 8}
    assert set(summary["settings"]) >= {"ties", "caption_reduction", "languages", "ks"}
    path = tmp_path / "report.json"
    report.save(path)
    loaded = cm.Report.load(path)
    assert loaded.to_dict() == summary
    assert_same_ranks(loaded, report)
    (tmp_path / "bad.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="not a ccr-metrics report"):
        cm.Report.load(tmp_path / "bad.json")


def test_to_frame_has_a_row_per_language_and_direction():
    images, texts, owners = integer_problem()
    frame = cm.evaluate(images, texts, owners, device="cpu").to_frame()
    assert isinstance(frame, pd.DataFrame)
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
    assert len(frame) == 2 * 3 + 2
    assert frame.set_index(["language", "direction"]).loc[("fr", "i2t"), "queries"] == 8


def test_one_direction_and_one_language():
    s = np.array([[3.0, 1.0], [0.0, 2.0]])
    report = cm.evaluate_scores(i2t={"en": s}, device="cpu")
    assert report.directions == ["i2t"]
    assert report.recall() == {"en": {"i2t": {1: 1.0, 5: 1.0, 10: 1.0}}}
    assert report.mrv() == {"i2t": None}
    assert "undefined" in report.to_table()


def test_progress_bar_goes_to_stderr(capsys):
    images, texts, owners = integer_problem()
    cm.evaluate(images, texts, owners, chunk_size=4, progress=True, device="cpu")
    captured = capsys.readouterr()
    assert captured.out == "" and "block" in captured.err


class _Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("evaluate", ["evaluate", "evaluate_scores", "evaluate_sharded"])
def test_progress_auto_shows_a_bar_on_a_terminal_for_large_work(evaluate, monkeypatch):
    images, texts, owners = integer_problem()
    if evaluate == "evaluate_scores":
        args = ({lang: images @ t.T for lang, t in texts.items()}, None, owners)
    else:
        args = (images, texts, owners)
    run = getattr(cm, evaluate)

    def stderr_of(stream, threshold):
        monkeypatch.setattr(stream_module, "AUTO_PROGRESS_SCORES", threshold)
        monkeypatch.setattr(sys, "stderr", stream)
        run(*args, device="cpu")  # progress="auto", the default
        monkeypatch.undo()
        return stream.getvalue()

    # 12 images x 12 texts: small work stays quiet even on a terminal...
    assert stderr_of(_Terminal(), 1 << 26) == ""
    # ...large work shows a bar on a terminal...
    assert "ranking" in stderr_of(_Terminal(), 1)
    # ...and never when stderr is not a terminal (a log file, a pipe, pytest).
    assert stderr_of(io.StringIO(), 1) == ""


@pytest.mark.parametrize("progress", ["yes", 1, None])
def test_progress_must_be_a_bool_or_auto(progress):
    images, texts, owners = integer_problem()
    with pytest.raises(ValueError, match=r"progress must be True, False or 'auto', got"):
        cm.evaluate(images, texts, owners, progress=progress, device="cpu")


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (
            lambda i, t, o: (i[:, :3], t, o),
            r"text_embeds\['en'\] has dimension 5.*image_embeds has 3",
        ),
        (
            lambda i, t, o: (np.where(np.arange(5) == 2, np.nan, i), t, o),
            r"image_embeds contains nan",
        ),
        (
            lambda i, t, o: (i, {**t, "de": np.where(t["de"] > 1, np.inf, t["de"])}, o),
            r"text_embeds\['de'\] contains inf",
        ),
        (lambda i, t, o: (i.astype(np.int64), t, o), "image_embeds must be floating point"),
        (lambda i, t, o: (i[0], t, o), "image_embeds must be 2-D"),
        (lambda i, t, o: (i, t, {**o, "en": o["en"] + 100}), r"language 'en'.*outside \[0, 12\)"),
        (
            lambda i, t, o: (i, t, {k: v for k, v in o.items() if k != "fr"}),
            "language 'fr'.*required",
        ),
        (lambda i, t, o: (i, t, {**o, "de": o["de"][:5]}), r"language 'de'.*shape \[12\]"),
        (lambda i, t, o: (i, {}, o), "text_embeds must map"),
    ],
)
def test_bad_input_is_a_clear_value_error(change, match):
    images, texts, owners = change(*integer_problem())
    with pytest.raises(ValueError, match=match):
        cm.evaluate(images, texts, owners, device="cpu")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ties": "random"}, "ties"),
        ({"caption_reduction": "max"}, "caption_reduction"),
        ({"k": (0,)}, "k must"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"device": "tpu"}, "device"),
    ],
)
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        cm.evaluate(*integer_problem(), **{"device": "cpu", **kwargs})


def test_bad_score_matrices():
    s = np.zeros((3, 4))
    with pytest.raises(ValueError, match="needs i2t or t2i"):
        cm.evaluate_scores()
    with pytest.raises(ValueError, match=r"t2i\['en'\].*3 images but other matrices have 3|texts"):
        cm.evaluate_scores(
            i2t={"en": s}, t2i={"en": np.zeros((5, 3))}, text_to_image={"en": [0] * 4}
        )
    with pytest.raises(ValueError, match="images but other matrices have"):
        cm.evaluate_scores(
            i2t={"en": s, "de": np.zeros((2, 4))},
            text_to_image={"en": [0, 1, 2, 0], "de": [0, 1, 0, 1]},
        )
    with pytest.raises(ValueError, match=r"i2t\['en'\] contains nan at index \[1, 2\]"):
        bad = s.copy()
        bad[1, 2] = np.nan
        cm.evaluate_scores(i2t={"en": bad}, text_to_image={"en": [0, 1, 2, 0]})


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")
def test_cuda_requested_without_cuda():
    with pytest.raises(ValueError, match="CUDA is not available"):
        cm.evaluate(*integer_problem(), device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_equals_cpu():
    images, texts, owners = integer_problem()
    assert_same_ranks(
        cm.evaluate(images, texts, owners, device="cuda", chunk_size=5),
        cm.evaluate(images, texts, owners, device="cpu"),
    )


def test_confidence_intervals_in_dict_table_and_round_trip(tmp_path):
    images, texts, owners = integer_problem()
    report = cm.evaluate(images, texts, owners, device="cpu")
    assert report.intervals is None and "intervals" not in report.to_dict()
    with_ci = report.with_confidence(n_resamples=300, seed=3)
    summary = with_ci.to_dict()
    for lang in texts:
        for d in ("i2t", "t2i"):
            for k in ("1", "5"):
                estimate, low, high = summary["intervals"]["recall"][lang][d][k]
                assert estimate == summary["recall"][lang][d][k]
                assert low <= estimate <= high
    en_r1 = 100 * summary["recall"]["en"]["i2t"]["1"]
    assert f"{en_r1:.2f} [" in with_ci.to_table()
    path = tmp_path / "ci.json"
    with_ci.save(path)
    assert cm.Report.load(path).to_dict() == summary  # redrawn from the same seed


def test_float16_products_that_overflow_are_named_as_such():
    images = np.full((3, 4), 200.0, dtype=np.float16)  # 4 * 200 * 200 = 160,000 > 65,504
    texts = {"en": np.full((3, 4), 200.0, dtype=np.float16)}
    with pytest.raises(ValueError, match=r"image_embeds row 0 .* overflow .* float32") as info:
        cm.evaluate(images, texts, device="cpu")
    assert "scores" not in str(info.value)


def test_a_nan_embedding_is_named_not_its_scores():
    rng = np.random.default_rng(0)
    images = rng.standard_normal((6, 4)).astype(np.float32)
    texts = {"en": rng.standard_normal((6, 4)).astype(np.float32)}
    texts["en"][4, 2] = np.nan
    with pytest.raises(ValueError, match=r"text_embeds\['en'\] contains nan at index \[4, 2\]"):
        cm.evaluate(images, texts, device="cpu")


@pytest.mark.parametrize("second_stage", ["none", "scorer", "stored"])
def test_the_progress_bar_ends_at_its_total(second_stage, capsys):
    """The bar's total counts the blocks the passes make, whose rows are rounded up to
    whole query tiles (1,100 images: two tiles of 552 rows, whatever the chunk size)."""
    g = torch.Generator().manual_seed(0)
    images = torch.randn(1100, 8, generator=g)
    texts = torch.randn(1100, 8, generator=g)
    owner = torch.arange(1100)
    extra: dict = {}
    if second_stage == "scorer":
        extra = {"rerank": lambda lang, i, t: (images[i] * texts[t]).sum(1), "rerank_k": 4}
    elif second_stage == "stored":
        candidates = cm.top_candidates(images @ texts.T, 4)
        extra = {
            "candidates": {"i2t": {"en": candidates}},
            "fine": {"i2t": {"en": torch.ones(1100, 4)}},
        }
    cm.evaluate(
        images, {"en": texts}, {"en": owner}, chunk_size=64, progress=True, device="cpu", **extra
    )
    done, total = re.findall(r"ranking:.*?(\d+)/(\d+)", capsys.readouterr().err)[-1]
    assert done == total
