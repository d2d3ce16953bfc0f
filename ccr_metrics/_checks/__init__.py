"""Invariant checks of user-written ranks, Recall@K, MRV and 1-to-K losses.

The engine behind :func:`ccr_metrics.testing.check_rank_function` and its siblings. Each
check owns one table of :class:`Property` entries (a name, a one-line meaning and a test
that draws an input with hypothesis, calls the user's function and raises a violation).
:func:`run_check` runs every entry that applies to the options given, derandomized and
without an example database, and gathers the shrunk counter-examples into one
:class:`CheckFailure`. This library is the oracle where it computes the same quantity;
the other properties relate the function's outputs on related inputs to each other.

Canonical calls (what the user's function, or its ``adapter``, receives):

- ranks: ``fn(scores [Q, G], positives) -> 1-based ranks [Q]``;
- recall: ``fn(scores [Q, G], positives, k) -> fraction in [0, 1]``;
- MRV: ``fn(ranks [N, K]) -> float``, and ``fn(ranks, mask=mask)`` when masked;
- loss: ``fn(image_embeds [B, D], text_embeds [B, K, D], temperature=tau) -> 0-dim
  tensor`` (or a tuple whose first item is it), ``text_mask=`` added when masked.

The modules: ``runner`` (options, the property, failure and result types, running a
table, showing inputs), ``problems`` (score matrices with positives, drawn and passed to
a rank or recall function), ``ranking`` and ``recall`` (their tables and checks),
``mrv`` and ``losses`` (the same for MRV and 1-to-K losses). This package re-exports
what :mod:`ccr_metrics.testing` makes public.
"""

from __future__ import annotations

from .losses import LOSS_PROPERTIES, check_contrastive_loss
from .mrv import MRV_PROPERTIES, check_mrv_function
from .ranking import RANK_PROPERTIES, check_rank_function
from .recall import RECALL_PROPERTIES, check_recall_function
from .runner import (
    CLAIMS,
    DEFAULT_MAX_EXAMPLES,
    CheckFailure,
    CheckResult,
    Property,
    PropertyFailure,
)

__all__ = [
    "CLAIMS",
    "DEFAULT_MAX_EXAMPLES",
    "LOSS_PROPERTIES",
    "MRV_PROPERTIES",
    "RANK_PROPERTIES",
    "RECALL_PROPERTIES",
    "CheckFailure",
    "CheckResult",
    "Property",
    "PropertyFailure",
    "check_contrastive_loss",
    "check_mrv_function",
    "check_rank_function",
    "check_recall_function",
]
