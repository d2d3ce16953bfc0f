"""The 1-to-K and 1-to-1 contrastive losses and the single-process module."""

from __future__ import annotations

import ast
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ccr_metrics.core._validation import InputError
from ccr_metrics.training import losses, sampling
from ccr_metrics.training.losses import (
    HardSamples,
    MatchingPairs,
    OneToKContrastiveLoss,
    matching_loss,
    matching_pairs,
    one_to_k_contrastive_loss,
    one_to_one_contrastive_loss,
)

PACKAGE = Path(losses.__file__).parent


def make_batch(
    n_images: int, n_languages: int, dim: int, seed: int, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    images = F.normalize(torch.randn(n_images, dim, generator=g, dtype=torch.float64), dim=-1)
    texts = F.normalize(
        torch.randn(n_images, n_languages, dim, generator=g, dtype=torch.float64), dim=-1
    )
    return images.to(dtype), texts.to(dtype)


def random_mask(n_images: int, n_languages: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(n_images, n_languages, generator=g) < 0.6
    # Every image keeps at least one text: the first slot that was drawn, else slot 0.
    mask[~mask.any(1), 0] = True
    return mask


def naive_paper_loss(
    images: torch.Tensor, texts: torch.Tensor, tau: float, mask: torch.Tensor | None
) -> tuple[float, float]:
    """Eq. 1 and Eq. 2 of the paper, one term at a time (the ccrk notes' form)."""
    n_images, n_languages, _ = texts.shape
    present = [[True] * n_languages for _ in range(n_images)] if mask is None else mask.tolist()

    def cos(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a * b).sum())

    i2t_terms = []
    for j in range(n_images):
        denominator = sum(
            math.exp(cos(images[j], texts[n, k]) / tau)
            for n in range(n_images)
            for k in range(n_languages)
            if present[n][k]
        )
        own = [k for k in range(n_languages) if present[j][k]]
        i2t_terms.append(
            -sum(math.log(math.exp(cos(images[j], texts[j, k]) / tau) / denominator) for k in own)
            / len(own)
        )
    t2i_terms = []
    for j in range(n_images):
        for k in range(n_languages):
            if not present[j][k]:
                continue
            denominator = sum(math.exp(cos(texts[j, k], images[n]) / tau) for n in range(n_images))
            t2i_terms.append(-math.log(math.exp(cos(texts[j, k], images[j]) / tau) / denominator))
    return sum(i2t_terms) / len(i2t_terms), sum(t2i_terms) / len(t2i_terms)


def released_restatement(
    images: torch.Tensor, texts: torch.Tensor, tau: float, mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """get_unialign_contrastive_loss as the notes describe it, image-major texts."""
    n_images, n_languages, dim = texts.shape
    flat = texts.reshape(n_images * n_languages, dim)  # rows j*K .. j*K+K-1 are image j's
    logits = images @ flat.T / tau
    labels = torch.zeros(n_images, n_images * n_languages, dtype=images.dtype)
    for j in range(n_images):
        labels[j, j * n_languages : (j + 1) * n_languages] = 1
    rows_t2i = torch.ones(n_images * n_languages, dtype=torch.bool)
    if mask is not None:
        present = mask.reshape(-1)
        logits = logits[:, present]
        labels = labels[:, present]
        rows_t2i = present[present]
    i2t = -(F.log_softmax(logits, dim=1) * labels).sum(1).mean()
    t2i = -(F.log_softmax(logits.T, dim=1) * labels.T).sum(1)[rows_t2i].mean()
    return (i2t + t2i) / 2 / n_languages, i2t / 2 / n_languages, t2i / 2 / n_languages


CASES = [(1, 1), (2, 3), (4, 1), (5, 4), (7, 2)]


@pytest.mark.quick
@pytest.mark.parametrize(("n_images", "n_languages"), CASES)
@pytest.mark.parametrize("masked", [False, True])
def test_paper_matches_naive_loop(n_images: int, n_languages: int, masked: bool) -> None:
    images, texts = make_batch(n_images, n_languages, 6, seed=n_images * 10 + n_languages)
    mask = random_mask(n_images, n_languages, seed=n_images) if masked else None
    tau = 0.2
    terms = one_to_k_contrastive_loss(images, texts, temperature=tau, text_mask=mask)
    i2t, t2i = naive_paper_loss(images, texts, tau, mask)
    assert terms.i2t.item() == pytest.approx(i2t, rel=1e-10)
    assert terms.t2i.item() == pytest.approx(t2i, rel=1e-10)
    assert terms.total.item() == pytest.approx(i2t + t2i, rel=1e-10)


@pytest.mark.parametrize(("n_images", "n_languages"), CASES)
@pytest.mark.parametrize("masked", [False, True])
def test_released_matches_restatement(n_images: int, n_languages: int, masked: bool) -> None:
    images, texts = make_batch(n_images, n_languages, 5, seed=3 + n_images)
    mask = random_mask(n_images, n_languages, seed=7 * n_images) if masked else None
    terms = one_to_k_contrastive_loss(
        images, texts, temperature=0.07, text_mask=mask, variant="released"
    )
    total, i2t, t2i = released_restatement(images, texts, 0.07, mask)
    torch.testing.assert_close(terms.total, total, rtol=1e-10, atol=0)
    torch.testing.assert_close(terms.i2t, i2t, rtol=1e-10, atol=0)
    torch.testing.assert_close(terms.t2i, t2i, rtol=1e-10, atol=0)


def test_released_is_rescaled_paper_without_mask() -> None:
    images, texts = make_batch(6, 3, 8, seed=11)
    paper = one_to_k_contrastive_loss(images, texts)
    released = one_to_k_contrastive_loss(images, texts, variant="released")
    torch.testing.assert_close(released.i2t, paper.i2t / 2)
    torch.testing.assert_close(released.t2i, paper.t2i / (2 * 3))


@pytest.mark.parametrize("n_images", [1, 3, 8])
def test_k1_is_clip_loss(n_images: int) -> None:
    images, texts = make_batch(n_images, 1, 16, seed=n_images)
    logits = images @ texts[:, 0].T / 0.07
    labels = torch.arange(n_images)
    clip = F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)
    terms = one_to_k_contrastive_loss(images, texts)
    torch.testing.assert_close(terms.total, clip, rtol=1e-12, atol=0)
    torch.testing.assert_close(terms.i2t, F.cross_entropy(logits, labels), rtol=1e-12, atol=0)
    released = one_to_k_contrastive_loss(images, texts, variant="released")
    torch.testing.assert_close(released.total, clip / 2, rtol=1e-12, atol=0)


@pytest.mark.parametrize("variant", ["paper", "released"])
@pytest.mark.parametrize("masked", [False, True])
def test_gradcheck(variant: str, masked: bool) -> None:
    images, texts = make_batch(3, 3, 4, seed=5)
    images.requires_grad_(True)
    texts.requires_grad_(True)
    mask = torch.tensor([[True, False, True], [False, False, True], [True, True, True]])

    def total(i: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return one_to_k_contrastive_loss(
            i,
            t,
            temperature=0.3,
            text_mask=mask if masked else None,
            variant=variant,
        ).total

    assert torch.autograd.gradcheck(total, (images, texts))


def test_missing_texts_are_ignored() -> None:
    images, texts = make_batch(4, 3, 5, seed=2)
    mask = torch.tensor([[1, 0, 1], [1, 1, 1], [0, 1, 0], [1, 1, 0]]).bool()
    texts.requires_grad_(True)
    before = one_to_k_contrastive_loss(images, texts, text_mask=mask)
    before.total.backward()
    assert texts.grad is not None
    assert bool((texts.grad[~mask] == 0).all())
    assert bool((texts.grad[mask].abs().sum(-1) > 0).all())
    altered = texts.detach().clone()
    altered[~mask] = 123.0
    after = one_to_k_contrastive_loss(images, altered, text_mask=mask)
    torch.testing.assert_close(after.total, before.total.detach(), rtol=0, atol=0)
    # numpy masks are accepted.
    from_numpy = one_to_k_contrastive_loss(images, altered, text_mask=mask.numpy())
    torch.testing.assert_close(from_numpy.total, after.total, rtol=0, atol=0)


def test_full_mask_equals_no_mask() -> None:
    images, texts = make_batch(5, 2, 4, seed=9)
    full = torch.ones(5, 2, dtype=torch.bool)
    for variant in ("paper", "released"):
        a = one_to_k_contrastive_loss(images, texts, variant=variant)
        b = one_to_k_contrastive_loss(images, texts, variant=variant, text_mask=full)
        torch.testing.assert_close(a.total, b.total)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_at_low_temperature_is_finite(dtype: torch.dtype) -> None:
    images, texts = make_batch(16, 3, 32, seed=1, dtype=torch.float32)
    # Near-duplicate texts make the logits reach 1 / 0.01 = 100, past float16's exp range.
    texts = F.normalize(images[:, None, :] + 0.05 * texts, dim=-1)
    images_h = images.to(dtype).requires_grad_(True)
    texts_h = texts.to(dtype).requires_grad_(True)
    terms = one_to_k_contrastive_loss(images_h, texts_h, temperature=0.01)
    assert terms.total.dtype == torch.float32
    assert all(bool(torch.isfinite(t)) for t in terms)
    terms.total.backward()
    assert images_h.grad is not None and texts_h.grad is not None
    assert bool(torch.isfinite(images_h.grad).all()) and bool(torch.isfinite(texts_h.grad).all())
    reference = one_to_k_contrastive_loss(images_h.float(), texts_h.float(), temperature=0.01)
    torch.testing.assert_close(terms.total, reference.total)


def test_mixed_precision_promotes() -> None:
    images, texts = make_batch(3, 2, 4, seed=4)
    terms = one_to_k_contrastive_loss(images.float(), texts)
    assert terms.total.dtype == torch.float64


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"image_embeds": torch.zeros(2, 3, 4)}, r"image_embeds must be 2-D \[B, D\].*\[2, 3, 4\]"),
        ({"text_embeds": torch.zeros(2, 4)}, r"text_embeds must be 3-D \[B, K, D\].*\[2, 4\]"),
        ({"text_embeds": torch.zeros(3, 2, 4)}, r"text_embeds \[3, 2, 4\].*image_embeds \[2, 4\]"),
        ({"text_embeds": torch.zeros(2, 2, 5)}, r"text_embeds \[2, 2, 5\].*image_embeds \[2, 4\]"),
        ({"image_embeds": torch.zeros(0, 4), "text_embeds": torch.zeros(0, 2, 4)}, "empty"),
        ({"text_embeds": torch.zeros(2, 0, 4)}, "empty"),
        ({"image_embeds": torch.zeros(2, 4, dtype=torch.long)}, "floating point"),
        ({"image_embeds": np.zeros((2, 4))}, "must be a torch.Tensor"),
        ({"temperature": 0.0}, "temperature"),
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": math.inf}, "temperature"),
        ({"temperature": math.nan}, "temperature"),
        ({"temperature": True}, "temperature"),
        ({"variant": "other"}, "variant must be one of 'paper', 'released'"),
        ({"text_mask": torch.ones(2, 3, dtype=torch.bool)}, r"text_mask.*\[2, 2\].*\[2, 3\]"),
        ({"text_mask": torch.ones(2, 2)}, "text_mask must be a bool"),
        ({"text_mask": torch.tensor([[True, True], [False, False]])}, "image 1 without any text"),
    ],
)
def test_invalid_arguments(kwargs: dict[str, object], match: str) -> None:
    arguments: dict[str, object] = {
        "image_embeds": torch.zeros(2, 4),
        "text_embeds": torch.zeros(2, 2, 4),
    }
    arguments.update(kwargs)
    images = arguments.pop("image_embeds")
    texts = arguments.pop("text_embeds")
    with pytest.raises(ValueError, match=match):
        one_to_k_contrastive_loss(images, texts, **arguments)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_embeddings_are_refused(bad: float) -> None:
    images, texts = make_batch(3, 2, 4, seed=0)
    broken = texts.clone()
    broken[1, 0, 2] = bad
    with pytest.raises(ValueError, match=r"text_embeds \[3, 2, 4\] contains .* \[1, 0, 2\]"):
        one_to_k_contrastive_loss(images, broken)
    broken = images.clone()
    broken[2, 1] = bad
    with pytest.raises(ValueError, match=r"image_embeds \[3, 4\] contains .* \[2, 1\]"):
        one_to_k_contrastive_loss(broken, texts)


