"""Per-language galleries: each language ranked among its own images only.

Without galleries every language's texts are ranked among all ``N`` images, which is
right where the languages describe the same images (Multi30K, xFlickr&CO, XM3600).
Where each language has images of its own (IGLUE's WIT: en, ja and ko share 30 of
their 1,975 images), that ranks a language's texts against the other languages' images too,
and its recall is not the one of its own test set. ``galleries`` maps each language to
the indices of its images; the harness then evaluates language ``l`` as the test set
``(images[galleries[l]], texts[l])``: its text-to-image ranks are taken among its own
images, its image-to-text queries are its own images. Scores are made on the tile grid
of that sub-test-set (gallery positions), so every plan still gives the same ranks.

Where no galleries are given and the languages' texts cover different images, the
harness warns (:func:`warn_if_mixed`) rather than rank silently in a mixed gallery.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import NamedTuple, NoReturn

import numpy as np
import torch

from ..core._backend import ArrayLike, to_tensor
from ..core._validation import InputError, dtype_str, shape_str
from ..core.mrv import MRV_IMAGES, MrvImages
from ..core.ties import RankCounts
from .second_stage import Scorer
from .stream import NonFinite

# One language's galleries: sorted image indices [G_l] on the CPU.
Galleries = dict[str, torch.Tensor]


def check_mrv_images(value: object) -> MrvImages:
    """Return ``mrv_images`` if it is ``"two"`` or ``"all"``, else raise naming it."""
    if not isinstance(value, str) or value not in MRV_IMAGES:
        raise InputError(
            f"mrv_images must be 'two' (MRV over the images with texts in two or more of "
            f"the languages) or 'all' (in every one), got {value!r}",
            argument="mrv_images",
        )
    return value


def check_galleries(
    galleries: Mapping[str, ArrayLike] | None,
    owners: Mapping[str, torch.Tensor],
    n_images: int,
    known: Iterable[str],
    *,
    shard: bool = False,
) -> Galleries | None:
    """Return each evaluated language's gallery, sorted, as CPU LongTensors; None without.

    ``owners`` are the checked text-to-image indices of the evaluated languages, ``known``
    every language the texts come in (an entry for another one is refused, as for
    ``text_to_image``). Indices may come in any order; a duplicate, an index out of
    ``[0, n_images)``, a missing language and a text whose image is not in its
    language's gallery are refused, naming the language and the position. A ``shard``
    (one process's part) may hold an empty gallery.
    """
    if galleries is None:
        return None
    if not isinstance(galleries, Mapping):
        raise InputError(
            "galleries must map each language to the indices of its images [G_l], got "
            f"{type(galleries).__name__}",
            argument="galleries",
        )
    known = list(known)
    for lang in galleries:
        if lang not in known:
            raise InputError(
                f"galleries has an entry for {lang!r}, a language with no texts (the texts "
                f"are in {', '.join(map(repr, known))})",
                argument="galleries",
            )
    out: Galleries = {}
    for lang, owner in owners.items():
        if lang not in galleries:
            raise InputError(
                f"galleries has no entry for {lang!r}: give every evaluated language its "
                "images (the same indices for every language keep one shared gallery)",
                argument="galleries",
            )
        out[lang] = _gallery(galleries[lang], f"galleries[{lang!r}]", n_images, shard)
        _check_texts_inside(out[lang], owner.cpu(), lang, n_images)
    return out


def _gallery(value: ArrayLike, name: str, n_images: int, shard: bool) -> torch.Tensor:
    """Return one language's image indices, checked and sorted."""
    t, _ = to_tensor(value, name)
    if t.dtype == torch.bool or t.is_floating_point() or t.is_complex():
        raise InputError(
            f"{name} must hold integer image indices, got {dtype_str(t)}", argument=name
        )
    if t.ndim != 1:
        raise InputError(
            f"{name} must be 1-D [G] (image indices), got {shape_str(t)}", argument=name
        )
    t = t.detach().cpu().long()
    if t.shape[0] == 0 and not shard:
        raise InputError(f"{name} is empty; a language needs at least one image", argument=name)
    bad = ((t < 0) | (t >= n_images)).nonzero()
    if bad.numel():
        i = int(bad[0, 0])
        raise InputError(
            f"{name}[{i}] is image {int(t[i])}, out of range [0, {n_images})",
            argument=name,
            position=(i,),
            value=float(t[i]),
        )
    order = torch.argsort(t, stable=True)
    ordered = t[order]
    repeated = (ordered[1:] == ordered[:-1]).nonzero()
    if repeated.numel():
        first, second = sorted(int(order[j]) for j in (repeated[0, 0], repeated[0, 0] + 1))
        raise InputError(
            f"{name} names image {int(t[first])} twice, at positions {first} and {second}",
            argument=name,
            position=(second,),
        )
    return ordered


def _check_texts_inside(gallery: torch.Tensor, owner: torch.Tensor, lang: str, n: int) -> None:
    """Refuse a text whose image is not in its language's gallery, naming the first."""
    inside = torch.zeros(n, dtype=torch.bool)
    inside[gallery] = True
    outside = (~inside[owner]).nonzero()
    if outside.numel():
        i = int(outside[0, 0])
        raise InputError(
            f"text {i} of {lang!r} describes image {int(owner[i])}, which is not in "
            f"galleries[{lang!r}]; a language's gallery holds the images of all its texts",
            argument=f"galleries[{lang!r}]",
            position=(i,),
        )


class Side(NamedTuple):
    """One language's sub-test-set: its gallery's images and its texts' places in it."""

    images: torch.Tensor  # [G_l, D]
    owner: torch.Tensor  # [M_l]: each text's image as a position in images
    gallery: torch.Tensor | None  # [G_l] image indices (CPU); None: every image


def side(images: torch.Tensor, owner: torch.Tensor, gallery: torch.Tensor | None) -> Side:
    """Return one language's view of ``images`` ``[N, D]``; ``owner`` ``[M_l]`` indexes them.

    A gallery of every image is no gallery: the same tensors, so the same scores.
    """
    if gallery is not None and gallery.shape[0] == images.shape[0]:
        gallery = None  # sorted, distinct and in range: every image in order
    owner = owner.to(images.device)
    return Side(gallery_rows(images, gallery), positions(owner, gallery), gallery)


def sizes(galleries: Galleries | None) -> dict[str, int] | None:
    """Return each language's gallery size; None without galleries."""
    return None if galleries is None else {lang: int(g.shape[0]) for lang, g in galleries.items()}


def recorded(gallery_sizes: Mapping[str, int] | None, n_images: int) -> dict[str, int] | None:
    """Return the gallery sizes the Report's settings keep: None for one shared gallery.

    Galleries of every image for every language are the shared gallery of an evaluation
    without galleries (the same ranks), and are recorded as such.
    """
    if gallery_sizes is None or all(n == n_images for n in gallery_sizes.values()):
        return None
    return dict(gallery_sizes)


def gallery_candidates(
    candidates: torch.Tensor, gallery: torch.Tensor | None, n_images: int, name: str
) -> torch.Tensor:
    """Return stored text-to-image candidates ``[M_l, k]`` (image indices) as gallery places.

    A candidate outside the language's gallery is refused, naming its place.
    """
    if gallery is None:
        return candidates
    place = torch.full((n_images,), -1, dtype=torch.long, device=candidates.device)
    place[gallery.to(candidates.device)] = torch.arange(gallery.shape[0], device=place.device)
    out = place[candidates]
    outside = (out < 0).nonzero()
    if outside.numel():
        q, j = (int(v) for v in outside[0])
        raise InputError(
            f"{name} has image {int(candidates[q, j])} at [{q}, {j}], which is not in the "
            "language's gallery (galleries=): a text's candidates come from its own images",
            argument=name,
            position=(q, j),
        )
    return out


def through(scorer: Scorer, gallery: torch.Tensor | None, device: torch.device) -> Scorer:
    """Return ``scorer`` taking gallery positions, which it turns into image indices."""
    if gallery is None:
        return scorer
    index = gallery.to(device)
    return lambda language, image, text: scorer(language, index[image], text)


def positions(owner: torch.Tensor, gallery: torch.Tensor | None) -> torch.Tensor:
    """Return each text's image as a position in ``gallery`` (``owner`` without one)."""
    if gallery is None:
        return owner
    return torch.searchsorted(gallery.to(owner.device), owner)


def gallery_rows(x: torch.Tensor, gallery: torch.Tensor | None) -> torch.Tensor:
    """Return the rows of ``x`` (images, or per-image rows) that ``gallery`` holds, in order."""
    return x if gallery is None else x[gallery.to(x.device)]


def expand(counts: RankCounts, gallery: torch.Tensor | None, n_images: int) -> RankCounts:
    """Return image-to-text counts of a gallery's images as counts of all ``n_images``.

    An image outside the gallery gets zero counts: it is no query in the language.
    """
    if gallery is None:
        return counts
    index = gallery.cpu().numpy()
    out = []
    for part in (counts.above, counts.tied_negatives, counts.tied_positives):
        full = np.zeros(n_images, dtype=np.int64)
        full[index] = part
        out.append(full)
    return RankCounts(*out)


def expand_rows(counts: torch.Tensor, gallery: torch.Tensor | None, n_images: int) -> torch.Tensor:
    """As :func:`expand`, for counts ``[3, G_l]`` as one tensor: ``[3, n_images]``."""
    if gallery is None:
        return counts
    out = counts.new_zeros((counts.shape[0], n_images))
    out[:, gallery.to(counts.device)] = counts
    return out


def mapped(
    nonfinite: NonFinite, rows: torch.Tensor | None = None, columns: torch.Tensor | None = None
) -> NonFinite:
    """Return ``nonfinite`` with gallery positions turned back into image indices."""
    if rows is None and columns is None:
        return nonfinite

    def report(row: int, column: int, value: float) -> NoReturn:
        nonfinite(
            row if rows is None else int(rows[row]),
            column if columns is None else int(columns[column]),
            value,
        )

    return report


def coverage(owners: Mapping[str, torch.Tensor], n_images: int) -> tuple[dict[str, int], int]:
    """Count the images each language's texts cover, and those every language covers."""
    covered = {lang: torch.bincount(o.cpu(), minlength=n_images) > 0 for lang, o in owners.items()}
    shared = torch.stack(list(covered.values())).all(0)
    return {lang: int(c.sum()) for lang, c in covered.items()}, int(shared.sum())


def warn_if_mixed(covered: Mapping[str, int], shared: int, n_images: int) -> None:
    """Warn, naming ``galleries=``, where the languages' texts cover different images.

    ``covered`` and ``shared`` are :func:`coverage`'s (summed over the processes of a
    sharded test set). The warning points at the user's call.
    """
    if len(covered) < 2 or all(n == shared for n in covered.values()):
        return
    counts = ", ".join(f"{lang} {n}" for lang, n in covered.items())
    warnings.warn(
        f"the texts of the languages cover different images ({counts} of {n_images}; "
        f"{shared} in every language) and no galleries= were given: each language's texts "
        f"are ranked among all {n_images} images, other languages' included. Pass "
        "galleries= (each language's image indices) to rank each language among its own "
        "images, or the same indices for every language to keep one shared gallery",
        UserWarning,
        stacklevel=_user_level(),
    )


def _user_level() -> int:
    """Return the ``stacklevel`` of the first caller outside ccr-metrics, seen from ours."""
    package = str(Path(__file__).resolve().parents[1])
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    return level
