"""Consistency breakdowns against naive loops, their properties, and bad input."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats

import ccr_metrics as cm
from ccr_metrics import (
    Report,
    consistency_at_k,
    consistency_breakdown,
    largest_spread,
    pairwise_disagreement,
    recall_spread,
)

LANGS = ["en", "de", "fr", "cs"]
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "multi30k_synthetic.npz"


@pytest.fixture(scope="module")
def report():
    d = np.load(EXAMPLE)
    return cm.evaluate(
        d["image"],
        {lang: d["text." + lang] for lang in LANGS},
        {lang: d["text_to_image." + lang] for lang in LANGS},
        device="cpu",
    )


def random_ranks(seed, n=40, k=4, missing=0.3):
    rng = np.random.default_rng(seed)
    ranks = rng.integers(1, 12, size=(n, k)).astype(float)
    mask = rng.random((n, k)) > missing
    ranks[~mask] = np.nan
    return ranks, mask


def naive_consistency(ranks, mask, k):
    counts = {"all": 0, "some": 0, "none": 0}
    for row, present in zip(ranks, mask, strict=True):
        langs = [j for j in range(len(row)) if present[j]]
        if len(langs) < 2:
            continue
        hits = [row[j] <= k for j in langs]
        counts["all" if all(hits) else "some" if any(hits) else "none"] += 1
    n = sum(counts.values())
    return {key: v / n for key, v in counts.items()}


def naive_pairwise(ranks, mask):
    k = ranks.shape[1]
    msd, rho = np.eye(k) * 0.0, np.eye(k)
    for a in range(k):
        for b in range(k):
            if a == b:
                continue
            pairs = [
                (ranks[j, a], ranks[j, b]) for j in range(len(ranks)) if mask[j, a] and mask[j, b]
            ]
            if len(pairs) < 2:
                msd[a, b] = rho[a, b] = math.nan
                continue
            msd[a, b] = sum((x - y) ** 2 for x, y in pairs) / len(pairs)
            x, y = zip(*pairs, strict=True)
            rho[a, b] = (
                stats.spearmanr(x, y).statistic if len(set(x)) > 1 and len(set(y)) > 1 else math.nan
            )
    return msd, rho


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("k", [1, 3, 10])
def test_consistency_matches_loop(seed, k):
    ranks, mask = random_ranks(seed)
    got = consistency_at_k(ranks, k, mask=mask)
    assert got == pytest.approx(naive_consistency(ranks, mask, k))
    assert sum(got.values()) == pytest.approx(1.0)


def test_consistency_without_mask_and_torch():
    ranks = np.array([[1, 1, 1], [1, 2, 5], [4, 3, 9]])
    expected = {"all": 1 / 3, "some": 1 / 3, "none": 1 / 3}
    assert consistency_at_k(ranks, 1) == pytest.approx(expected)
    assert consistency_at_k(torch.tensor(ranks), 1) == pytest.approx(expected)


def test_fractional_tied_rank_is_not_in_top_1():
    assert consistency_at_k(np.array([[1.5, 1.0]]), 1) == {"all": 0.0, "some": 1.0, "none": 0.0}


@pytest.mark.parametrize("seed", range(5))
def test_pairwise_matches_loop(seed):
    ranks, mask = random_ranks(seed, missing=0.4)
    msd, rho = pairwise_disagreement(ranks, mask=mask)
    want_msd, want_rho = naive_pairwise(ranks, mask)
    np.testing.assert_allclose(msd, want_msd, equal_nan=True)
    np.testing.assert_allclose(rho, want_rho, equal_nan=True)


def test_pairwise_nan_for_few_shared_or_constant():
    ranks = np.array([[1.0, 2.0, 3.0], [2.0, 2.0, 1.0], [3.0, 2.0, 7.0]])
    mask = np.array([[True, True, True], [True, True, False], [True, True, False]])
    msd, rho = pairwise_disagreement(ranks, mask=mask)
    assert np.isnan(msd[0, 2]) and np.isnan(rho[2, 1])  # one shared instance
    assert msd[0, 1] == pytest.approx(2 / 3)
    assert np.isnan(rho[0, 1])  # language 1 ranks every instance 2
    assert np.diag(msd).tolist() == [0, 0, 0] and np.diag(rho).tolist() == [1, 1, 1]


def test_pairwise_torch_in_torch_out():
    ranks, mask = random_ranks(3)
    msd, rho = pairwise_disagreement(torch.tensor(ranks), mask=torch.tensor(mask))
    assert isinstance(msd, torch.Tensor) and isinstance(rho, torch.Tensor)
    np.testing.assert_allclose(msd.numpy(), pairwise_disagreement(ranks, mask=mask)[0])


def test_mean_msd_is_twice_mrv_without_missing():
    ranks, _ = random_ranks(7, missing=0.0)
    msd, _ = pairwise_disagreement(ranks)
    assert msd.mean() == pytest.approx(2 * cm.mean_rank_variance(ranks))


@given(
    arrays(
        np.float64, st.tuples(st.integers(2, 20), st.integers(2, 5)), elements=st.integers(1, 30)
    ),
    st.integers(1, 30),
)
def test_properties(ranks, k):
    fractions = consistency_at_k(ranks, k)
    assert sum(fractions.values()) == pytest.approx(1.0)
    assert all(0 <= v <= 1 for v in fractions.values())
    msd, rho = pairwise_disagreement(ranks)
    np.testing.assert_array_equal(msd, msd.T)
    np.testing.assert_array_equal(np.diag(msd), 0)
    assert (msd >= 0).all()
    np.testing.assert_array_equal(np.isnan(rho), np.isnan(rho.T))
    finite = rho[~np.isnan(rho)]
    assert ((finite >= -1 - 1e-12) & (finite <= 1 + 1e-12)).all()
    frame = largest_spread(ranks, top=5)
    assert list(frame["spread"]) == sorted(frame["spread"], reverse=True)


@pytest.mark.parametrize("reduction", ["std", "variance"])
def test_largest_spread_matches_instance_rank_variance(reduction):
    ranks, mask = random_ranks(2, n=60)
    frame = largest_spread(ranks, mask=mask, top=7, reduction=reduction, languages=LANGS)
    spread = cm.instance_rank_variance(ranks, reduction=reduction, mask=mask)
    order = sorted((i for i in range(60) if not np.isnan(spread[i])), key=lambda i: (-spread[i], i))
    assert list(frame.columns) == ["instance", "spread", *LANGS]
    assert frame["instance"].tolist() == order[:7]
    np.testing.assert_allclose(frame["spread"], spread[order[:7]])
    np.testing.assert_array_equal(frame[LANGS].to_numpy(), ranks[order[:7]])  # NaN where missing


def test_largest_spread_fewer_rows_than_top_and_default_names():
    ranks = np.array([[1.0, 5.0], [2.0, 2.0], [3.0, 9.0]])
    mask = np.array([[True, True], [True, False], [True, True]])
    frame = largest_spread(torch.tensor(ranks), mask=torch.tensor(mask), top=10)
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["instance", "spread", "0", "1"]
    assert frame["instance"].tolist() == [2, 0]


def test_recall_spread_matches_loop():
    recall = {"en": 0.9, "de": 0.5, "fr": 0.7, "cs": 0.5}
    got = recall_spread(recall)
    mean = sum(recall.values()) / 4
    assert got["range"] == pytest.approx(0.4)
    assert got["std"] == pytest.approx(math.sqrt(sum((v - mean) ** 2 for v in recall.values()) / 4))
    assert (got["best"], got["worst"]) == ("en", "de")  # the tie goes to the first


def test_breakdown_of_a_real_report(report):
    result = consistency_breakdown(report, k=5, top=3)
    out = result.to_dict()
    json.dumps(out, allow_nan=False)
    assert out["languages"] == LANGS and set(out["directions"]) == {"i2t", "t2i"}
    recall = report.recall()
    for direction in ("i2t", "t2i"):
        entry = out["directions"][direction]
        ranks, mask = report.rank_matrix(direction)
        assert entry["consistency"] == pytest.approx(naive_consistency(ranks, mask, 5))
        assert entry["instances"] == int((mask.sum(1) >= 2).sum())
        msd, rho = pairwise_disagreement(ranks, mask=mask)
        assert entry["msd"]["de"]["cs"] == pytest.approx(msd[1, 3])
        assert entry["spearman"]["fr"]["en"] == pytest.approx(rho[2, 0])
        for k in report.ks:
            want = recall_spread({lang: recall[lang][direction][k] for lang in LANGS})
            assert entry["recall_spread"][str(k)] == want
        frame = largest_spread(ranks, mask=mask, top=3, languages=LANGS)
        rows = entry["largest_spread"]
        assert [r["instance"] for r in rows] == frame["instance"].tolist()
        for row, (_, want_row) in zip(rows, frame.iterrows(), strict=True):
            for lang in LANGS:
                want_rank = want_row[lang]
                assert row["ranks"][lang] == (None if np.isnan(want_rank) else want_rank)


def test_breakdown_single_language_has_no_rank_entries():
    one = Report(
        ranks={"en": {"i2t": np.array([1.0, 2.0]), "t2i": np.array([2.0, 1.0])}},
        text_to_image={"en": np.array([0, 1])},
        n_images=2,
        ks=(1,),
    )
    entry = consistency_breakdown(one).to_dict()["directions"]["i2t"]
    assert entry["consistency"] is None and entry["largest_spread"] is None
    assert entry["recall_spread"]["1"]["range"] == 0.0


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: consistency_at_k(np.ones((3, 2)), 0), "k must be a positive integer"),
        (lambda: consistency_at_k(np.ones((3, 2)), True), "k must be a positive integer"),
        (lambda: consistency_at_k(np.ones((3, 1)), 1), r"ranks must have at least 2 .*\[3, 1\]"),
        (lambda: consistency_at_k(np.ones(3), 1), "ranks must be 2-D"),
        (
            lambda: consistency_at_k(np.ones((3, 2)), 1, mask=np.ones((3, 3), bool)),
            r"mask must have shape \[3, 2\]",
        ),
        (
            lambda: consistency_at_k(np.ones((2, 2)), 1, mask=np.array([[True, False]] * 2)),
            "two or more languages",
        ),
        (lambda: consistency_at_k(np.array([[1.0, np.nan]]), 1), r"ranks contains nan at \[0, 1\]"),
        (lambda: pairwise_disagreement(np.ones((4, 1))), "ranks must have at least 2"),
        (
            lambda: pairwise_disagreement(np.ones((4, 2)), mask=np.ones((2, 2), bool)),
            r"mask must have shape \[4, 2\]",
        ),
        (lambda: largest_spread(np.ones((4, 2)), top=0), "top must be a positive integer"),
        (lambda: largest_spread(np.ones((4, 1))), "ranks must have at least 2"),
        (lambda: largest_spread(np.ones((4, 2)), languages=["en"]), "languages must name the 2"),
        (
            lambda: largest_spread(np.ones((4, 2)), languages=["en", "en"]),
            "languages must be distinct",
        ),
        (lambda: largest_spread(np.ones((4, 2)), reduction="mean"), "reduction must be one of"),
        (lambda: recall_spread({}), "recall_by_language must hold"),
        (lambda: recall_spread({"en": math.nan}), r"recall_by_language\['en'\]"),
    ],
)
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"k": 0}, "k must"), ({"top": -1}, "top must"), ({"reduction": "mad"}, "reduction must")],
)
def test_breakdown_bad_options(report, kwargs, match):
    with pytest.raises(ValueError, match=match):
        consistency_breakdown(report, **kwargs)