# --- the 1-to-1 baseline -------------------------------------------------------------


def test_one_to_one_with_given_language_is_clip_on_those_pairs() -> None:
    images, texts = make_batch(5, 3, 6, seed=8)
    language = torch.tensor([0, 2, 1, 1, 0])
    terms = one_to_one_contrastive_loss(images, texts, language=language, temperature=0.1)
    chosen = texts[torch.arange(5), language]
    logits = images @ chosen.T / 0.1
    labels = torch.arange(5)
    clip = F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)
    torch.testing.assert_close(terms.total, clip)
    released = one_to_one_contrastive_loss(
        images, texts, language=[0, 2, 1, 1, 0], temperature=0.1, variant="released"
    )
    torch.testing.assert_close(released.total, clip / 2)


def test_one_to_one_draw_respects_mask_and_seed() -> None:
    images, texts = make_batch(6, 4, 5, seed=6)
    mask = random_mask(6, 4, seed=1)
    mask[0] = torch.tensor([False, False, True, False])  # a single choice
    seen = torch.zeros(6, 4, dtype=torch.long)
    for seed in range(40):
        g = torch.Generator().manual_seed(seed)
        terms = one_to_one_contrastive_loss(images, texts, text_mask=mask, generator=g)
        assert bool(torch.isfinite(terms.total))
        # The same draw as the uniform hard-positive sampler with the same state.
        g_again = torch.Generator().manual_seed(seed)
        drawn = sampling.hard_positive_languages(
            torch.zeros(6, 4), variant="uniform", text_mask=mask, generator=g_again
        )
        expected = one_to_one_contrastive_loss(images, texts, language=drawn, text_mask=mask)
        torch.testing.assert_close(terms.total, expected.total, rtol=0, atol=0)
        seen[torch.arange(6), drawn] += 1
    assert bool((seen[~mask] == 0).all())
    assert bool((seen[mask] > 0).all())
    a = one_to_one_contrastive_loss(images, texts, generator=torch.Generator().manual_seed(3))
    b = one_to_one_contrastive_loss(images, texts, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a.total, b.total, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("language", "match"),
    [
        ([0, 1], r"language must have shape \[B\] = \[3\]"),
        ([0, 1, 3], r"language\[2\] = 3 is outside \[0, K\) = \[0, 3\)"),
        ([0, -1, 0], r"language\[1\] = -1"),
        ([0.0, 1.0, 0.0], "integer"),
        ([0, 1, 1], r"language\[2\] = 1 names a text that text_mask marks missing"),
    ],
)
def test_one_to_one_invalid_language(language: list[float], match: str) -> None:
    images, texts = make_batch(3, 3, 4, seed=0)
    mask = torch.tensor([[True, True, True], [True, True, True], [True, False, True]])
    with pytest.raises(ValueError, match=match):
        one_to_one_contrastive_loss(images, texts, language=language, text_mask=mask)


