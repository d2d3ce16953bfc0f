"""Hard positive languages and hard negatives: distributions, exclusions, reproducibility."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from ccr_metrics.core._validation import InputError
from ccr_metrics.training.losses import HardSamples
from ccr_metrics.training.sampling import (
    RELEASED_EPS,
    SIMILARITY_FLOOR,
    hard_negative_probabilities,
    hard_negatives,
    hard_positive_languages,
    hard_positive_probabilities,
    mine,
    released_hard_positive_languages,
    released_hard_positive_probabilities,
)

DRAWS = 20_000
# Draws of the tests that call a sampler once per draw. At the 1e-3 threshold of
# assert_fits, 1000 draws fail a law at a distance w >= 0.2 from the expected one
# (Cohen's w = sqrt(sum((q - p)**2 / p)), 3 degrees of freedom here) with probability
# above 0.99; the laws of the other options and variants are refused at
# p < 1e-10 (each test checks it). 3000 draws took three times as long for w >= 0.12.
DRAWS_PER_LAW = 1000


def counts(draws: torch.Tensor, n_categories: int) -> np.ndarray:
    return np.bincount(draws.numpy(), minlength=n_categories)


def fit(observed: np.ndarray, probabilities: list[float]) -> float:
    """Chi-square goodness of fit over the categories with non-zero probability: the p-value.

    A draw in a category of probability 0 gives 0.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    if observed[p == 0].sum():
        return 0.0
    keep = p > 0
    expected = p[keep] / p[keep].sum() * observed.sum()
    return float(chisquare(observed[keep], expected).pvalue)


def assert_fits(observed: np.ndarray, probabilities: list[float]) -> None:
    # Seeds are fixed, so this is deterministic; 1e-3 leaves room for any seed anyway.
    assert fit(observed, probabilities) > 1e-3


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


def test_max_gap_positive_uses_batch_maximum() -> None:
    row = [0.2, 0.5, 0.3]
    top = 0.9  # held by another image of the batch
    sim = torch.tensor([row] * DRAWS + [[top, 0.1, 0.0]])
    draws = hard_positive_languages(
        sim, variant="max_gap", generator=torch.Generator().manual_seed(2)
    )[:DRAWS]
    assert_fits(counts(draws, 3), [top - v + RELEASED_EPS for v in row])


def test_max_gap_positive_keeps_the_best_text_possible() -> None:
    probabilities = hard_positive_probabilities(torch.tensor([[0.9, 0.1]]), variant="max_gap")
    assert 0 < probabilities[0, 0].item() < 1e-4


def test_uniform_positive() -> None:
    sim = torch.rand(DRAWS, 5, generator=torch.Generator().manual_seed(0))
    mask = torch.tensor([[True, True, False, True, False]]).expand(DRAWS, -1)
    draws = hard_positive_languages(
        sim, variant="uniform", text_mask=mask, generator=torch.Generator().manual_seed(3)
    )
    assert_fits(counts(draws, 5), [1, 1, 0, 1, 0])


@pytest.mark.parametrize("variant", ["paper", "max_gap", "uniform"])
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
        (torch.tensor([[0.1, math.nan]]), {}, r"contains nan at index \[0, 1\]"),
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


# --- released hard positives -----------------------------------------------------------


