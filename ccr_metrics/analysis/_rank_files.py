"""MRV of rank arrays saved by other code: one file per language, or the released folder.

The library side of ``ccr-metrics mrv``: :func:`files_mrv` takes MRV of per-language
rank files (``--ranks LANG=PATH``), :func:`released_mrv` of both directions of the
``ranks/`` folder the authors' released code writes (``--released-dir DIR --model
NAME``). The files are read by :mod:`ccr_metrics.io`; the command line only parses,
prints and writes what these return.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from ..core._validation import InputError
from ..core.mrv import REDUCTIONS, mean_rank_variance
from ..io import RELEASED_DIRECTIONS, load_rank_matrix, load_released_ranks


class RankFilesMrv(NamedTuple):
    """MRV of one set of rank files, both reductions, and what it is over."""

    #: ``{"variance": f, "std": f}``.
    mrv: dict[str, float]
    #: The languages, in the files' order.
    languages: list[str]
    #: How many instances MRV is over (the first ones, with ``instances``).
    n_instances: int
    #: How many instances the files rank.
    n_ranked: int
    #: The file of each language.
    files: dict[str, str]

    def instances_text(self) -> str:
        """``"5 instances"``, or ``"the first 2 of 5 instances"``."""
        if self.n_instances == self.n_ranked:
            return f"{self.n_ranked} instances"
        return f"the first {self.n_instances} of {self.n_ranked} instances"

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form: ``mrv``, ``languages``, ``n_instances`` and ``files``."""
        return {
            "mrv": self.mrv,
            "languages": self.languages,
            "n_instances": self.n_instances,
            "files": self.files,
        }


class ReleasedMrv(NamedTuple):
    """MRV of the released folder: per direction with two languages or more, and notes."""

    #: ``{direction: RankFilesMrv}``, for "i2t" (``tr`` files) and "t2i" (``ir``).
    directions: dict[str, RankFilesMrv]
    #: What is missing: a direction with fewer than two languages, a language
    #: without a file in one direction.
    notes: list[str]


def files_mrv(files: Mapping[str, Path], *, instances: int | None = None) -> RankFilesMrv:
    """MRV of one rank file per language (``{language: path}``), every file ranking ``N``.

    ``instances`` keeps the first ones only, as the released code takes the first 2000.

    Raises
    ------
    InputError
        If a file cannot be read as ranks (as :func:`~ccr_metrics.load_rank_matrix`),
        or ``instances`` is more than the files rank (``argument="instances"``).
    """
    ranks = load_rank_matrix(files)
    kept = _first(ranks, instances, "the files")
    return RankFilesMrv(
        {r: mean_rank_variance(kept, reduction=r) for r in REDUCTIONS},
        list(files),
        kept.shape[0],
        ranks.shape[0],
        {lang: str(path) for lang, path in files.items()},
    )


def released_mrv(
    folder: Path,
    model: str,
    *,
    languages: Sequence[str] | None = None,
    instances: int | None = None,
) -> ReleasedMrv:
    """MRV in both directions of the released code's ``ranks/`` folder, for one model.

    Reads ``<language>_<model>_tr.npy`` (image-to-text) and ``..._ir.npy``
    (text-to-image) with :func:`~ccr_metrics.load_released_ranks`; a direction is taken
    over the languages it has files of, if two or more.

    Raises
    ------
    InputError
        As :func:`~ccr_metrics.load_released_ranks`; if no direction has files in two
        languages; if ``instances`` is more than a direction's files rank
        (``argument="instances"``).
    """
    ranks = load_released_ranks(folder, model, languages=languages)
    every = list(dict.fromkeys(lang for by_lang in ranks.values() for lang in by_lang))
    directions: dict[str, RankFilesMrv] = {}
    notes = []
    for direction, tag in RELEASED_DIRECTIONS.items():
        by_lang = ranks.get(direction, {})
        if len(by_lang) < 2:
            has = (
                f"{tag} files of {model!r} for {', '.join(by_lang)} only"
                if by_lang
                else f"no {tag} files of {model!r}"
            )
            notes.append(f"{direction}: {has}; no MRV in this direction (it needs two languages)")
            continue
        lacking = [lang for lang in every if lang not in by_lang]
        if lacking:
            notes.append(
                f"{direction}: no {tag} file for {', '.join(lacking)}; its MRV is over "
                f"the {len(by_lang)} languages it has"
            )
        matrix = np.stack(list(by_lang.values()), axis=1)
        kept = _first(matrix, instances, f"the {tag} files")
        directions[direction] = RankFilesMrv(
            {r: mean_rank_variance(kept, reduction=r) for r in REDUCTIONS},
            list(by_lang),
            kept.shape[0],
            matrix.shape[0],
            {lang: str(folder / f"{lang}_{model}_{tag}.npy") for lang in by_lang},
        )
    if not directions:
        found = "; ".join(
            f"{d} ({t}): {', '.join(ranks.get(d, {})) or 'none'}"
            for d, t in RELEASED_DIRECTIONS.items()
        )
        raise InputError(
            f"{folder}: MRV needs ranks in at least two languages in a direction, and model "
            f"{model!r} has {found}",
            argument="released_dir",
        )
    return ReleasedMrv(directions, notes)


def _first(ranks: npt.NDArray[np.float64], n: int | None, files: str) -> npt.NDArray[np.float64]:
    """Return the first ``n`` rows of ``ranks`` ``[N, K]`` (all of them for None)."""
    if n is None:
        return ranks
    if n > ranks.shape[0]:
        raise InputError(
            f"{n} is more than the {ranks.shape[0]} instances {files} rank", argument="instances"
        )
    return ranks[:n]
