"""A report's metrics as ratios of per-image sums: what the bootstrap resamples.

Every number of a report is a ratio of per-image sums, or a mean of such ratios:
image-to-text R@K counts an image's hit over the images with a caption, text-to-image
R@K an image's hitting captions over its captions, MRV an image's spread over the
images it is taken over. :func:`ratios` lays them out as the
:class:`~ccr_metrics.analysis._bootstrap.Ratios` that
:func:`~ccr_metrics.bootstrap_intervals` and :func:`~ccr_metrics.compare` resample.
"""

from __future__ import annotations

import numpy as np

from ..core.mrv import REDUCTIONS, instance_rank_variance
from ..core.recall import DIRECTIONS
from ._bootstrap import Ratios
from ._report_view import FloatArray, ReportView
from .results import MetricKey

# A base ratio's per-image numerators and denominators, ``[N]`` each.
Base = dict[MetricKey, tuple[FloatArray, FloatArray]]


def ratios(report: ReportView, languages: list[str] | None = None) -> Ratios[MetricKey]:
    """Express the report's metrics as ratios of per-image sums (and means of those).

    Metrics are ordered as :meth:`~ccr_metrics.Report.metrics` orders them, with
    ``languages`` (default: the report's) deciding the order of the per-language ones;
    mean and median ranks and the images MRV is over are left out (no ratios).
    """
    base, recall_keys = _recall_ratios(report, report.languages if languages is None else languages)
    mrv_keys = _mrv_ratios(report, base)
    # Every metric as weights over the base ratios.
    columns: dict[MetricKey, dict[MetricKey, float]] = {}
    for keys in recall_keys.values():
        columns.update({key: {key: 1.0} for key in keys})
    for lang, keys in recall_keys.items():
        columns[MetricKey(lang, None, "mean_recall")] = {key: 1 / len(keys) for key in keys}
    for d in report.directions:
        for k in report.ks:
            parts = [
                key
                for keys in recall_keys.values()
                for key in keys
                if (key.direction, key.k) == (d, k)
            ]
            columns[MetricKey("average", d, "recall", k)] = {key: 1 / len(parts) for key in parts}
    columns[MetricKey("average", None, "mean_recall")] = {
        key: 1 / len(keys) / len(recall_keys) for keys in recall_keys.values() for key in keys
    }
    columns.update({key: {key: 1.0} for key in mrv_keys})
    base_index = {key: i for i, key in enumerate(base)}
    mix = np.zeros((len(base), len(columns)))
    for j, weights in enumerate(columns.values()):
        for key, weight in weights.items():
            mix[base_index[key], j] = weight
    estimates = report.metrics()
    return Ratios(
        keys=list(columns),
        estimates=np.array([estimates[key] for key in columns]),
        numerators=np.stack([num for num, _ in base.values()], axis=1),
        denominators=np.stack([den for _, den in base.values()], axis=1),
        mix=mix,
    )


def _recall_ratios(
    report: ReportView, languages: list[str]
) -> tuple[Base, dict[str, list[MetricKey]]]:
    """R@K of each language and direction as per-image hits over per-image queries."""
    n = report.n_images
    base: Base = {}
    recall_keys: dict[str, list[MetricKey]] = {}
    for lang in languages:
        recall_keys[lang] = []
        for d in (d for d in DIRECTIONS if d in report.ranks[lang]):
            # Hits are 0/1, or probabilities under ties="expected".
            if d == "i2t":
                queries = report.has_caption(lang).astype(np.float64)
                hits = [np.nan_to_num(report.hits(lang, d, k)) for k in report.ks]
            else:
                owner = report.text_to_image[lang]
                queries = np.bincount(owner, minlength=n).astype(np.float64)
                hits = [
                    np.bincount(owner, weights=report.hits(lang, d, k), minlength=n).astype(
                        np.float64
                    )
                    for k in report.ks
                ]
            for k, h in zip(report.ks, hits, strict=True):
                key = MetricKey(lang, d, "recall", k)
                base[key] = (h, queries)
                recall_keys[lang].append(key)
    return base, recall_keys


def _mrv_ratios(report: ReportView, base: Base) -> list[MetricKey]:
    """Add MRV of each direction where defined to ``base``: spreads over counted images."""
    mrv_keys: list[MetricKey] = []
    for d, by_reduction in report.mrv().items():
        if by_reduction is None:
            continue
        ranks, mask = report.rank_matrix(d)
        for reduction in REDUCTIONS:
            spread = np.asarray(
                instance_rank_variance(ranks, reduction=reduction, mask=mask),
                dtype=np.float64,
            )
            valid = ~np.isnan(spread)
            key = MetricKey(None, d, f"mrv_{reduction}")
            base[key] = (np.where(valid, spread, 0.0), valid.astype(np.float64))
            mrv_keys.append(key)
    return mrv_keys
