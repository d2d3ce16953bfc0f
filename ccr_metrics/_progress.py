"""Progress bars on stderr (tqdm), one maker for every phase that can take seconds.

A bar that is off is a stand-in: tqdm is then not even imported.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

__all__ = ["NoBar", "progress_bar"]


def progress_bar(enabled: bool, total: int, *, unit: str = "block", desc: str = "ranking") -> Any:
    """Return a tqdm bar over ``total`` steps (on stderr), or a stand-in showing nothing."""
    if not enabled:
        return nullcontext(NoBar())
    from tqdm.auto import tqdm

    return tqdm(total=total, unit=unit, desc=desc)


class NoBar:
    """A progress bar that shows nothing."""

    def update(self, n: int = 1) -> None:
        """Do nothing: progress is off."""