def released_code_positive_probabilities(
    sim_i2t: torch.Tensor, temperature: float, option: int
) -> torch.Tensor:
    """get_unialign_matching_loss's hard positive weights, step by step, per image.

    Plain Python floats (float64), following the released code line by line: scale by
    the temperature, softmax each row + 1e-5, the maxima over the whole matrix + 1e-5,
    then for image b the slice of its own K texts.
    """
    sim = [[v / temperature for v in row] for row in sim_i2t.double().tolist()]
    bs = len(sim)
    tsz = len(sim[0]) // bs
    weights_i2t = []
    for row in sim:
        top = max(row)
        e = [math.exp(v - top) for v in row]
        z = sum(e)
        weights_i2t.append([x / z + 1e-5 for x in e])
    max_weight = max(max(row) for row in weights_i2t) + 1e-5
    max_sim = max(max(row) for row in sim) + 1e-5
    probabilities = []
    for b in range(bs):
        if option == 0:
            w_slice = [1.0] * tsz  # random.choice(random_slice)
        elif option == 1:
            w_slice = [max_weight - w for w in weights_i2t[b][b * tsz : b * tsz + tsz]]
        else:
            w_slice = [max_sim - s for s in sim[b][b * tsz : b * tsz + tsz]]
        total = sum(w_slice)
        probabilities.append([w / total for w in w_slice])
    return torch.tensor(probabilities, dtype=torch.float64)


def random_sim_i2t(
    n_images: int, n_languages: int, *, top_is_positive: bool, dtype: torch.dtype, seed: int
) -> torch.Tensor:
    """Cosines in [-0.3, 0.7] with a single maximum 0.9, at a positive pair or not."""
    g = torch.Generator().manual_seed(seed)
    sim = torch.rand(n_images, n_images * n_languages, generator=g, dtype=torch.float64)
    sim = sim - 0.3
    b = 1
    owner = b if top_is_positive else (b + 1) % n_images
    sim[b, owner * n_languages + n_languages - 1] = 0.9
    return sim.to(dtype)


def own_entries(sim_i2t: torch.Tensor) -> torch.Tensor:
    n_images = sim_i2t.shape[0]
    rows = torch.arange(n_images)
    return sim_i2t.view(n_images, n_images, -1)[rows, rows]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("top_is_positive", [True, False])
