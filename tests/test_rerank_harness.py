"""The re-ranking harness: evaluate(rerank=...) and stored second stages.

Every expectation is built explicitly from the public functions of
:mod:`ccr_metrics.core.rerank`: the first stage is the dot product of the embeddings (computed
here in float64; small integer embeddings make it exact, so the float32 tiles of the
harness give the same numbers and ties are real), its ``top_candidates`` are the
candidates, the fine scores are looked up in a fixed table, and the ranks are
``reranked_ranks`` (cascade) or ``positive_ranks`` of ``released_rerank_scores``
(filled). The scorer records every pair it is asked for, so the tests also check which
pairs are scored, how often and in what batches.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

import ccr_metrics as cm

# The fixtures leave some images without a text in a language and rank every language
# among all images on purpose: the mixed-gallery warning (test_galleries.py) is expected.
pytestmark = pytest.mark.filterwarnings("ignore:the texts of the languages cover:UserWarning")

N_IMAGES, DIM = 14, 4
PROTOCOLS = ("cascade", "filled")


# --------------------------------------------------------------------------- problems


def problem(seed=0):
    """Integer embeddings with duplicate images and captions, two languages.

    "en": two captions per image. "fr": shuffled, every third image without a caption,
    two images with two captions. ``table[lang]`` ``[N, M_l]``: integer fine scores in
    [-3, 3], so the second stage has ties too.
    """
    rng = np.random.default_rng(seed)
    images = rng.integers(-2, 3, (N_IMAGES, DIM)).astype(np.float32)
    images[7] = images[0]  # duplicate images: text-to-image ties
    images[9] = images[2]
    fr = np.array([i for i in range(N_IMAGES) if i % 3] + [1, 4])
    owners = {"en": np.repeat(np.arange(N_IMAGES), 2), "fr": rng.permutation(fr)}
    texts = {}
    for lang, o in owners.items():
        t = images[o] + rng.integers(-1, 2, (len(o), DIM))
        if lang == "en":
            t[1::4] = t[0::4]  # duplicate captions
        texts[lang] = t.astype(np.float32)
    table = {lang: rng.integers(-3, 4, (N_IMAGES, len(o))) for lang, o in owners.items()}
    return images, texts, owners, table


def captions(owner, n_images=N_IMAGES):
    return [np.flatnonzero(owner == i).tolist() for i in range(n_images)]


def has_caption(owner, n_images=N_IMAGES):
    return np.array([bool(c) for c in captions(owner, n_images)])


class Recorder:
    """A scorer reading ``table[lang][i, t]``, recording and checking every call."""

    def __init__(self, table, batch_size=None, kind="torch"):
        self.table, self.batch_size, self.kind = table, batch_size, kind
        self.calls = []

    def __call__(self, language, image_index, text_index):
        assert isinstance(image_index, torch.Tensor)
        assert isinstance(text_index, torch.Tensor)
        assert image_index.dtype == torch.int64 and text_index.dtype == torch.int64
        assert image_index.ndim == 1 and image_index.shape == text_index.shape
        assert image_index.device.type == "cpu" and text_index.device.type == "cpu"
        assert image_index.shape[0] >= 1
        if self.batch_size is not None:
            assert image_index.shape[0] <= self.batch_size
        i, t = image_index.tolist(), text_index.tolist()
        self.calls.append((language, i, t))
        values = self.table[language][np.array(i), np.array(t)]
        if self.kind == "torch":
            return torch.tensor(values, dtype=torch.float32)
        if self.kind == "numpy":
            return values.astype(np.float64)
        if self.kind == "int":
            return torch.tensor(values, dtype=torch.int64)
        raise AssertionError(self.kind)

    def pairs(self, language):
        """Every pair asked for in ``language``, in call order (repeats kept)."""
        return [
            pair for lang, i, t in self.calls if lang == language for pair in zip(i, t, strict=True)
        ]


def stage_inputs(images, texts, owners, table, k):
    """{lang: {direction: (coarse, candidates, fine, positives, query_rows)}} by hand."""
    out = {}
    for lang, t in texts.items():
        coarse = images.astype(np.float64) @ t.T.astype(np.float64)
        fine = table[lang].astype(np.float64)
        caps = captions(owners[lang], len(images))
        queries = np.flatnonzero([bool(c) for c in caps])
        cand_i2t = cm.top_candidates(coarse, min(k, t.shape[0]))
        cand_t2i = cm.top_candidates(coarse.T, min(k, len(images)))
        out[lang] = {
            "i2t": (
                coarse[queries],
                cand_i2t[queries],
                np.take_along_axis(fine[queries], cand_i2t[queries], 1),
                [caps[i] for i in queries],
                queries,
                cand_i2t,
            ),
            "t2i": (
                coarse.T,
                cand_t2i,
                np.take_along_axis(fine.T, cand_t2i, 1),
                owners[lang],
                np.arange(t.shape[0]),
                cand_t2i,
            ),
        }
    return out


def expected_counts(coarse, cand, fine, positives, protocol):
    if protocol == "cascade":
        return cm.reranked_rank_counts(coarse, cand, fine, positives)
    return cm.rank_counts(cm.released_rerank_scores(coarse, cand, fine), positives)


def expected_ranks(coarse, cand, fine, positives, protocol, ties):
    if protocol == "cascade":
        return cm.reranked_ranks(coarse, cand, fine, positives, ties=ties)
    return cm.positive_ranks(cm.released_rerank_scores(coarse, cand, fine), positives, ties=ties)


def needed_pairs(inputs, lang):
    """The union of the pairs image-to-text queries and text-to-image queries need."""
    i2t, t2i = inputs[lang]["i2t"], inputs[lang]["t2i"]
    pairs = {(int(i), int(t)) for i in i2t[4] for t in i2t[5][i]}
    pairs |= {(int(i), int(t)) for t in t2i[4] for i in t2i[5][t]}
    return pairs


def assert_direction(report, lang, d, coarse, cand, fine, positives, rows, protocol, ties):
    """Ranks and counts of ``report[lang][d]`` at ``rows`` equal the explicit ones; the
    image-to-text rows without a caption are NaN."""
    ranks = report.ranks[lang][d]
    np.testing.assert_array_equal(
        ranks[rows], expected_ranks(coarse, cand, fine, positives, protocol, ties)
    )
    if d == "i2t":
        others = np.setdiff1d(np.arange(len(ranks)), rows)
        assert np.isnan(ranks[others]).all()
    got, want = report.counts[lang][d], expected_counts(coarse, cand, fine, positives, protocol)
    for field in ("above", "tied_negatives", "tied_positives"):
        np.testing.assert_array_equal(getattr(got, field)[rows], getattr(want, field), field)


def counts_of(report):
    return {
        (lang, d): (c.above.tolist(), c.tied_negatives.tolist(), c.tied_positives.tolist())
        for lang, dirs in report.counts.items()
        for d, c in dirs.items()
    }


def ranks_of(report):
    return {
        (lang, d): np.nan_to_num(r, nan=-1.0).tolist()
        for lang, dirs in report.ranks.items()
        for d, r in dirs.items()
    }


# --------------------------------------------------------------------------- scorer


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("ties", cm.TIES)
@pytest.mark.parametrize("k", [1, 4, 9, 20])
def test_scorer_ranks_equal_the_explicit_two_stage_ranks(k, ties, protocol):
    images, texts, owners, table = problem()
    report = cm.evaluate(
        images,
        texts,
        owners,
        rerank=Recorder(table),
        rerank_k=k,
        rerank_batch_size=16,
        rerank_protocol=protocol,
        ties=ties,
        device="cpu",
    )
    inputs = stage_inputs(images, texts, owners, table, k)
    for lang in texts:
        for d in ("i2t", "t2i"):
            coarse, cand, fine, positives, rows, _ = inputs[lang][d]
            assert_direction(report, lang, d, coarse, cand, fine, positives, rows, protocol, ties)
    settings = report.to_dict()["settings"]
    assert settings["rerank"] == ("cascade" if protocol == "cascade" else "filled (-100)")
    assert settings["rerank_k"] == k
    assert settings["ties"] == ties


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_fine_scores_at_or_below_the_fill(protocol):
    """Fine scores around -100: the filled protocol ties or sinks candidates, the cascade
    does not; both still equal their explicit definitions."""
    images, texts, owners, table = problem(seed=11)
    low = {lang: v - 100 for lang, v in table.items()}  # in [-103, -97]
    report = cm.evaluate(
        images,
        texts,
        owners,
        rerank=Recorder(low),
        rerank_k=4,
        rerank_protocol=protocol,
        device="cpu",
    )
    inputs = stage_inputs(images, texts, owners, low, 4)
    for lang in texts:
        for d in ("i2t", "t2i"):
            coarse, cand, fine, positives, rows, _ = inputs[lang][d]
            assert_direction(
                report, lang, d, coarse, cand, fine, positives, rows, protocol, "expected"
            )


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_embedding_dtype_changes_nothing_on_exact_products(dtype):
    images, texts, owners, table = problem(seed=12)
    reference = cm.evaluate(images, texts, owners, rerank=Recorder(table), rerank_k=5, device="cpu")
    got = cm.evaluate(
        torch.from_numpy(images).to(dtype),
        {lang: torch.from_numpy(t).to(dtype) for lang, t in texts.items()},
        owners,
        rerank=Recorder(table),
        rerank_k=5,
        device="cpu",
    )
    assert counts_of(got) == counts_of(reference)


def test_languages_selects_what_is_scored():
    images, texts, owners, table = problem()
    scorer = Recorder(table)
    report = cm.evaluate(
        images, texts, owners, rerank=scorer, rerank_k=3, languages=["fr"], device="cpu"
    )
    assert report.languages == ["fr"]
    assert {lang for lang, _, _ in scorer.calls} == {"fr"}
    inputs = stage_inputs(images, {"fr": texts["fr"]}, owners, table, 3)
    assert set(scorer.pairs("fr")) == needed_pairs(inputs, "fr")


def test_the_second_stage_changes_the_ranks():
    """The problem is not one where re-ranking is a no-op (else the tests prove little)."""
    images, texts, owners, table = problem()
    plain = cm.evaluate(images, texts, owners, device="cpu")
    reranked = cm.evaluate(images, texts, owners, rerank=Recorder(table), rerank_k=4, device="cpu")
    filled = cm.evaluate(
        images,
        texts,
        owners,
        rerank=Recorder(table),
        rerank_k=4,
        rerank_protocol="filled",
        device="cpu",
    )
    assert ranks_of(plain) != ranks_of(reranked)
    assert ranks_of(filled) != ranks_of(reranked)
    tied = sum(int((c.tied_negatives > 0).sum()) for d in plain.counts.values() for c in d.values())
    assert tied > 5  # first-stage ties are real


@pytest.mark.parametrize("k", [1, 3, 6, 50])
@pytest.mark.parametrize("batch_size", [1, 7, 4096])
def test_each_needed_pair_is_scored_once_and_no_other(k, batch_size):
    images, texts, owners, table = problem(seed=1)
    scorer = Recorder(table, batch_size=batch_size)
    cm.evaluate(
        images,
        texts,
        owners,
        rerank=scorer,
        rerank_k=k,
        rerank_batch_size=batch_size,
        device="cpu",
    )
    inputs = stage_inputs(images, texts, owners, table, k)
    assert {lang for lang, _, _ in scorer.calls} == set(texts)
    for lang, t in texts.items():
        pairs = scorer.pairs(lang)
        assert len(pairs) == len(set(pairs)), "a pair was scored twice"
        assert set(pairs) == needed_pairs(inputs, lang)
        assert all(0 <= i < N_IMAGES and 0 <= j < t.shape[0] for i, j in pairs)
    # Some pairs are needed by both directions here, so the deduplication is exercised.
    i2t, t2i = inputs["en"]["i2t"], inputs["en"]["t2i"]
    from_i2t = {(int(i), int(t)) for i in i2t[4] for t in i2t[5][i]}
    from_t2i = {(int(i), int(t)) for t in t2i[4] for i in t2i[5][t]}
    assert from_i2t & from_t2i


def test_images_without_a_caption_are_only_scored_as_text_to_image_candidates():
    images, texts, owners, table = problem(seed=2)
    scorer = Recorder(table)
    cm.evaluate(images, texts, owners, rerank=scorer, rerank_k=3, device="cpu")
    cand_t2i = cm.top_candidates(texts["fr"].astype(np.float64) @ images.T.astype(np.float64), 3)
    without = np.flatnonzero(~has_caption(owners["fr"]))
    asked = {(i, t) for i, t in scorer.pairs("fr") if i in set(without.tolist())}
    assert asked == {
        (int(i), t) for t in range(len(cand_t2i)) for i in cand_t2i[t] if i in set(without)
    }


@pytest.mark.parametrize("kind", ["torch", "numpy", "int"])
def test_scores_may_be_any_real_1d_array(kind):
    images, texts, owners, table = problem()
    reference = cm.evaluate(images, texts, owners, rerank=Recorder(table), rerank_k=4, device="cpu")
    got = cm.evaluate(
        images, texts, owners, rerank=Recorder(table, kind=kind), rerank_k=4, device="cpu"
    )
    assert counts_of(got) == counts_of(reference)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_chunk_size_batch_size_and_ties_change_nothing(protocol):
    images, texts, owners, table = problem(seed=3)
    reference = cm.evaluate(
        images,
        texts,
        owners,
        rerank=Recorder(table),
        rerank_k=5,
        rerank_protocol=protocol,
        device="cpu",
    )
    expected = counts_of(reference)
    for chunk_size in (1, 3, 5, 64, None):
        for batch_size in (1, 2, 13, 10_000):
            for ties in ("expected", "pessimistic"):
                got = cm.evaluate(
                    images,
                    texts,
                    owners,
                    rerank=Recorder(table, batch_size=batch_size),
                    rerank_k=5,
                    rerank_batch_size=batch_size,
                    rerank_protocol=protocol,
                    chunk_size=chunk_size,
                    ties=ties,
                    device="cpu",
                )
                assert counts_of(got) == expected, (chunk_size, batch_size, ties)
                if ties == "expected":
                    assert ranks_of(got) == ranks_of(reference), (chunk_size, batch_size)


def test_ties_policies_share_the_counts_and_order_the_ranks():
    images, texts, owners, table = problem(seed=4)
    reports = {
        ties: cm.evaluate(
            images, texts, owners, rerank=Recorder(table), rerank_k=4, ties=ties, device="cpu"
        )
        for ties in cm.TIES
    }
    counts = {counts_of(r).__repr__() for r in reports.values()}
    assert len(counts) == 1
    for lang in texts:
        for d in ("i2t", "t2i"):
            low = reports["optimistic"].ranks[lang][d]
            high = reports["pessimistic"].ranks[lang][d]
            mid = reports["expected"].ranks[lang][d]
            ok = ~np.isnan(low)
            assert (low[ok] <= mid[ok]).all() and (mid[ok] <= high[ok]).all()
            np.testing.assert_array_equal(
                reports["expected"].with_ties("average").ranks[lang][d],
                reports["average"].ranks[lang][d],
            )


def test_fine_equal_to_coarse_without_ties_gives_the_plain_ranks():
    """With distinct float scores and the first stage's own scores as the second stage,
    the cascade is the plain ranking (the identity of reranked_ranks' docstring)."""
    rng = np.random.default_rng(5)
    images = rng.standard_normal((20, 8)).astype(np.float32)
    owners = {"en": np.arange(20), "fr": np.array([i for i in range(20) if i % 4])}
    texts = {
        lang: (images[o] + rng.standard_normal((len(o), 8))).astype(np.float32)
        for lang, o in owners.items()
    }
    table = {lang: images.astype(np.float64) @ t.T.astype(np.float64) for lang, t in texts.items()}
    plain = cm.evaluate(images, texts, owners, device="cpu")
    for k in (1, 3, 7):
        got = cm.evaluate(
            images, texts, owners, rerank=Recorder(table, kind="numpy"), rerank_k=k, device="cpu"
        )
        assert ranks_of(got) == ranks_of(plain), k


# --------------------------------------------------------------------------- k >= gallery


@pytest.mark.parametrize("ties", cm.TIES)
@pytest.mark.parametrize("k", [28, 100])
def test_k_at_least_the_gallery_rescores_everything(k, ties):
    images, texts, owners, table = problem(seed=6)
    scorer = Recorder(table)
    report = cm.evaluate(images, texts, owners, rerank=scorer, rerank_k=k, ties=ties, device="cpu")
    for lang, t in texts.items():
        m = t.shape[0]
        pairs = scorer.pairs(lang)
        assert len(pairs) == len(set(pairs)) == N_IMAGES * m  # every pair, once
        full = table[lang].astype(np.float64)
        rows = np.flatnonzero(has_caption(owners[lang]))
        caps = captions(owners[lang])
        np.testing.assert_array_equal(
            report.ranks[lang]["i2t"][rows],
            cm.positive_ranks(full[rows], [caps[i] for i in rows], ties=ties),
        )
        np.testing.assert_array_equal(
            report.ranks[lang]["t2i"], cm.positive_ranks(full.T, owners[lang], ties=ties)
        )
    # Every fine score is above -100, so the filled protocol agrees when k covers all.
    filled = cm.evaluate(
        images,
        texts,
        owners,
        rerank=Recorder(table),
        rerank_k=k,
        rerank_protocol="filled",
        ties=ties,
        device="cpu",
    )
    assert ranks_of(filled) == ranks_of(report)


# --------------------------------------------------------------------------- boundary ties


def boundary_problem():
    """Image 0's third-best texts tie (score 3: texts 1, 3, 4, 5); images 1-4 tie (score 5)
    as the best images of texts 1, 3, 4, 5. Image 4 has no caption, so it is scored only
    as a text-to-image candidate, and it never is one: it loses every tie to 1-3."""
    images = np.array(
        [[1, 0, 0], [0, 1, 0], [0, 1, 0], [0, 1, 0], [0, 1, 0]],
        dtype=np.float32,
    )
    texts = np.array(
        [
            [1, 0, 0],  # image 0: 1, others: 0
            [3, 5, 0],  # image 0: 3, others: 5
            [5, 0, 0],  # image 0: 5, others: 0
            [3, 5, 0],
            [3, 5, 0],
            [3, 5, 0],
            [0, 2, 0],  # image 0: 0, others: 2
            [0, 2, 0],
        ],
        dtype=np.float32,
    )
    owners = np.array([0, 1, 0, 2, 3, 1, 2, 3])  # image 4: no caption
    return images, texts, owners


def test_ties_at_the_kth_score_go_to_the_lower_index():
    images, texts, owners = boundary_problem()
    table = {"xx": np.arange(5 * 8).reshape(5, 8) % 7}
    scorer = Recorder(table)
    cm.evaluate(images, {"xx": texts}, {"xx": owners}, rerank=scorer, rerank_k=3, device="cpu")
    asked = set(scorer.pairs("xx"))
    # Image-to-text: image 0's candidates are texts 2 (5), then 1 and 3 of the four at 3.
    assert {(0, t) for t in (1, 2, 3)} <= asked
    assert not {(0, 4), (0, 5)} & asked
    # Text-to-image: texts 1, 3, 4, 5 take images 1, 2, 3 of the four at 5; image 4,
    # without a caption, is never a candidate of anything.
    for t in (1, 3, 4, 5):
        assert {(i, t) for i in (1, 2, 3)} <= asked
    assert not [pair for pair in asked if pair[0] == 4]
    # The same as top_candidates' rule, pair for pair.
    coarse = images.astype(np.float64) @ texts.T.astype(np.float64)
    np.testing.assert_array_equal(cm.top_candidates(coarse, 3)[0], [2, 1, 3])
    inputs = {
        "xx": {
            "i2t": (None, None, None, None, np.arange(4), cm.top_candidates(coarse, 3)),
            "t2i": (None, None, None, None, np.arange(8), cm.top_candidates(coarse.T, 3)),
        }
    }
    assert asked == needed_pairs(inputs, "xx")


def test_boundary_ties_decide_the_cascade_rank():
    """Image 0's caption text 4 ties at the boundary and loses it: it is not a candidate,
    so it ranks behind the three candidates whatever their fine scores."""
    images, texts, _ = boundary_problem()
    owners = np.array([0, 1, 3, 2, 0, 1, 2, 3])  # text 4 is image 0's only caption here
    table = {"xx": np.zeros((5, 8), dtype=np.int64)}
    report = cm.evaluate(
        images,
        {"xx": texts},
        {"xx": owners},
        rerank=Recorder(table),
        rerank_k=3,
        ties="pessimistic",
        device="cpu",
    )
    # Candidates 2, 1, 3 (all fine 0) first; behind them texts 4 and 5 tie at coarse 3.
    assert report.ranks["xx"]["i2t"][0] == 3 + 2
    optimistic = report.with_ties("optimistic")
    assert optimistic.ranks["xx"]["i2t"][0] == 3 + 1


# --------------------------------------------------------------------------- stored stages


def random_candidates(rng, n_queries, n_gallery, k):
    return np.stack([rng.permutation(n_gallery)[:k] for _ in range(n_queries)])


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("ties", ["expected", "optimistic", "pessimistic"])
@pytest.mark.parametrize("chunk_size", [2, None])
def test_stored_second_stage_in_evaluate(protocol, ties, chunk_size):
    images, texts, owners, _ = problem(seed=7)
    rng = np.random.default_rng(8)
    m = texts["fr"].shape[0]
    cand = random_candidates(rng, N_IMAGES, m, 4)
    fine = rng.integers(-2, 3, cand.shape).astype(np.float32)
    cand_t2i = random_candidates(rng, texts["en"].shape[0], N_IMAGES, 3)
    fine_t2i = rng.integers(-2, 3, cand_t2i.shape)
    report = cm.evaluate(
        images,
        texts,
        owners,
        candidates={"i2t": {"fr": cand}, "t2i": {"en": cand_t2i}},
        fine={"i2t": {"fr": fine}, "t2i": {"en": fine_t2i}},
        rerank_protocol=protocol,
        ties=ties,
        chunk_size=chunk_size,
        device="cpu",
    )
    plain = cm.evaluate(images, texts, owners, ties=ties, chunk_size=chunk_size, device="cpu")
    rows = np.flatnonzero(has_caption(owners["fr"]))
    caps = captions(owners["fr"])
    coarse = images.astype(np.float64) @ texts["fr"].T.astype(np.float64)
    assert_direction(
        report,
        "fr",
        "i2t",
        coarse[rows],
        cand[rows],
        fine[rows],
        [caps[i] for i in rows],
        rows,
        protocol,
        ties,
    )
    coarse_en = texts["en"].astype(np.float64) @ images.T.astype(np.float64)
    assert_direction(
        report,
        "en",
        "t2i",
        coarse_en,
        cand_t2i,
        fine_t2i,
        owners["en"],
        np.arange(len(coarse_en)),
        protocol,
        ties,
    )
    for lang, d in (("fr", "t2i"), ("en", "i2t")):
        np.testing.assert_array_equal(report.ranks[lang][d], plain.ranks[lang][d])
    settings = report.to_dict()["settings"]
    assert settings["rerank"] == ("cascade" if protocol == "cascade" else "filled (-100)")
    assert "rerank_k" in settings


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("ties", ["expected", "average", "pessimistic"])
def test_stored_second_stage_in_evaluate_scores(protocol, ties):
    rng = np.random.default_rng(9)
    owners = {"en": np.repeat(np.arange(10), 2), "fr": np.array([0, 2, 3, 5, 6, 8, 9, 2])}
    i2t = {lang: rng.integers(-3, 4, (10, len(o))) for lang, o in owners.items()}
    t2i = {lang: rng.integers(-3, 4, (len(o), 10)).astype(np.float32) for lang, o in owners.items()}
    cand = {
        "i2t": {"fr": random_candidates(rng, 10, 8, 3)},
        "t2i": {"fr": random_candidates(rng, 8, 10, 10), "en": random_candidates(rng, 20, 10, 2)},
    }
    fine = {
        d: {lang: rng.integers(-2, 3, c.shape).astype(np.float64) for lang, c in by.items()}
        for d, by in cand.items()
    }
    kwargs = {"text_to_image": owners, "ties": ties, "device": "cpu", "chunk_size": 3}
    report = cm.evaluate_scores(
        i2t=i2t, t2i=t2i, candidates=cand, fine=fine, rerank_protocol=protocol, **kwargs
    )
    plain = cm.evaluate_scores(i2t=i2t, t2i=t2i, **kwargs)
    rows = np.flatnonzero(has_caption(owners["fr"], 10))
    caps = captions(owners["fr"], 10)
    c, f = cand["i2t"]["fr"], fine["i2t"]["fr"]
    assert_direction(
        report,
        "fr",
        "i2t",
        i2t["fr"][rows],
        c[rows],
        f[rows],
        [caps[i] for i in rows],
        rows,
        protocol,
        ties,
    )
    for lang in ("fr", "en"):
        c, f = cand["t2i"][lang], fine["t2i"][lang]
        rows_t = np.arange(len(owners[lang]))
        assert_direction(report, lang, "t2i", t2i[lang], c, f, owners[lang], rows_t, protocol, ties)
    np.testing.assert_array_equal(report.ranks["en"]["i2t"], plain.ranks["en"]["i2t"])
    assert report.to_dict()["settings"]["rerank"] == (
        "cascade" if protocol == "cascade" else "filled (-100)"
    )


def test_stored_candidates_equal_the_scorer():
    """The scorer's candidates and fine scores, handed in as stored, give the same Report."""
    images, texts, owners, table = problem(seed=10)
    inputs = stage_inputs(images, texts, owners, table, 4)
    scored = cm.evaluate(images, texts, owners, rerank=Recorder(table), rerank_k=4, device="cpu")
    cand, fine = {"i2t": {}, "t2i": {}}, {"i2t": {}, "t2i": {}}
    for lang in texts:
        for d in ("i2t", "t2i"):
            full_cand = inputs[lang][d][5]
            source = table[lang] if d == "i2t" else table[lang].T
            cand[d][lang] = full_cand
            fine[d][lang] = np.take_along_axis(source, full_cand, 1)
    stored = cm.evaluate(images, texts, owners, candidates=cand, fine=fine, device="cpu")
    assert counts_of(stored) == counts_of(scored)
    from_scores = cm.evaluate_scores(
        i2t={lang: images @ t.T for lang, t in texts.items()},
        t2i={lang: t @ images.T for lang, t in texts.items()},
        text_to_image=owners,
        candidates=cand,
        fine=fine,
        device="cpu",
    )
    assert counts_of(from_scores) == counts_of(scored)


# --------------------------------------------------------------------------- errors


def small():
    images, texts, owners, table = problem()
    return images, texts, owners, Recorder(table)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"rerank": 5}, "rerank"),
        ({"rerank": "cross_encoder"}, "rerank"),
        ({"rerank_k": 0}, "rerank_k"),
        ({"rerank_k": -3}, "rerank_k"),
        ({"rerank_k": 2.5}, "rerank_k"),
        ({"rerank_k": "4"}, "rerank_k"),
        ({"rerank_k": True}, "rerank_k"),
        ({"rerank_batch_size": 0}, "rerank_batch_size"),
        ({"rerank_batch_size": 8.0}, "rerank_batch_size"),
        ({"rerank_batch_size": None}, "rerank_batch_size"),
        ({"rerank_protocol": "released"}, "rerank_protocol"),
        ({"rerank_protocol": None}, "rerank_protocol"),
    ],
)
def test_bad_rerank_options(kwargs, name):
    images, texts, owners, scorer = small()
    kwargs = {"rerank": scorer, **kwargs}
    with pytest.raises(ValueError, match=re.escape(name)) as info:
        cm.evaluate(images, texts, owners, device="cpu", **kwargs)
    if name == "rerank":
        assert "rerank_" not in str(info.value)
    assert not scorer.calls


