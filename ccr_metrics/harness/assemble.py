"""The last stage: rank counts and the text-to-image index to a :class:`~ccr_metrics.Report`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ..analysis.report import Report
from ..core.ties import RankCounts


def build_report(
    counts: Mapping[str, Mapping[str, RankCounts]],
    owners: Mapping[str, torch.Tensor],
    n_images: int,
    ks: tuple[int, ...],
    settings: Mapping[str, Any],
) -> Report:
    """Build the Report of ``counts``; ``owners`` are the text-to-image indices, any device."""
    return Report.from_counts(
        counts,
        text_to_image={lang: o.cpu().numpy() for lang, o in owners.items()},
        n_images=n_images,
        ks=ks,
        settings=settings,
    )


def settings(
    ties: str,
    caption_reduction: str,
    languages: list[str],
    source: str,
    device: torch.device,
    dtype: str,
    *,
    mrv_images: str,
    galleries: Mapping[str, int] | None,
) -> dict[str, Any]:
    """Record how the counts were made, for the Report's ``settings``.

    ``galleries`` are the sizes of per-language galleries; None (one shared gallery)
    records none.
    """
    out: dict[str, Any] = {
        "ties": ties,
        "caption_reduction": caption_reduction,
        "mrv_images": mrv_images,
        "languages": languages,
        "source": source,
        "device": str(device),
        "dtype": dtype,
    }
    if galleries is not None:
        out["galleries"] = dict(galleries)
    return out
