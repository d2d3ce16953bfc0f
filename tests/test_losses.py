"""The 1-to-K and 1-to-1 contrastive losses and the single-process module."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ccr_metrics import losses, sampling
from ccr_metrics.losses import (
    OneToKContrastiveLoss,
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


# --- the module, single process ------------------------------------------------------


@pytest.mark.parametrize("variant", ["paper", "released"])
@pytest.mark.parametrize("local_loss", [False, True])
def test_module_without_process_group_is_the_functional_loss(
    variant: str, local_loss: bool
) -> None:
    images, texts = make_batch(6, 3, 8, seed=12, dtype=torch.float32)
    mask = random_mask(6, 3, seed=4)
    module = OneToKContrastiveLoss(temperature=0.1, variant=variant, local_loss=local_loss)
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
    assert module.log_logit_scale.item() == pytest.approx(math.log(1 / 0.07))
    assert module.temperature == pytest.approx(0.07)
    module(images, texts).total.backward()
    assert module.log_logit_scale.grad is not None
    assert module.log_logit_scale.grad.item() != 0

    frozen = OneToKContrastiveLoss(learn_temperature=False)
    assert not frozen.log_logit_scale.requires_grad
    assert [p for p in frozen.parameters() if p.requires_grad] == []
    assert "learn_temperature=False" in repr(frozen)


def test_module_clamps_logit_scale_like_clip() -> None:
    images, texts = make_batch(4, 2, 8, seed=1, dtype=torch.float32)
    module = OneToKContrastiveLoss(temperature=0.05)
    with torch.no_grad():
        module.log_logit_scale.fill_(10.0)  # an optimiser step overshot: scale e**10
    assert module.logit_scale.item() == pytest.approx(100.0)
    terms = module(images, texts)
    assert module.log_logit_scale.item() == pytest.approx(math.log(100.0))
    expected = one_to_k_contrastive_loss(images, texts, temperature=0.01)
    torch.testing.assert_close(terms.total, expected.total)
    # The gradient still flows at the bound, so the scale can come back down.
    terms.total.backward()
    assert module.log_logit_scale.grad is not None and module.log_logit_scale.grad.item() != 0


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