def test_bad_protocol_in_evaluate_scores():
    with pytest.raises(ValueError, match="rerank_protocol"):
        cm.evaluate_scores(
            i2t={"en": np.eye(3)},
            candidates={"i2t": {"en": np.zeros((3, 1), dtype=np.int64)}},
            fine={"i2t": {"en": np.zeros((3, 1))}},
            rerank_protocol="argsort",
            device="cpu",
        )


def wrapped(result_of):
    """A scorer returning ``result_of(values, image_index, text_index)``."""

    def score(language, image_index, text_index):
        values = torch.ones(image_index.shape[0], dtype=torch.float64)
        return result_of(values, image_index, text_index)

    return score


@pytest.mark.parametrize(
    "result_of",
    [
        lambda v, i, t: v[:-1],
        lambda v, i, t: torch.cat([v, v[:1]]),
        lambda v, i, t: v[:, None],
        lambda v, i, t: v[0],
        lambda v, i, t: "scores",
        lambda v, i, t: None,
        lambda v, i, t: np.array([object()] * len(v), dtype=object),
        lambda v, i, t: [{"score": 1.0}] * len(v),
        lambda v, i, t: v > 0,
        lambda v, i, t: v.to(torch.complex64),
    ],
    ids=[
        "short",
        "long",
        "column",
        "scalar",
        "string",
        "none",
        "objects",
        "dicts",
        "bool",
        "complex",
    ],
)
def test_a_scorer_returning_no_scores_is_named(result_of):
    images, texts, owners, _ = small()
    with pytest.raises(ValueError, match="rerank"):
        cm.evaluate(
            images,
            texts,
            owners,
            rerank=wrapped(result_of),
            rerank_k=3,
            rerank_batch_size=5,
            device="cpu",
        )


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_non_finite_score_names_language_image_and_text(bad):
    images, texts, owners, table = problem()
    inputs = stage_inputs(images, texts, owners, table, 3)
    target = sorted(needed_pairs(inputs, "fr"))[5]

    def score(language, image_index, text_index):
        values = torch.zeros(image_index.shape[0], dtype=torch.float32)
        if language == "fr":
            hit = (image_index == target[0]) & (text_index == target[1])
            values[hit] = bad
        return values

    with pytest.raises(ValueError, match="rerank") as info:
        cm.evaluate(images, texts, owners, rerank=score, rerank_k=3, device="cpu")
    message = str(info.value)
    assert "'fr'" in message
    assert re.search(rf"\bimage {target[0]}\b", message), message
    assert re.search(rf"\btext {target[1]}\b", message), message