@pytest.mark.parametrize("option", [0, 1, 2])
def test_released_positive_matches_the_released_loop(
    option: int, top_is_positive: bool, dtype: torch.dtype
) -> None:
    temperature = 0.07
    for seed in range(3):
        sim_i2t = random_sim_i2t(6, 4, top_is_positive=top_is_positive, dtype=dtype, seed=seed)
        n_languages = 4
        top = int(sim_i2t.argmax()) % sim_i2t.shape[1] // n_languages
        assert (top == int(sim_i2t.argmax()) // sim_i2t.shape[1]) == top_is_positive
        got = released_hard_positive_probabilities(sim_i2t, temperature, option=option)
        expected = released_code_positive_probabilities(sim_i2t, temperature, option)
        assert got.dtype == torch.float64 and got.shape == (6, 4)
        torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("top_is_positive", [True, False])
def test_max_gap_is_option_2_only_when_the_maximum_is_a_positive(top_is_positive: bool) -> None:
    temperature = 0.07
    sim_i2t = random_sim_i2t(6, 4, top_is_positive=top_is_positive, dtype=torch.float64, seed=5)
    released = released_hard_positive_probabilities(sim_i2t, temperature, option=2)
    max_gap = hard_positive_probabilities(own_entries(sim_i2t) / temperature, variant="max_gap")
    if top_is_positive:
        torch.testing.assert_close(max_gap, released, rtol=1e-9, atol=1e-12)
    else:
        assert (max_gap - released).abs().max().item() > 0.01
    # Option 1, the released default, is another distribution altogether.
    default = released_hard_positive_probabilities(sim_i2t, temperature)
    assert (default - released).abs().max().item() > 0.01


def test_released_positive_keeps_every_text_possible() -> None:
    sim_i2t = random_sim_i2t(5, 3, top_is_positive=True, dtype=torch.float64, seed=0)
    for option in (1, 2):
        p = released_hard_positive_probabilities(sim_i2t, 0.01, option=option)
        assert bool((p > 0).all())
        torch.testing.assert_close(p.sum(1), torch.ones(5, dtype=torch.float64))
    # The text holding the global maximum keeps only its 1e-5 share.
    p = released_hard_positive_probabilities(sim_i2t, 0.07, option=2)
    assert 0 < p[1, 2].item() < 1e-4


def test_released_positive_with_one_language_and_one_image() -> None:
    sim_i2t = torch.tensor([[0.3, -0.2, 0.5], [0.1, 0.4, 0.2], [0.0, 0.6, 0.9]])
    for option in (0, 1, 2):
        p = released_hard_positive_probabilities(sim_i2t, 0.07, option=option)
        assert p.tolist() == [[1.0], [1.0], [1.0]]
        draws = released_hard_positive_languages(sim_i2t, 0.07, option=option)
        assert draws.tolist() == [0, 0, 0]
    p = released_hard_positive_probabilities(torch.tensor([[0.2, 0.9]]), 0.5, option=2)
    torch.testing.assert_close(
        p,
        torch.tensor(
            [[(0.7 / 0.5 + 1e-5) / (0.7 / 0.5 + 2e-5), 1e-5 / (0.7 / 0.5 + 2e-5)]]
        ).double(),
    )


@pytest.mark.parametrize("option", [0, 1, 2])
def test_released_positive_draws_follow_the_probabilities(option: int, one_thread: None) -> None:
    """Seeded chi-square checks of each image's draws; see DRAWS_PER_LAW for their power."""
    sim_i2t = random_sim_i2t(3, 4, top_is_positive=False, dtype=torch.float32, seed=2)
    temperature = 0.1
    p = released_hard_positive_probabilities(sim_i2t, temperature, option=option)
    n_draws = DRAWS_PER_LAW
    assert bool((p * n_draws >= 5).all())  # every category expected often enough
    g = torch.Generator().manual_seed(20 + option)
    draws = torch.stack(
        [
            released_hard_positive_languages(sim_i2t, temperature, option=option, generator=g)
            for _ in range(n_draws)
        ]
    )
    for image in range(3):
        assert_fits(counts(draws[:, image], 4), p[image].tolist())
    # The same draws refuse the other options' laws: a wrong law fails the check above.
    for other in {0, 1, 2} - {option}:
        q = released_hard_positive_probabilities(sim_i2t, temperature, option=other)
        assert min(fit(counts(draws[:, i], 4), q[i].tolist()) for i in range(3)) < 1e-6


@pytest.mark.parametrize("option", [0, 1, 2])
def test_released_positive_same_seed_same_draws(option: int) -> None:
    sim_i2t = random_sim_i2t(64, 4, top_is_positive=False, dtype=torch.float32, seed=3)

    def draw(seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return released_hard_positive_languages(sim_i2t, 0.07, option=option, generator=g)

    a, b, c = draw(5), draw(5), draw(6)
    assert a.dtype == torch.int64 and a.shape == (64,)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # One multinomial call over the probabilities, consuming the generator as that does.
    p = released_hard_positive_probabilities(sim_i2t, 0.07, option=option)
    expected = torch.multinomial(p, 1, generator=torch.Generator().manual_seed(5)).squeeze(1)
    assert torch.equal(a, expected)


def test_released_positive_makes_one_multinomial_call(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    original = torch.multinomial

    def counting(*args: object, **kwargs: object) -> torch.Tensor:
        calls.append(args[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(torch, "multinomial", counting)
    released_hard_positive_languages(torch.rand(32, 128), 0.07)
    assert len(calls) == 1


def test_released_positive_variant_is_refused_naming_the_released_functions() -> None:
    # "released" means the released code's rule everywhere; on [B, K] there is none.
    sim = torch.rand(5, 3, generator=torch.Generator().manual_seed(12))
    for function in (hard_positive_probabilities, hard_positive_languages):
        with pytest.raises(InputError, match="'paper', 'max_gap', 'uniform'; got 'released'") as e:
            function(sim, variant="released")  # type: ignore[arg-type]
        assert "released_hard_positive_languages" in str(e.value)
        assert e.value.argument == "variant"


def test_unknown_positive_variant_lists_the_current_names() -> None:
    with pytest.raises(ValueError, match="variant must be one of 'paper', 'max_gap', 'uniform'"):
        hard_positive_probabilities(torch.zeros(2, 2), variant="softmax")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("sim_i2t", "kwargs", "match"),
    [
        (torch.zeros(4), {}, r"sim_i2t must be 2-D \[B, B \* K\] .* shape \[4\]"),
        (torch.zeros(2, 4, 1), {}, r"sim_i2t must be 2-D .* got 3-D"),
        (np.zeros((2, 4)), {}, "sim_i2t must be a torch.Tensor"),
        (torch.zeros(2, 4, dtype=torch.long), {}, "sim_i2t must be floating point"),
        (torch.zeros(0, 4), {}, "sim_i2t must have at least one row"),
        (torch.zeros(2, 0), {}, "sim_i2t must have at least one row and one column"),
        (torch.zeros(3, 7), {}, r"sim_i2t .*7 is not a multiple of 3 \(shape \[3, 7\]\)"),
        (torch.zeros(3, 2), {}, r"2 is not a multiple of 3 \(shape \[3, 2\]\)"),
        (
            torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.1, 0.2, math.nan, 0.4]]),
            {},
            r"sim_i2t \[2, 4\] contains nan at index \[1, 2\]",
        ),
        (torch.tensor([[0.1, 0.2, 0.3, -math.inf]]), {}, r"contains -inf at index \[0, 3\]"),
        (torch.zeros(2, 4), {"temperature": 0.0}, "temperature must be a finite positive"),
        (torch.zeros(2, 4), {"temperature": -0.07}, "temperature must be a finite positive"),
        (torch.zeros(2, 4), {"temperature": math.nan}, "temperature must be a finite positive"),
        (torch.zeros(2, 4), {"temperature": True}, "temperature must be a finite positive"),
        (torch.zeros(2, 4), {"temperature": "0.07"}, "temperature must be a finite positive"),
        (torch.ones(2, 4), {"temperature": 1e-310}, r"temperature .* overflows float64"),
        (torch.zeros(2, 4), {"option": 3}, "option must be one of 0"),
        (torch.zeros(2, 4), {"option": -1}, "option must be one of 0"),
        (torch.zeros(2, 4), {"option": "1"}, "option must be one of 0"),
        (torch.zeros(2, 4), {"option": True}, "option must be one of 0"),
        (torch.zeros(2, 4), {"option": 1.0}, r"option must be one of .*; got 1\.0"),
    ],
)
@pytest.mark.parametrize(
    "function", [released_hard_positive_probabilities, released_hard_positive_languages]
)
def test_released_positive_invalid_arguments(
    function: Callable[..., torch.Tensor],
    sim_i2t: torch.Tensor,
    kwargs: dict[str, object],
    match: str,
) -> None:
    arguments: dict[str, object] = {"temperature": 0.07, **kwargs}
    temperature = arguments.pop("temperature")
    with pytest.raises(ValueError, match=match):
        function(sim_i2t, temperature, **arguments)


def test_released_positive_sampler_checks_the_generator() -> None:
    with pytest.raises(ValueError, match=r"generator must be a torch\.Generator"):
        released_hard_positive_languages(torch.zeros(2, 4), 0.07, generator="seed")  # type: ignore[arg-type]


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


def released_code_negative_probabilities(
    sim_i2t: torch.Tensor, temperature: float, language: list[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows get_unialign_matching_loss draws its negatives from, step by step.

    Returns (negative image rows [B, B], negative text rows [B, B * K]), normalised:
    weights are softmax + 1e-5 per row of sim_i2t and of sim_t2i (its transpose, each
    text against the B images), every image's own K texts are zeroed in both, and the
    negative image of image b comes from the row of the text drawn as its hard positive.
    """
    sim = [[v / temperature for v in row] for row in sim_i2t.double().tolist()]
    bs = len(sim)
    tsz = len(sim[0]) // bs
    sim_t2i = [[sim[i][t] for i in range(bs)] for t in range(bs * tsz)]

    def softmax_plus_eps(row: list[float]) -> list[float]:
        top = max(row)
        e = [math.exp(v - top) for v in row]
        z = sum(e)
        return [x / z + 1e-5 for x in e]

    weights_i2t = [softmax_plus_eps(row) for row in sim]
    weights_t2i = [softmax_plus_eps(row) for row in sim_t2i]
    for i in range(bs):
        for t in range(tsz * i, tsz * i + tsz):
            weights_i2t[i][t] = 0.0
            weights_t2i[t][i] = 0.0
    text_pos_idx_ls = [b * tsz + language[b] for b in range(bs)]
    image_rows = [weights_t2i[text_pos_idx_ls[b]] for b in range(bs)]
    text_rows = [weights_i2t[b] for b in range(bs)]

    def normalised(rows: list[list[float]]) -> torch.Tensor:
        return torch.tensor([[w / sum(row) for w in row] for row in rows], dtype=torch.float64)

    return normalised(image_rows), normalised(text_rows)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("top_is_positive", [True, False])
def test_released_negatives_match_the_released_loop(
    top_is_positive: bool, dtype: torch.dtype
) -> None:
    n_images, n_languages, temperature = 6, 3, 0.07
    sim_i2t = random_sim_i2t(
        n_images, n_languages, top_is_positive=top_is_positive, dtype=dtype, seed=9
    )
    language = released_hard_positive_languages(
        sim_i2t, temperature, generator=torch.Generator().manual_seed(0)
    )
    expected_images, expected_texts = released_code_negative_probabilities(
        sim_i2t, temperature, language.tolist()
    )
    rows = torch.arange(n_images)
    own = torch.eye(n_images, dtype=torch.bool).repeat_interleave(n_languages, dim=1)
    texts = hard_negative_probabilities(sim_i2t, own, variant="released", temperature=temperature)
    torch.testing.assert_close(texts, expected_texts, rtol=1e-9, atol=1e-12)
    chosen = sim_i2t.T[rows * n_languages + language]  # [B, B]: hard positive text x images
    images = hard_negative_probabilities(
        chosen, torch.eye(n_images, dtype=torch.bool), variant="released", temperature=temperature
    )
    torch.testing.assert_close(images, expected_images, rtol=1e-9, atol=1e-12)


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
    with pytest.raises(ValueError, match=r"contains inf at index \[0, 1\]"):
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


# --- released hard positives with a text mask ------------------------------------------


def masked_released_positive_probabilities(
    sim_i2t: torch.Tensor, temperature: float, option: int, mask: torch.Tensor
) -> torch.Tensor:
    """The released weights with the missing texts removed from the matrix first."""
    n_images, n_languages = mask.shape
    present = mask.reshape(-1).tolist()
    sim = [
        [v / temperature for v, p in zip(row, present, strict=True) if p]
        for row in sim_i2t.double().tolist()
    ]
    weights = []
    for row in sim:
        top = max(row)
        e = [math.exp(v - top) for v in row]
        weights.append([x / sum(e) + 1e-5 for x in e])
    max_weight = max(max(r) for r in weights) + 1e-5
    max_sim = max(max(r) for r in sim) + 1e-5
    column = {}  # (image, language) -> column of the reduced matrix
    for index, (b, k) in enumerate(
        (b, k) for b in range(n_images) for k in range(n_languages) if mask[b, k]
    ):
        column[b, k] = index
    probabilities = []
    for b in range(n_images):
        w = []
        for k in range(n_languages):
            if not mask[b, k]:
                w.append(0.0)
            elif option == 0:
                w.append(1.0)
            elif option == 1:
                w.append(max_weight - weights[b][column[b, k]])
            else:
                w.append(max_sim - sim[b][column[b, k]])
        probabilities.append([v / sum(w) for v in w])
    return torch.tensor(probabilities, dtype=torch.float64)


@pytest.mark.parametrize("option", [0, 1, 2])
def test_released_positive_with_a_text_mask(option: int) -> None:
    sim_i2t = random_sim_i2t(5, 3, top_is_positive=False, dtype=torch.float64, seed=4)
    mask = torch.tensor([[1, 0, 1], [1, 1, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]]).bool()
    broken = sim_i2t.clone()
    broken[:, ~mask.reshape(-1)] = math.nan  # missing columns are ignored
    got = released_hard_positive_probabilities(broken, 0.07, option=option, text_mask=mask)
    expected = masked_released_positive_probabilities(sim_i2t, 0.07, option, mask)
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-12)
    assert bool((got[~mask] == 0).all())
    full = torch.ones(5, 3, dtype=torch.bool)
    assert torch.equal(
        released_hard_positive_probabilities(sim_i2t, 0.07, option=option, text_mask=full),
        released_hard_positive_probabilities(sim_i2t, 0.07, option=option),
    )
    for seed in range(10):
        drawn = released_hard_positive_languages(
            broken,
            0.07,
            option=option,
            text_mask=mask,
            generator=torch.Generator().manual_seed(seed),
        )
        assert bool(mask[torch.arange(5), drawn].all())


# --- mine: the three hard samples of a step --------------------------------------------


MINING = ["paper", "released", "uniform"]


def mining_batch(
    n_images: int, n_languages: int, seed: int, masked: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    g = torch.Generator().manual_seed(seed)
    images = torch.nn.functional.normalize(torch.randn(n_images, 8, generator=g), dim=-1)
    texts = torch.nn.functional.normalize(
        torch.randn(n_images, n_languages, 8, generator=g), dim=-1
    )
    sim_i2t = images @ texts.reshape(n_images * n_languages, 8).T
    if not masked:
        return sim_i2t, None
    mask = torch.rand(n_images, n_languages, generator=g) < 0.6
    mask[~mask.any(1), 0] = True
    sim_i2t[:, ~mask.reshape(-1)] = math.nan  # missing texts' columns are ignored
    return sim_i2t, mask


@pytest.mark.parametrize("variant", MINING)
@pytest.mark.parametrize("masked", [False, True])
def test_mine_never_draws_a_positive_as_a_negative(variant: str, masked: bool) -> None:
    n_images, n_languages = 12, 3
    sim_i2t, mask = mining_batch(n_images, n_languages, seed=1, masked=masked)
    present = (
        torch.ones(n_images * n_languages, dtype=torch.bool) if mask is None else mask.reshape(-1)
    )
    rows = torch.arange(n_images)
    for seed in range(25):
        hard = mine(
            sim_i2t,
            text_mask=mask,
            variant=variant,
            generator=torch.Generator().manual_seed(seed),
        )
        assert isinstance(hard, HardSamples)
        assert all(t.dtype == torch.int64 and t.shape == (n_images,) for t in hard)
        assert torch.equal(hard.positive_text // n_languages, rows)
        assert bool(present[hard.positive_text].all())
        assert bool((hard.negative_image != rows).all())
        assert bool(((hard.negative_image >= 0) & (hard.negative_image < n_images)).all())
        assert bool((hard.negative_text // n_languages != rows).all())
        assert bool(present[hard.negative_text].all())


def expected_mining(
    sim_i2t: torch.Tensor, variant: str, temperature: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Joint law of (positive language, negative image) [B, K, B] and of the negative text.

    Written from the formulas (paper Eq. 8 / 9) and from the released-code loops
    above, not from the functions under test.
    """
    n_images = sim_i2t.shape[0]
    n_languages = sim_i2t.shape[1] // n_images
    s = sim_i2t.double()
    floor = SIMILARITY_FLOOR
    joint = torch.zeros(n_images, n_languages, n_images, dtype=torch.float64)
    if variant == "released":
        positive = released_code_positive_probabilities(sim_i2t, temperature, 1)
        for k in range(n_languages):
            image_rows, text_rows = released_code_negative_probabilities(
                sim_i2t, temperature, [k] * n_images
            )
            joint[:, k, :] = positive[:, k, None] * image_rows
        return joint, text_rows
    own = torch.stack([s[b, b * n_languages : (b + 1) * n_languages] for b in range(n_images)])
    if variant == "paper":
        floored = own.clamp_min(floor)
        total = floored.sum(1, keepdim=True)
        positive = (1 - floored / total) / (n_languages - 1)  # Eq. 8, normalised
        scores = torch.tensor(
            [
                [
                    0.0
                    if n == b
                    else max(
                        sum(float(s[n, b * n_languages + k]) for k in range(n_languages)), floor
                    )
                    for n in range(n_images)
                ]
                for b in range(n_images)
            ],
            dtype=torch.float64,
        )  # Eq. 9
        text_scores = s.clamp_min(floor)
    else:
        positive = torch.full((n_images, n_languages), 1 / n_languages, dtype=torch.float64)
        scores = 1 - torch.eye(n_images, dtype=torch.float64)
        text_scores = torch.ones_like(s)
    image_rows = scores / scores.sum(1, keepdim=True)
    own_texts = torch.eye(n_images, dtype=torch.bool).repeat_interleave(n_languages, dim=1)
    text_scores = text_scores.masked_fill(own_texts, 0.0)
    text_rows = text_scores / text_scores.sum(1, keepdim=True)
    joint = positive[:, :, None] * image_rows[:, None, :]
    return joint, text_rows


@pytest.mark.parametrize("variant", MINING)
def test_mine_draws_follow_the_probabilities(variant: str, one_thread: None) -> None:
    """Seeded chi-square checks of the joint (positive, negative image) and negative text.

    The seed is fixed, so the test is deterministic; every category is expected often
    enough for the test to be meaningful, and the threshold leaves room for any seed.
    See DRAWS_PER_LAW for the power of the checks.
    """
    n_images, n_languages, temperature = 3, 2, 0.5
    g = torch.Generator().manual_seed(40)
    # Cosines in [0.05, 0.95]: the paper's floor plays no part, the weights are spread.
    sim_i2t = 0.05 + 0.9 * torch.rand(n_images, n_images * n_languages, generator=g)
    joint, text_rows = expected_mining(sim_i2t, variant, temperature)
    n_draws = DRAWS_PER_LAW
    assert float(joint[joint > 0].min()) * n_draws >= 5
    assert float(text_rows[text_rows > 0].min()) * n_draws >= 5
    generator = torch.Generator().manual_seed(41)
    draws = [
        mine(sim_i2t, variant=variant, temperature=temperature, generator=generator)
        for _ in range(n_draws)
    ]
    positive = torch.stack([h.positive_text for h in draws]) % n_languages  # [n, B]
    negative_image = torch.stack([h.negative_image for h in draws])
    negative_text = torch.stack([h.negative_text for h in draws])
    n_pairs = n_languages * n_images
    pairs = [
        counts(positive[:, b] * n_images + negative_image[:, b], n_pairs) for b in range(n_images)
    ]
    texts = [counts(negative_text[:, b], n_pairs) for b in range(n_images)]
    for b in range(n_images):
        assert_fits(pairs[b], joint[b].reshape(-1).tolist())
        assert_fits(texts[b], text_rows[b].tolist())
    # The same draws refuse the other variants' laws: a wrong law fails the checks above.
    for other in set(MINING) - {variant}:
        joint, text_rows = expected_mining(sim_i2t, other, temperature)
        worst = min(
            min(fit(pairs[b], joint[b].reshape(-1).tolist()), fit(texts[b], text_rows[b].tolist()))
            for b in range(n_images)
        )
        assert worst < 1e-6


@pytest.mark.parametrize("variant", MINING)
def test_mine_is_the_documented_composition(variant: str) -> None:
    """The same draws as the samplers it is built from, called in the documented order."""
    n_images, n_languages, temperature = 9, 3, 0.1
    sim_i2t, mask = mining_batch(n_images, n_languages, seed=5, masked=True)
    assert mask is not None
    hard = mine(
        sim_i2t,
        text_mask=mask,
        variant=variant,
        temperature=temperature,
        generator=torch.Generator().manual_seed(7),
    )
    g = torch.Generator().manual_seed(7)
    rows = torch.arange(n_images)
    eye = torch.eye(n_images, dtype=torch.bool)
    own_texts = eye.repeat_interleave(n_languages, dim=1)
    if variant == "released":
        language = released_hard_positive_languages(
            sim_i2t, temperature, text_mask=mask, generator=g
        )
        image_sim = sim_i2t.T[rows * n_languages + language]
    else:
        own = sim_i2t.view(n_images, n_images, n_languages)[rows, rows]
        language = hard_positive_languages(own, variant=variant, text_mask=mask, generator=g)
        masked_texts = torch.where(mask[..., None], sim_i2t.T.reshape(n_images, n_languages, -1), 0)
        image_sim = masked_texts.sum(1)
    negative_image = hard_negatives(
        image_sim, eye, variant=variant, temperature=temperature, generator=g
    )
    negative_text = hard_negatives(
        sim_i2t,
        own_texts,
        variant=variant,
        temperature=temperature,
        candidate_mask=mask.reshape(-1),
        generator=g,
    )
    assert torch.equal(hard.positive_text, rows * n_languages + language)
    assert torch.equal(hard.negative_image, negative_image)
    assert torch.equal(hard.negative_text, negative_text)


def test_mine_ignores_the_gradient_and_reproduces_with_a_seed() -> None:
    sim_i2t, _ = mining_batch(6, 2, seed=3, masked=False)
    sim_i2t.requires_grad_(True)
    a = mine(sim_i2t, generator=torch.Generator().manual_seed(2))
    b = mine(sim_i2t.detach(), generator=torch.Generator().manual_seed(2))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert all(not t.requires_grad for t in a)


@pytest.mark.parametrize(
    ("sim_i2t", "kwargs", "error", "match"),
    [
        (torch.zeros(4), {}, ValueError, r"sim_i2t must be 2-D \[B, B \* K\]"),
        (torch.zeros(3, 7), {}, ValueError, r"7 is not a multiple of 3"),
        (torch.zeros(2, 4, dtype=torch.long), {}, ValueError, "sim_i2t must be floating point"),
        (
            torch.tensor([[0.1, 0.2, math.nan, 0.4], [0.1, 0.2, 0.3, 0.4]]),
            {},
            ValueError,
            r"sim_i2t \[2, 4\] contains nan at index \[0, 2\]",
        ),
        (torch.zeros(1, 3), {}, InputError, r"sim_i2t \[1, 3\] holds one image"),
        (
            torch.zeros(3, 6),
            {"text_mask": torch.tensor([[True, True], [False, True], [False, False]])},
            ValueError,
            "image 2 without any text",
        ),
        (
            torch.zeros(2, 4),
            {"text_mask": torch.tensor([[True, True], [False, False]])},
            ValueError,
            "image 1 without any text",
        ),
        (
            torch.zeros(2, 4),
            {"text_mask": torch.ones(2, 3, dtype=torch.bool)},
            ValueError,
            r"\[2, 2\]",
        ),
        (torch.zeros(2, 4), {"variant": "max_gap"}, ValueError, "variant must be one of"),
        (torch.zeros(2, 4), {"temperature": 0.0}, ValueError, "temperature"),
        (torch.zeros(2, 4), {"generator": 3}, ValueError, r"torch\.Generator"),
    ],
)
def test_mine_refuses_bad_inputs(
    sim_i2t: torch.Tensor, kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        mine(sim_i2t, **kwargs)  # type: ignore[arg-type]
