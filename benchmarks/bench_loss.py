"""Time the 1-to-K contrastive loss module against the same maths written plainly.

Run ``python benchmarks/bench_loss.py --help`` for the options; benchmarks/README.md
(section "Loss") holds measured figures.

Three contenders compute the paper's 1-to-K loss of one batch, ``B`` images and
``B * K`` texts of dimension ``D`` (default 256, 4, 512, float32, CPU), forward and
backward, with a learnable log logit scale:

- ``OneToKContrastiveLoss(validate=True)``, the default, which checks its inputs' values;
- ``OneToKContrastiveLoss(validate=False)``, the training path (no host sync);
- the plain maths: ``logits = images @ texts.T * logit_scale.exp()`` ``[B, B * K]``, a
  soft-target log-softmax with ``1 / K`` on each image's own texts, plus the
  cross-entropy of each text over the ``B`` images (``logits.T``).

Before timing, the script asserts that the values and the gradients with respect to the
images, the texts and the logit scale are identical (``torch.equal``: tolerance 0, bit
for bit) for all three. Timing is round-robin, the contenders interleaved, and keeps
each one's best, so that slow phases of a shared machine hit them alike.
"""

from __future__ import annotations

import argparse
import gc
import math
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from ccr_metrics import OneToKContrastiveLoss

TARGET = 1.15  # validate=False within this factor of the plain maths


def plain_loss(
    images: torch.Tensor, texts: torch.Tensor, logit_scale: torch.Tensor
) -> torch.Tensor:
    """The 1-to-K loss (paper variant, no mask) written plainly."""
    n_images, n_languages, dim = texts.shape
    logits = (images @ texts.reshape(n_images * n_languages, dim).T) * logit_scale.exp()
    targets = torch.eye(n_images, dtype=logits.dtype).repeat_interleave(n_languages, dim=1)
    targets = targets / n_languages
    i2t = -(targets * logits.log_softmax(1)).sum(1).mean()
    t2i = F.cross_entropy(logits.T, torch.arange(n_images).repeat_interleave(n_languages))
    return i2t + t2i


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (platform's guess elsewhere)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def cpu_flags() -> set[str]:
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        return set()
    for line in cpuinfo.read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


class Contender:
    """One way of computing the loss, on its own leaf tensors and logit scale."""

    def __init__(
        self,
        name: str,
        loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        images: torch.Tensor,
        texts: torch.Tensor,
        logit_scale: torch.Tensor,
    ) -> None:
        self.name = name
        self.loss = loss
        self.images = images.clone().requires_grad_(True)
        self.texts = texts.clone().requires_grad_(True)
        self.logit_scale = logit_scale
        self.best = {"forward": math.inf, "forward + backward": math.inf}

    def step(self, backward: bool = True) -> torch.Tensor:
        self.images.grad = self.texts.grad = self.logit_scale.grad = None
        value = self.loss(self.images, self.texts)
        if backward:
            value.backward()
        return value

    def results(self) -> list[torch.Tensor]:
        value = self.step()
        grads = [self.images.grad, self.texts.grad, self.logit_scale.grad]
        assert all(g is not None for g in grads), self.name
        return [value.detach(), *(g.clone() for g in grads if g is not None)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=256, help="B, images (256)")
    parser.add_argument("--languages", type=int, default=4, help="K, texts per image (4)")
    parser.add_argument("--dim", type=int, default=512, help="D, embedding size (512)")
    parser.add_argument("--repeats", type=int, default=100, help="rounds of timing (100)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    g = torch.Generator().manual_seed(args.seed)
    b, k, d = args.batch, args.languages, args.dim
    images = F.normalize(torch.randn(b, d, generator=g), dim=-1)
    texts = F.normalize(torch.randn(b, k, d, generator=g), dim=-1)
    checked = OneToKContrastiveLoss(temperature=0.07)
    fast = OneToKContrastiveLoss(temperature=0.07, validate=False)
    scale = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07)))
    assert torch.equal(scale, checked.logit_scale) and torch.equal(scale, fast.logit_scale)
    contenders = [
        Contender("plain maths", lambda i, t: plain_loss(i, t, scale), images, texts, scale),
        Contender(
            "module, validate=False",
            lambda i, t: fast(i, t).total,
            images,
            texts,
            fast.logit_scale,
        ),
        Contender(
            "module, validate=True",
            lambda i, t: checked(i, t).total,
            images,
            texts,
            checked.logit_scale,
        ),
    ]

    # Identical values and gradients (images, texts, logit scale): tolerance 0.
    reference = contenders[0].results()
    names = ("value", "d/d images", "d/d texts", "d/d logit_scale")
    for contender in contenders[1:]:
        for name, a, r in zip(names, contender.results(), reference, strict=True):
            assert torch.equal(a, r), (
                f"{contender.name}: {name} differs from the plain maths by "
                f"{(a - r).abs().max().item():.3g}"
            )
    print(f"values and gradients identical to the plain maths (torch.equal): {names}")

    for contender in contenders:  # warm-up
        for _ in range(3):
            contender.step()
    gc.collect()
    gc.disable()
    try:
        for _ in range(args.repeats):
            for kind in ("forward", "forward + backward"):
                for contender in contenders:
                    start = time.perf_counter()
                    contender.step(backward=kind != "forward")
                    contender.best[kind] = min(contender.best[kind], time.perf_counter() - start)
    finally:
        gc.enable()

    flags = cpu_flags()
    avx512 = "avx512f" in flags
    print(
        f"CPU: {cpu_name()} ({torch.get_num_threads()} torch threads, "
        f"AVX-512 {'yes' if avx512 else 'no'}); torch {torch.__version__}"
    )
    print(f"B = {b}, K = {k}, D = {d}, float32; best of {args.repeats} interleaved rounds\n")
    plain = contenders[0].best
    print("| | forward (ms) | forward + backward (ms) | ratio to plain (fwd + bwd) |")
    print("|---|---|---|---|")
    for contender in contenders:
        ratio = contender.best["forward + backward"] / plain["forward + backward"]
        print(
            f"| {contender.name} | {contender.best['forward'] * 1e3:.3f} | "
            f"{contender.best['forward + backward'] * 1e3:.3f} | {ratio:.3f}x |"
        )
    ratio = contenders[1].best["forward + backward"] / plain["forward + backward"]
    verdict = "PASS" if ratio <= TARGET else "FAIL"
    print(f"\nvalidate=False / plain maths = {ratio:.3f}x (target <= {TARGET}x: {verdict})")


if __name__ == "__main__":
    main()