def test_rerank_and_candidates_together_is_refused():
    images, texts, owners, scorer = small()
    with pytest.raises(ValueError, match="rerank"):
        cm.evaluate(
            images,
            texts,
            owners,
            rerank=scorer,
            candidates={"i2t": {"fr": np.zeros((N_IMAGES, 1), dtype=np.int64)}},
            fine={"i2t": {"fr": np.zeros((N_IMAGES, 1))}},
            device="cpu",
        )
    assert not scorer.calls


def stored_case(change):
    """(candidates, fine) for "fr" image-to-text after ``change``; valid before it."""
    rng = np.random.default_rng(0)
    images, texts, owners, _ = problem()
    m = texts["fr"].shape[0]
    cand = random_candidates(rng, N_IMAGES, m, 3)
    fine = np.zeros(cand.shape)
    return images, texts, owners, change(cand, fine, m)


@pytest.mark.parametrize(
    ("change", "name"),
    [
        (lambda c, f, m: ({"i2t": {"fr": c}}, None), "fine"),
        (lambda c, f, m: (None, {"i2t": {"fr": f}}), "candidates"),
        (lambda c, f, m: ({"i2t": {"xx": c}}, {"i2t": {"xx": f}}), "candidates"),
        (lambda c, f, m: ({"x2y": {"fr": c}}, {"x2y": {"fr": f}}), "candidates"),
        (lambda c, f, m: ({"i2t": {"fr": c}}, {"t2i": {"fr": f}}), "fine"),
        (lambda c, f, m: ({"i2t": {"fr": c}}, {"i2t": {"en": f}}), "fine"),
        (
            lambda c, f, m: ({"i2t": {"fr": np.where(c == c[0, 0], m, c)}}, {"i2t": {"fr": f}}),
            "candidates",
        ),
        (
            lambda c, f, m: ({"i2t": {"fr": np.where(c == c[0, 0], -1, c)}}, {"i2t": {"fr": f}}),
            "candidates",
        ),
        (lambda c, f, m: ({"t2i": {"fr": c[:, :2]}}, {"t2i": {"fr": f[:, :2]}}), "candidates"),
        (lambda c, f, m: ({"i2t": {"fr": c[:-1]}}, {"i2t": {"fr": f[:-1]}}), "candidates"),
        (lambda c, f, m: ({"i2t": {"fr": c.astype(float)}}, {"i2t": {"fr": f}}), "candidates"),
        (
            lambda c, f, m: (
                {"i2t": {"fr": np.concatenate([c, c[:, :1]], 1)}},
                {"i2t": {"fr": np.zeros((N_IMAGES, 4))}},
            ),
            "candidates",
        ),
        (lambda c, f, m: ({"i2t": {"fr": c}}, {"i2t": {"fr": f[:, :2]}}), "fine"),
        (lambda c, f, m: ({"i2t": {"fr": c}}, {"i2t": {"fr": f.T}}), "fine"),
        (lambda c, f, m: ({"i2t": {"fr": c}}, {"i2t": {"fr": f[0]}}), "fine"),
        (lambda c, f, m: ({"i2t": {"fr": c}}, {"i2t": {"fr": np.full(f.shape, np.nan)}}), "fine"),
        (lambda c, f, m: ({"i2t": {"fr": c}}, {"i2t": {"fr": f.astype(str)}}), "fine"),
    ],
    ids=[
        "no-fine",
        "no-candidates",
        "unknown-language",
        "unknown-direction",
        "fine-other-direction",
        "fine-other-language",
        "index-too-high",
        "index-negative",
        "t2i-wrong-rows",
        "i2t-wrong-rows",
        "float-candidates",
        "repeated-candidate",
        "fine-too-narrow",
        "fine-transposed",
        "fine-1d",
        "fine-nan",
        "fine-strings",
    ],
)
def test_bad_stored_second_stage(change, name):
    images, texts, owners, (cand, fine) = stored_case(change)
    with pytest.raises(ValueError, match=re.escape(name)):
        cm.evaluate(images, texts, owners, candidates=cand, fine=fine, device="cpu")
    with pytest.raises(ValueError, match=re.escape(name)):
        cm.evaluate_scores(
            i2t={lang: images @ t.T for lang, t in texts.items()},
            t2i={lang: t @ images.T for lang, t in texts.items()},
            text_to_image=owners,
            candidates=cand,
            fine=fine,
            device="cpu",
        )


def test_stored_candidates_for_a_direction_without_scores():
    s = np.arange(12.0).reshape(3, 4)
    with pytest.raises(ValueError, match="candidates"):
        cm.evaluate_scores(
            i2t={"en": s},
            text_to_image={"en": [0, 1, 2, 0]},
            candidates={"t2i": {"en": np.zeros((4, 1), dtype=np.int64)}},
            fine={"t2i": {"en": np.zeros((4, 1))}},
            device="cpu",
        )


def test_stored_candidates_with_k_zero_are_the_plain_ranks() -> None:
    # No item re-scored: the cascade is the first stage alone.
    s = np.array([[3.0, 1.0, 2.0], [0.0, 2.0, 1.0]])
    none = {"i2t": {"en": np.zeros((2, 0), dtype=np.int64)}}
    got = cm.evaluate_scores(
        i2t={"en": s},
        text_to_image={"en": [0, 1, 0]},
        candidates=none,
        fine={"i2t": {"en": np.zeros((2, 0))}},
        device="cpu",
    )
    plain = cm.evaluate_scores(i2t={"en": s}, text_to_image={"en": [0, 1, 0]}, device="cpu")
    np.testing.assert_array_equal(got.ranks["en"]["i2t"], plain.ranks["en"]["i2t"])