def test_one_to_one_refuses_a_non_generator() -> None:
    images, texts = make_batch(3, 2, 4, seed=0)
    with pytest.raises(ValueError, match=r"generator must be a torch\.Generator"):
        one_to_one_contrastive_loss(images, texts, generator=0)


# --- logit_scale, validate and query_rows of the functional loss ---------------------


def test_logit_scale_equals_temperature() -> None:
    images, texts = make_batch(5, 3, 6, seed=21)
    mask = random_mask(5, 3, seed=3)
    by_temperature = one_to_k_contrastive_loss(images, texts, temperature=0.25, text_mask=mask)
    by_float = one_to_k_contrastive_loss(images, texts, logit_scale=4.0, text_mask=mask)
    by_tensor = one_to_k_contrastive_loss(
        images, texts, logit_scale=torch.tensor(4.0, dtype=torch.float64), text_mask=mask
    )
    for a, b, c in zip(by_temperature, by_float, by_tensor, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        torch.testing.assert_close(a, c, rtol=0, atol=0)
    # The default is still 0.07.
    default = one_to_k_contrastive_loss(images, texts)
    explicit = one_to_k_contrastive_loss(images, texts, temperature=0.07)
    torch.testing.assert_close(default.total, explicit.total, rtol=0, atol=0)


def test_logit_scale_tensor_carries_the_gradient() -> None:
    images, texts = make_batch(4, 2, 6, seed=22)
    log_scale = torch.tensor(math.log(1 / 0.2), dtype=torch.float64, requires_grad=True)

    def total(log_scale: torch.Tensor) -> torch.Tensor:
        return one_to_k_contrastive_loss(images, texts, logit_scale=log_scale.exp()).total

    assert torch.autograd.gradcheck(total, (log_scale,))


def plain_maths(
    images: torch.Tensor, texts: torch.Tensor, logit_scale: torch.Tensor
) -> torch.Tensor:
    """The loss written plainly, as benchmarks/bench_loss.py times it."""
    n_images, n_languages, dim = texts.shape
    logits = (images @ texts.reshape(n_images * n_languages, dim).T) * logit_scale.exp()
    targets = torch.eye(n_images, dtype=logits.dtype).repeat_interleave(n_languages, dim=1)
    targets = targets / n_languages
    i2t = -(targets * logits.log_softmax(1)).sum(1).mean()
    t2i = F.cross_entropy(logits.T, torch.arange(n_images).repeat_interleave(n_languages))
    return i2t + t2i


def values_and_gradients(
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    texts: torch.Tensor,
    scale: torch.Tensor,
) -> list[torch.Tensor]:
    images = images.clone().requires_grad_(True)
    texts = texts.clone().requires_grad_(True)
    scale.grad = None
    value = loss(images, texts)
    value.backward()
    assert images.grad is not None and texts.grad is not None and scale.grad is not None
    return [value.detach(), images.grad, texts.grad, scale.grad.clone()]


@pytest.mark.parametrize("variant", ["paper", "released"])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_validate_false_is_identical_to_validate_true_and_the_functional_loss(
    variant: str, masked: bool, dtype: torch.dtype
) -> None:
    images, texts = make_batch(12, 3, 16, seed=23, dtype=dtype)
    mask = random_mask(12, 3, seed=5) if masked else None
    results = []
    for validate in (True, False):
        module = OneToKContrastiveLoss(temperature=0.1, variant=variant, validate=validate)
        module.to(dtype)
        results.append(
            values_and_gradients(
                lambda i, t, m=module: m(i, t, mask).total, images, texts, module.logit_scale
            )
        )
    scale = torch.nn.Parameter(module.logit_scale.detach().clone())
    for validate in (True, False):
        results.append(
            values_and_gradients(
                lambda i, t, v=validate: (
                    one_to_k_contrastive_loss(
                        i, t, logit_scale=scale.exp(), text_mask=mask, variant=variant, validate=v
                    ).total
                ),
                images,
                texts,
                scale,
            )
        )
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            assert torch.equal(a, b)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_module_is_the_plain_maths_bit_for_bit(dtype: torch.dtype) -> None:
    images, texts = make_batch(32, 4, 16, seed=24, dtype=dtype)
    module = OneToKContrastiveLoss(validate=False).to(dtype)
    got = values_and_gradients(lambda i, t: module(i, t).total, images, texts, module.logit_scale)
    scale = torch.nn.Parameter(module.logit_scale.detach().clone())
    expected = values_and_gradients(lambda i, t: plain_maths(i, t, scale), images, texts, scale)
    for a, b in zip(got, expected, strict=True):
        assert torch.equal(a, b)


SYNCS = ("item", "tolist", "nonzero", "__bool__", "__int__", "__float__", "__index__")


def count_host_syncs(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Count the Tensor methods that read a value back to the host, from now on."""
    calls = dict.fromkeys(SYNCS, 0)
    for name in SYNCS:
        original = getattr(torch.Tensor, name)

        def counting(self: torch.Tensor, *args: Any, _n: str = name, _f: Any = original) -> Any:
            calls[_n] += 1
            return _f(self, *args)

        monkeypatch.setattr(torch.Tensor, name, counting)
    original_nonzero = torch.nonzero

    def counting_nonzero(*args: Any, **kwargs: Any) -> Any:
        calls["nonzero"] += 1
        return original_nonzero(*args, **kwargs)

    monkeypatch.setattr(torch, "nonzero", counting_nonzero)
    return calls


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("variant", ["paper", "released"])
def test_validate_false_makes_no_host_sync(
    monkeypatch: pytest.MonkeyPatch, masked: bool, variant: str
) -> None:
    images, texts = make_batch(8, 3, 16, seed=25, dtype=torch.float32)
    images.requires_grad_(True)
    texts.requires_grad_(True)
    mask = random_mask(8, 3, seed=6) if masked else None
    fast = OneToKContrastiveLoss(variant=variant, validate=False)
    checked = OneToKContrastiveLoss(variant=variant)

    calls = count_host_syncs(monkeypatch)
    fast(images, texts, mask).total.backward()
    fast.clamp_logit_scale_()
    one_to_k_contrastive_loss(
        images,
        texts,
        logit_scale=fast.logit_scale.exp(),
        text_mask=mask,
        validate=False,
        query_rows=slice(2, 5),
    ).total.backward()
    assert calls == dict.fromkeys(SYNCS, 0)
    # The counter sees the checks of validate=True: it would see a sync if there were one.
    checked(images, texts, mask).total.backward()
    assert calls["__bool__"] > 0
    monkeypatch.undo()


@pytest.mark.parametrize("masked", [False, True])
def test_validate_false_runs_on_meta_tensors(masked: bool) -> None:
    """Meta tensors hold no data: any read of a value or data-dependent shape would fail."""
    meta = torch.device("meta")
    images = torch.empty(8, 16, device=meta, requires_grad=True)
    texts = torch.empty(8, 3, 16, device=meta, requires_grad=True)
    mask = torch.empty(8, 3, dtype=torch.bool, device=meta) if masked else None
    module = OneToKContrastiveLoss(validate=False).to(meta)
    terms = module(images, texts, mask)
    terms.total.backward()
    assert images.grad is not None and images.grad.shape == images.shape
    assert module.logit_scale.grad is not None
    local = one_to_k_contrastive_loss(
        images,
        texts,
        logit_scale=module.logit_scale.exp(),
        text_mask=mask,
        validate=False,
        query_rows=slice(0, 3),
    )
    local.total.backward()
    with pytest.raises(ValueError, match="is a meta tensor"):
        OneToKContrastiveLoss().to(meta)(images, texts, mask)  # the checks read values


def test_validate_false_skips_the_value_checks_only() -> None:
    images, texts = make_batch(3, 2, 4, seed=26)
    broken = texts.clone()
    broken[1, 0, 2] = math.nan
    with pytest.raises(ValueError, match=r"text_embeds \[3, 2, 4\] contains nan"):
        one_to_k_contrastive_loss(images, broken)
    assert math.isnan(one_to_k_contrastive_loss(images, broken, validate=False).total.item())
    empty_row = torch.tensor([[True, True], [False, False], [True, False]])
    with pytest.raises(ValueError, match="image 1 without any text"):
        OneToKContrastiveLoss()(images, texts, empty_row)
    terms = OneToKContrastiveLoss(validate=False)(images, texts, empty_row)
    assert math.isnan(terms.i2t.item())
    # What reads no value is still checked.
    module = OneToKContrastiveLoss(validate=False)
    with pytest.raises(ValueError, match=r"text_embeds must be 3-D \[B, K, D\]"):
        module(torch.zeros(2, 4), torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"text_mask must have shape \[3, 2\]"):
        module(images, texts, torch.ones(3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="text_mask must be a bool"):
        module(images, texts, torch.ones(3, 2))


@pytest.mark.parametrize("variant", ["paper", "released"])
@pytest.mark.parametrize("masked", [False, True])
def test_query_rows_shares_add_up_to_the_loss(variant: str, masked: bool) -> None:
    images, texts = make_batch(7, 3, 6, seed=27)
    mask = random_mask(7, 3, seed=8) if masked else None
    scale = torch.tensor(1 / 0.2, dtype=torch.float64, requires_grad=True)

    def loss(rows: slice | None) -> losses.ContrastiveLossTerms:
        return one_to_k_contrastive_loss(
            images, texts, logit_scale=scale, text_mask=mask, variant=variant, query_rows=rows
        )

    whole = loss(None)
    parts = [loss(slice(0, 2)), loss(slice(2, 3)), loss(slice(3, 7))]
    for index in range(3):
        torch.testing.assert_close(sum(p[index] for p in parts), whole[index])
    (grad_whole,) = torch.autograd.grad(whole.total, scale)
    (grad_parts,) = torch.autograd.grad(sum(p.total for p in parts), scale)
    torch.testing.assert_close(grad_parts, grad_whole)
    # Every row as a slice is the whole batch.
    torch.testing.assert_close(loss(slice(None)).total, whole.total, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("kwargs", "argument", "match"),
    [
        ({"temperature": 0.1, "logit_scale": 10.0}, "logit_scale", "not both"),
        ({"logit_scale": torch.ones(1)}, "logit_scale", r"0-dim floating-point.*\[1\]"),
        ({"logit_scale": torch.tensor(3)}, "logit_scale", "0-dim floating-point"),
        ({"logit_scale": torch.tensor(-1.0)}, "logit_scale", "finite and positive, got -1.0"),
        ({"logit_scale": torch.tensor(math.inf)}, "logit_scale", "finite and positive"),
        ({"logit_scale": 0.0}, "logit_scale", "finite positive number"),
        ({"logit_scale": "10"}, "logit_scale", "finite positive number"),
        ({"query_rows": [0, 1]}, "query_rows", "query_rows must be a slice .* got list"),
        ({"query_rows": slice(1, 1)}, "query_rows", r"non-empty .* \[0, 3\)"),
        ({"query_rows": slice(0, 4)}, "query_rows", r"within the rows \[0, B\) = \[0, 3\)"),
        ({"query_rows": slice(-2, None)}, "query_rows", "slice"),
        ({"query_rows": slice(0, 3, 2)}, "query_rows", "step 1"),
    ],
)
def test_new_arguments_are_refused_naming_them(
    kwargs: dict[str, object], argument: str, match: str
) -> None:
    images, texts = make_batch(3, 2, 4, seed=0)
    with pytest.raises(InputError, match=match) as caught:
        one_to_k_contrastive_loss(images, texts, **kwargs)  # type: ignore[arg-type]
    assert caught.value.argument == argument


def test_unchecked_logit_scale_value_is_used_as_given() -> None:
    images, texts = make_batch(3, 2, 4, seed=0)
    terms = one_to_k_contrastive_loss(
        images, texts, logit_scale=torch.tensor(-1.0, dtype=torch.float64), validate=False
    )
    expected = one_to_k_contrastive_loss(images, -texts, temperature=1.0)
    torch.testing.assert_close(terms.total, expected.total)


# --- the module, single process ------------------------------------------------------


@pytest.mark.parametrize("variant", ["paper", "released"])
@pytest.mark.parametrize("local_loss", [False, True])
@pytest.mark.parametrize("validate", [True, False])
def test_module_without_process_group_is_the_functional_loss(
    variant: str, local_loss: bool, validate: bool
) -> None:
    images, texts = make_batch(6, 3, 8, seed=12, dtype=torch.float32)
    mask = random_mask(6, 3, seed=4)
    module = OneToKContrastiveLoss(
        temperature=0.1, variant=variant, local_loss=local_loss, validate=validate
    )
    got = module(images, texts, mask)
    expected = one_to_k_contrastive_loss(
        images,
        texts,
        temperature=0.1,
        text_mask=mask,
        variant=variant,
    )
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b)


def test_module_temperature_is_learnable_and_freezable() -> None:
    images, texts = make_batch(4, 2, 8, seed=1, dtype=torch.float32)
    module = OneToKContrastiveLoss()
    assert isinstance(module.logit_scale, torch.nn.Parameter)
    assert module.logit_scale.item() == pytest.approx(math.log(1 / 0.07))
    assert module.temperature == pytest.approx(0.07)
    assert [name for name, _ in module.named_parameters()] == ["logit_scale"]
    module(images, texts).total.backward()
    assert module.logit_scale.grad is not None
    assert module.logit_scale.grad.item() != 0

    frozen = OneToKContrastiveLoss(learn_temperature=False)
    assert not frozen.logit_scale.requires_grad
    assert [p for p in frozen.parameters() if p.requires_grad] == []
    assert "learn_temperature=False" in repr(frozen)
    assert "validate=True" in repr(frozen)


def test_forward_does_not_clamp_and_clamp_logit_scale_does() -> None:
    images, texts = make_batch(4, 2, 8, seed=1, dtype=torch.float32)
    module = OneToKContrastiveLoss(temperature=0.05)
    with torch.no_grad():
        module.logit_scale.fill_(5.0)  # an optimiser step overshot: scale e**5 > 100
    terms = module(images, texts)
    assert module.logit_scale.item() == 5.0  # forward leaves the parameter alone
    expected = one_to_k_contrastive_loss(images, texts, logit_scale=math.exp(5.0))
    torch.testing.assert_close(terms.total, expected.total)
    assert module.temperature == pytest.approx(math.exp(-5.0))

    module.clamp_logit_scale_()
    assert module.logit_scale.item() == pytest.approx(math.log(100.0))
    assert module.temperature == pytest.approx(0.01)
    terms = module(images, texts)
    expected = one_to_k_contrastive_loss(images, texts, temperature=0.01)
    torch.testing.assert_close(terms.total, expected.total)
    # The gradient still flows at the bound, so the scale can come back down.
    terms.total.backward()
    assert module.logit_scale.grad is not None and module.logit_scale.grad.item() != 0

    with torch.no_grad():
        module.logit_scale.fill_(-1.0)  # below the lower bound, scale 1
    module.clamp_logit_scale_()
    assert module.logit_scale.item() == 0.0
    small = OneToKContrastiveLoss(temperature=0.5, max_logit_scale=10.0)
    with torch.no_grad():
        small.logit_scale.fill_(4.0)
    small.clamp_logit_scale_()
    assert small.logit_scale.item() == pytest.approx(math.log(10.0))


def test_clamp_after_the_optimiser_step_as_open_clip() -> None:
    images, texts = make_batch(6, 2, 8, seed=2, dtype=torch.float32)
    module = OneToKContrastiveLoss(temperature=0.0101)
    optimizer = torch.optim.SGD(module.parameters(), lr=100.0)
    module(images, -texts).total.backward()  # wrong pairs: the loss asks for a larger scale?
    optimizer.step()
    module.clamp_logit_scale_()
    assert 0.0 <= module.logit_scale.item() <= math.log(100.0) + 1e-6


def test_the_old_parameter_name_is_gone() -> None:
    module = OneToKContrastiveLoss(temperature=0.2)
    assert not hasattr(module, "log_logit_scale")
    assert list(module.state_dict()) == ["logit_scale"]
    # A state dict with the first release's key is refused, as torch refuses any stray key.
    with pytest.raises(RuntimeError, match="log_logit_scale"):
        module.load_state_dict({"log_logit_scale": torch.tensor(math.log(1 / 0.3))})
    assert module.temperature == pytest.approx(0.2)
    model = torch.nn.ModuleDict({"loss": OneToKContrastiveLoss(temperature=0.5)})
    module.load_state_dict({"logit_scale": torch.tensor(math.log(5.0))})
    model.load_state_dict({"loss." + k: v for k, v in module.state_dict().items()})
    assert model["loss"].temperature == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"temperature": 0.0}, "temperature"),
        ({"temperature": 0.005}, r"logit scale 200, outside \[1, max_logit_scale = 100\]"),
        ({"temperature": 2.0}, "outside"),
        ({"max_logit_scale": 0.5}, "max_logit_scale"),
        ({"max_logit_scale": math.inf}, "max_logit_scale"),
        ({"variant": "both"}, "variant"),
    ],
)
def test_module_invalid_settings(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        OneToKContrastiveLoss(**kwargs)


def test_module_validates_its_inputs() -> None:
    module = OneToKContrastiveLoss()
    with pytest.raises(ValueError, match="text_embeds must be 3-D"):
        module(torch.zeros(2, 4), torch.zeros(2, 4))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    images, texts = make_batch(8, 3, 16, seed=3, dtype=torch.float32)
    mask = random_mask(8, 3, seed=2)
    cpu = one_to_k_contrastive_loss(images, texts, text_mask=mask)
    cuda = one_to_k_contrastive_loss(images.cuda(), texts.cuda(), text_mask=mask.cuda())
    torch.testing.assert_close(cuda.total.cpu(), cpu.total)
    half = one_to_k_contrastive_loss(
        images.cuda().half(), texts.cuda().half(), temperature=0.01, text_mask=mask
    )
    assert bool(torch.isfinite(half.total))


def test_pure_modules_do_not_import_torch_distributed() -> None:
    for name in ("_contrastive.py", "sampling.py", "losses.py"):
        tree = ast.parse((PACKAGE / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                continue
            assert not any(m.startswith("torch.distributed") for m in modules), name


# --- matching pairs and the matching (ITM) loss --------------------------------------


def released_itm_layout(
    positive_text: list[int], negative_image: list[int], negative_text: list[int]
) -> tuple[list[int], list[int], list[int]]:
    """The (image, text) rows get_unialign_matching_loss hands its itm_head, in order.

    cross_pos pairs each image with its positive text; cross_neg pairs
    image_embeds_all = cat([image_embeds_neg, image_embeds]) with
    text_embeds_all = cat([text_embeds_pos, text_embeds_neg]); labels 1 for the B
    positives, then 0 for the 2B negatives.
    """
    bs = len(positive_text)
    images = list(range(bs))
    image_all = negative_image + images
    text_all = positive_text + negative_text
    return (
        images + image_all,
        positive_text + text_all,
        [1] * bs + [0] * (2 * bs),
    )


def test_matching_pairs_is_the_released_layout() -> None:
    hard = HardSamples(
        positive_text=torch.tensor([2, 4, 7, 9]),  # B = 4, K = 3
        negative_image=torch.tensor([3, 0, 1, 2]),
        negative_text=torch.tensor([5, 10, 1, 0]),
    )
    pairs = matching_pairs(hard)
    assert isinstance(pairs, MatchingPairs)
    expected = released_itm_layout(
        hard.positive_text.tolist(), hard.negative_image.tolist(), hard.negative_text.tolist()
    )
    assert (
        pairs.image_index.tolist(),
        pairs.text_index.tolist(),
        pairs.labels.tolist(),
    ) == expected
    assert all(t.dtype == torch.int64 and t.shape == (12,) for t in pairs)
    # A plain triple works as well: the contract is the indices, not the class.
    plain = matching_pairs((hard.positive_text, hard.negative_image, hard.negative_text))
    assert all(torch.equal(a, b) for a, b in zip(plain, pairs, strict=True))


def test_mined_pairs_are_labelled_by_ownership() -> None:
    images, texts = make_batch(6, 3, 8, seed=30)
    mask = random_mask(6, 3, seed=9)
    sim_i2t = images @ texts.reshape(18, 8).T
    for variant in ("paper", "released", "uniform"):
        hard = sampling.mine(
            sim_i2t, text_mask=mask, variant=variant, generator=torch.Generator().manual_seed(1)
        )
        pairs = matching_pairs(hard)
        owner = pairs.text_index // 3
        assert torch.equal((owner == pairs.image_index).long(), pairs.labels)
        assert bool(mask.reshape(-1)[pairs.text_index].all())


def test_matching_loss_is_the_itm_cross_entropy() -> None:
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(9, 2, generator=g, dtype=torch.float64)
    labels = torch.tensor([1, 1, 1, 0, 0, 0, 0, 0, 0])
    loss = matching_loss(logits, labels)
    assert torch.equal(loss, F.cross_entropy(logits, labels))
    single = logits[:, 1] - logits[:, 0]
    torch.testing.assert_close(matching_loss(single, labels), loss)
    torch.testing.assert_close(
        matching_loss(single, labels.bool()),
        F.binary_cross_entropy_with_logits(single, labels.double()),
    )
    logits.requires_grad_(True)
    matching_loss(logits, labels, validate=False).backward()
    assert logits.grad is not None


@pytest.mark.parametrize(
    ("hard", "argument", "match"),
    [
        ("pairs", "hard", "HardSamples"),
        ((torch.tensor([0]), torch.tensor([1])), "hard", "HardSamples"),
        (
            (torch.tensor([0.0]), torch.tensor([1]), torch.tensor([2])),
            "hard.positive_text",
            "1-D integer tensor",
        ),
        (
            (torch.tensor([0]), torch.tensor([[1]]), torch.tensor([2])),
            "hard.negative_image",
            r"1-D integer tensor \[B\], got dtype torch.int64 \[1, 1\]",
        ),
        (
            (torch.tensor([0, 1]), torch.tensor([1, 0]), torch.tensor([2])),
            "hard.negative_text",
            r"hard.negative_text \[1\] .* hard.positive_text \[2\]",
        ),
        (
            (torch.tensor([], dtype=torch.long),) * 3,
            "hard.positive_text",
            "non-zero length",
        ),
    ],
)
def test_matching_pairs_refuses_bad_samples(hard: object, argument: str, match: str) -> None:
    with pytest.raises(InputError, match=match) as caught:
        matching_pairs(hard)  # type: ignore[arg-type]
    assert caught.value.argument == argument


@pytest.mark.parametrize(
    ("logits", "labels", "argument", "match"),
    [
        (torch.zeros(3, 3), torch.zeros(3, dtype=torch.long), "logits", r"\[N, 2\].*\[3, 3\]"),
        (torch.zeros(0, 2), torch.zeros(0, dtype=torch.long), "logits", "N > 0"),
        (torch.zeros(3, dtype=torch.long), torch.zeros(3), "logits", "floating-point"),
        (torch.zeros(3, 2), torch.zeros(4, dtype=torch.long), "labels", r"\[N\] = \[3\]"),
        (torch.zeros(3, 2), torch.zeros(3), "labels", "integer or bool"),
        (torch.zeros(3, 2), torch.tensor([1, 2, 0]), "labels", r"labels\[1\] = 2"),
        (
            torch.tensor([0.0, math.nan, 1.0]),
            torch.tensor([1, 0, 0]),
            "logits",
            r"logits \[3\] contains nan at index \[1\]",
        ),
    ],
)
def test_matching_loss_refuses_bad_inputs(
    logits: torch.Tensor, labels: torch.Tensor, argument: str, match: str
) -> None:
    with pytest.raises(InputError, match=match) as caught:
        matching_loss(logits, labels)
    assert caught.value.argument == argument


def test_matching_path_makes_no_host_sync(monkeypatch: pytest.MonkeyPatch) -> None:
    hard = HardSamples(torch.tensor([1, 2]), torch.tensor([1, 0]), torch.tensor([3, 0]))
    logits = torch.randn(6, 2, requires_grad=True)
    calls = count_host_syncs(monkeypatch)
    pairs = matching_pairs(hard)
    matching_loss(logits, pairs.labels, validate=False).backward()
    assert calls == dict.fromkeys(SYNCS, 0)
    monkeypatch.undo()
