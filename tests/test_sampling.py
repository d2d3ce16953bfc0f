"""Hard positive languages and hard negatives: distributions, exclusions, reproducibility."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from ccr_metrics.sampling import (
    RELEASED_EPS,
    SIMILARITY_FLOOR,
    hard_negative_probabilities,
    hard_negatives,
    hard_positive_languages,
    hard_positive_probabilities,
)

DRAWS = 20_000


def counts(draws: torch.Tensor, n_categories: int) -> np.ndarray:
    return np.bincount(draws.numpy(), minlength=n_categories)


def assert_fits(observed: np.ndarray, probabilities: list[float]) -> None:
    """Chi-square goodness of fit over the categories with non-zero probability."""
    p = np.asarray(probabilities, dtype=np.float64)
    assert observed[p == 0].sum() == 0
    keep = p > 0
    expected = p[keep] / p[keep].sum() * observed.sum()
    # Seeds are fixed, so this is deterministic; 1e-3 leaves room for any seed anyway.
    assert chisquare(observed[keep], expected).pvalue > 1e-3


# --- hard positive languages ---------------------------------------------------------


def test_paper_positive_follows_eq8() -> None:
    s = [0.8, 0.5, 0.2, 0.1]
    total = sum(s)
    expected = [(1 - v / total) / (len(s) - 1) for v in s]
    sim = torch.tensor([s]).expand(DRAWS, -1)
    draws = hard_positive_languages(sim, generator=torch.Generator().manual_seed(0))
    assert_fits(counts(draws, 4), expected)
    torch.testing.assert_close(
        hard_positive_probabilities(sim[:1]), torch.tensor([expected], dtype=torch.float64)
    )


def test_paper_positive_with_mask_uses_present_texts_only() -> None:
    s = [0.3, 0.9, 0.6, 0.4]
    present = [True, False, True, True]
    total = sum(v for v, p in zip(s, present, strict=True) if p)
    expected = [(1 - v / total) / 2 if p else 0.0 for v, p in zip(s, present, strict=True)]
    sim = torch.tensor([s]).expand(DRAWS, -1)
    mask = torch.tensor([present]).expand(DRAWS, -1)
    draws = hard_positive_languages(sim, text_mask=mask, generator=torch.Generator().manual_seed(1))
    assert_fits(counts(draws, 4), expected)


def test_released_positive_uses_batch_maximum() -> None:
    row = [0.2, 0.5, 0.3]
    top = 0.9  # held by another image of the batch
    sim = torch.tensor([row] * DRAWS + [[top, 0.1, 0.0]])
    draws = hard_positive_languages(
        sim, variant="released", generator=torch.Generator().manual_seed(2)
    )[:DRAWS]
    assert_fits(counts(draws, 3), [top - v + RELEASED_EPS for v in row])


def test_released_positive_keeps_the_best_text_possible() -> None:
    probabilities = hard_positive_probabilities(torch.tensor([[0.9, 0.1]]), variant="released")
    assert 0 < probabilities[0, 0].item() < 1e-4


def test_uniform_positive() -> None:
    sim = torch.rand(DRAWS, 5, generator=torch.Generator().manual_seed(0))
    mask = torch.tensor([[True, True, False, True, False]]).expand(DRAWS, -1)
    draws = hard_positive_languages(
        sim, variant="uniform", text_mask=mask, generator=torch.Generator().manual_seed(3)
    )
    assert_fits(counts(draws, 5), [1, 1, 0, 1, 0])


@pytest.mark.parametrize("variant", ["paper", "released", "uniform"])
def test_positive_never_draws_a_missing_language(variant: str) -> None:
    g = torch.Generator().manual_seed(4)
    sim = torch.rand(500, 6, generator=g) * 2 - 1  # cosines of both signs
    mask = torch.rand(500, 6, generator=g) < 0.5
    mask[~mask.any(1), 3] = True
    sim[~mask] = math.nan  # ignored where missing
    for seed in range(5):
        draws = hard_positive_languages(
            sim, variant=variant, text_mask=mask, generator=torch.Generator().manual_seed(seed)
        )
        assert bool(mask[torch.arange(500), draws].all())
    probabilities = hard_positive_probabilities(sim, variant=variant, text_mask=mask)
    assert bool(torch.isfinite(probabilities).all())
    assert bool((probabilities >= 0).all())
    torch.testing.assert_close(probabilities.sum(1), torch.ones(500, dtype=torch.float64))


def test_paper_positive_with_non_positive_cosines() -> None:
    sim = torch.tensor(
        [
            [0.5, -0.2, -0.4],  # only text 0 aligns: the other two share the draw
            [-0.1, -0.3, 0.0],  # nothing above the floor: uniform
            [0.6, -0.7, 0.1],  # Eq. 8 as printed would give text 0 a negative weight
        ]
    )
    p = hard_positive_probabilities(sim).tolist()
    floor = SIMILARITY_FLOOR
    total = 0.5 + 2 * floor
    assert p[0] == pytest.approx([(total - v) / (2 * total) for v in (0.5, floor, floor)])
    assert p[0][0] < 1e-5
    assert p[1] == pytest.approx([1 / 3] * 3)
    total = 0.6 + floor + 0.1
    assert p[2] == pytest.approx([(total - v) / (2 * total) for v in (0.6, floor, 0.1)])


def test_paper_positive_with_a_single_text_draws_it() -> None:
    sim = torch.tensor([[0.4, 0.7, 0.2], [0.4, 0.7, 0.2]])
    mask = torch.tensor([[False, True, False], [True, True, True]])
    p = hard_positive_probabilities(sim, text_mask=mask)
    assert p[0].tolist() == [0.0, 1.0, 0.0]
    draws = hard_positive_languages(sim, text_mask=mask, generator=torch.Generator().manual_seed(0))
    assert draws[0].item() == 1
    # K = 1 for every image.
    single = hard_positive_languages(torch.tensor([[0.3], [-0.2]]))
    assert single.tolist() == [0, 0]


def test_positive_same_seed_same_draws() -> None:
    sim = torch.rand(64, 4, generator=torch.Generator().manual_seed(9))
    a = hard_positive_languages(sim, generator=torch.Generator().manual_seed(5))
    b = hard_positive_languages(sim, generator=torch.Generator().manual_seed(5))
    c = hard_positive_languages(sim, generator=torch.Generator().manual_seed(6))
    assert a.dtype == torch.int64 and a.shape == (64,)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize(
    ("sim", "kwargs", "match"),
    [
        (torch.zeros(3), {}, r"sim must be 2-D \[B, K\]"),
        (torch.zeros(3, 2, dtype=torch.long), {}, "floating point"),
        (torch.zeros(0, 2), {}, "at least one row"),
        (torch.tensor([[0.1, math.nan]]), {}, r"contains nan at \[0, 1\]"),
        (torch.zeros(2, 2), {"variant": "hard"}, "variant must be one of"),
        (torch.zeros(2, 2), {"text_mask": torch.ones(2, 3, dtype=torch.bool)}, r"\[2, 3\]"),
        (torch.zeros(2, 2), {"text_mask": torch.ones(2, 2)}, "bool"),
        (torch.zeros(2, 2), {"text_mask": torch.tensor([[1, 1], [0, 0]]).bool()}, "image 1"),
        (torch.zeros(2, 2), {"generator": "seed"}, "torch.Generator"),
    ],
)
def test_positive_invalid_arguments(
    sim: torch.Tensor, kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        hard_positive_languages(sim, **kwargs)


# --- hard negatives --------------------------------------------------------------------


def test_paper_negative_follows_eq9() -> None:
    row = [0.9, 0.6, 0.3, 0.1, 0.0, -0.4]
    positive = [True, False, False, False, False, False]
    sim = torch.tensor([row]).expand(DRAWS, -1)
    mask = torch.tensor([positive]).expand(DRAWS, -1)
    draws = hard_negatives(sim, mask, generator=torch.Generator().manual_seed(0))
    # 0.0 and -0.4 are floored: a chance of about 1e-6 each, too small to be seen.
    expected = [0.0, 0.6, 0.3, 0.1, 0.0, 0.0]
    assert_fits(counts(draws, 6), expected)
    p = hard_negative_probabilities(sim[:1], mask[:1])[0].tolist()
    total = 1.0 + 2 * SIMILARITY_FLOOR
    assert p == pytest.approx(
        [0, 0.6 / total, 0.3 / total, 0.1 / total, 1e-6 / total, 1e-6 / total]
    )


def test_released_negative_is_softmax_plus_eps_with_positives_zeroed() -> None:
    row = torch.tensor([0.9, 0.6, 0.55, 0.5, 0.4])
    positive = torch.tensor([False, True, False, False, False])
    soft = torch.softmax(row.double() / 0.07, 0) + RELEASED_EPS
    soft[positive] = 0
    draws = hard_negatives(
        row.expand(DRAWS, -1),
        positive.expand(DRAWS, -1),
        variant="released",
        generator=torch.Generator().manual_seed(1),
    )
    assert_fits(counts(draws, 5), soft.tolist())
    p = hard_negative_probabilities(row[None], positive[None], variant="released")
    torch.testing.assert_close(p[0], soft / soft.sum())


def test_released_negative_temperature() -> None:
    row = torch.tensor([[0.9, 0.6, 0.1]])
    positive = torch.tensor([[True, False, False]])
    p = hard_negative_probabilities(row, positive, variant="released", temperature=1.0)
    soft = torch.softmax(row[0].double(), 0) + RELEASED_EPS
    soft[0] = 0
    torch.testing.assert_close(p[0], soft / soft.sum())


def test_uniform_negative_and_candidate_mask() -> None:
    sim = torch.rand(DRAWS, 5, generator=torch.Generator().manual_seed(2))
    positive = torch.tensor([[False, False, True, False, False]]).expand(DRAWS, -1)
    candidates = torch.tensor([True, True, True, False, True])  # column 3 does not exist
    draws = hard_negatives(
        sim,
        positive,
        variant="uniform",
        candidate_mask=candidates,
        generator=torch.Generator().manual_seed(3),
    )
    assert_fits(counts(draws, 5), [1, 1, 0, 0, 1])


@pytest.mark.parametrize("variant", ["paper", "released", "uniform"])
def test_negative_never_draws_a_positive_or_excluded_column(variant: str) -> None:
    g = torch.Generator().manual_seed(7)
    n_images, n_languages = 40, 3
    # Image-to-text layout: row j's positives are its K texts, some texts are missing.
    sim = torch.rand(n_images, n_images * n_languages, generator=g) * 2 - 1
    owner = torch.arange(n_images).repeat_interleave(n_languages)
    positive = owner[None, :] == torch.arange(n_images)[:, None]
    exists = torch.rand(n_images * n_languages, generator=g) < 0.7
    sim[:, ~exists] = math.nan
    for seed in range(20):
        draws = hard_negatives(
            sim,
            positive,
            variant=variant,
            candidate_mask=exists,
            generator=torch.Generator().manual_seed(seed),
        )
        assert bool((owner[draws] != torch.arange(n_images)).all())
        assert bool(exists[draws].all())


def test_negative_image_sim_from_summed_text_cosines() -> None:
    """Eq. 9 for images: row j scores image j' by sum_k t_jk . i_j'."""
    g = torch.Generator().manual_seed(8)
    images = torch.nn.functional.normalize(torch.randn(6, 4, generator=g), dim=-1)
    texts = torch.nn.functional.normalize(torch.randn(6, 3, 4, generator=g), dim=-1)
    sim = torch.einsum("jkd,nd->jn", texts, images)
    eye = torch.eye(6, dtype=torch.bool)
    p = hard_negative_probabilities(sim, eye)
    floored = sim.double().clamp_min(SIMILARITY_FLOOR).masked_fill(eye, 0)
    torch.testing.assert_close(p, floored / floored.sum(1, keepdim=True))


def test_negative_makes_one_multinomial_call(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    original = torch.multinomial

    def counting(*args: object, **kwargs: object) -> torch.Tensor:
        calls.append(args[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(torch, "multinomial", counting)
    hard_negatives(torch.rand(32, 32), torch.eye(32, dtype=torch.bool))
    hard_positive_languages(torch.rand(32, 4))
    assert len(calls) == 2


def test_negative_same_seed_same_draws() -> None:
    sim = torch.rand(64, 64, generator=torch.Generator().manual_seed(1))
    eye = torch.eye(64, dtype=torch.bool)
    a = hard_negatives(sim, eye, generator=torch.Generator().manual_seed(11))
    b = hard_negatives(sim, eye, generator=torch.Generator().manual_seed(11))
    c = hard_negatives(sim, eye, generator=torch.Generator().manual_seed(12))
    assert a.dtype == torch.int64 and a.shape == (64,)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize(
    ("positive", "kwargs", "match"),
    [
        (torch.tensor([[True, False], [True, True]]), {}, "row 1 of sim .* has no negative"),
        (
            torch.tensor([[True, False], [False, True]]),
            {"candidate_mask": torch.tensor([True, False])},
            "row 0 of sim",
        ),
        (torch.ones(2, 3, dtype=torch.bool), {}, r"positive_mask must have shape \[2, 2\]"),
        (torch.zeros(2, 2), {}, "positive_mask must be a bool"),
        (
            torch.eye(2).bool(),
            {"candidate_mask": torch.ones(3, dtype=torch.bool)},
            r"\[2, 2\] or \[2\]",
        ),
        (torch.eye(2).bool(), {"temperature": 0.0}, "temperature"),
        (torch.eye(2).bool(), {"variant": "softmax"}, "variant"),
        (torch.eye(2).bool(), {"generator": 1}, "torch.Generator"),
    ],
)
def test_negative_invalid_arguments(
    positive: torch.Tensor, kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        hard_negatives(torch.rand(2, 2), positive, **kwargs)


def test_negative_refuses_non_finite_similarities() -> None:
    sim = torch.tensor([[0.2, math.inf, 0.1]])
    with pytest.raises(ValueError, match=r"contains inf at \[0, 1\]"):
        hard_negatives(sim, torch.tensor([[True, False, False]]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_draws_and_generator_device() -> None:
    sim = torch.rand(16, 16, device="cuda")
    eye = torch.eye(16, dtype=torch.bool, device="cuda")
    g = torch.Generator(device="cuda").manual_seed(0)
    draws = hard_negatives(sim, eye, generator=g)
    assert draws.device.type == "cuda"
    assert bool((draws != torch.arange(16, device="cuda")).all())
    with pytest.raises(ValueError, match="generator is on cpu"):
        hard_negatives(sim, eye, generator=torch.Generator())
