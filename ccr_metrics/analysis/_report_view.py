"""What the helpers of :class:`~ccr_metrics.Report` read of a report: its public API.

The report's formatting (:mod:`ccr_metrics.analysis._report_format`) and its ratios
for the bootstrap (:mod:`ccr_metrics.analysis._report_ratios`) live beside
:mod:`ccr_metrics.analysis.report`, which calls them; they take the report as a
:class:`ReportView`, the protocol its public attributes and methods satisfy, and so
need not import the module that imports them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from .results import Intervals, MetricKey

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


class ReportView(Protocol):
    """The read-only surface of a :class:`~ccr_metrics.Report` its helpers use."""

    @property
    def ranks(self) -> Mapping[str, Mapping[str, FloatArray]]: ...

    @property
    def text_to_image(self) -> Mapping[str, IntArray]: ...

    @property
    def n_images(self) -> int: ...

    @property
    def ks(self) -> tuple[int, ...]: ...

    @property
    def settings(self) -> Mapping[str, Any]: ...

    @property
    def intervals(self) -> Intervals | None: ...

    @property
    def languages(self) -> list[str]: ...

    @property
    def directions(self) -> list[str]: ...

    def has_caption(self, language: str) -> BoolArray: ...

    def query_ranks(self, language: str, direction: str) -> FloatArray: ...

    def hits(self, language: str, direction: str, k: int) -> FloatArray: ...

    def rank_summary(self) -> dict[str, dict[str, dict[str, float]]]: ...

    def rank_matrix(self, direction: str) -> tuple[FloatArray, BoolArray]: ...

    def recall_table(self) -> dict[str, Any]: ...

    def metrics(self) -> dict[MetricKey, float]: ...

    def mrv(self) -> dict[str, dict[str, float] | None]: ...

    def mrv_undefined(self, direction: str) -> str | None: ...

    def mrv_image_counts(self) -> dict[str, int | None]: ...
