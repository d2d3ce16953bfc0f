"""The :class:`Benchmark`: a test set's images and every language's captions, as indices."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from ..core._validation import InputError

__all__ = ["Benchmark"]

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False, repr=False)
class Benchmark:
    """A retrieval test set: its images and, per language, the captions and their images.

    Built by :func:`~ccr_metrics.load_benchmark` from a benchmark's files, or directly
    from ``image_ids``, ``captions`` and ``text_to_image`` (``languages`` and
    ``galleries`` follow from them).

    Parameters
    ----------
    name : str
        The benchmark's name (``"xflickrco"``, ...; any name for one of your own).
    split : str
        The split read (``"test"``).
    image_ids : list of str, length N
        One identifier per image, distinct, in the order the reader states.
    captions : mapping of str to list of str
        Per language (in this order), its captions ``[M_l]``.
    text_to_image : mapping of str to array-like of int
        Per language, the image of each caption: ``[M_l]`` indices into ``image_ids``.
    image_paths : list of str, length N, optional
        Each image's file as the format names it (relative; see Notes), or None where
        the format names none (WIT: its ``image_ids`` are URLs).

    Attributes
    ----------
    languages : tuple of str
        The languages, in the order of ``captions``.
    galleries : dict of str to numpy.ndarray of int64
        Per language, the sorted indices of the images it has at least one caption
        for. Where every language covers every image, each is ``arange(N)``: one shared
        gallery (:attr:`shared_gallery`).

    Raises
    ------
    ValueError
        If ``image_ids`` repeats an identifier, ``captions`` or a language's captions
        are empty, its keys differ from ``text_to_image``'s, a ``text_to_image`` entry
        has the wrong length or an index outside ``[0, N)``, or ``image_paths`` has the
        wrong length.

    Notes
    -----
    ``image_paths`` are relative names: none of the formats ships its images beside its
    annotations, so the caller resolves them against wherever the images are kept.

    Examples
    --------
    >>> b = Benchmark("mine", "test", ["a.jpg", "b.jpg", "c.jpg"],
    ...               {"en": ["a cat", "a dog", "two dogs"], "de": ["eine Katze"]},
    ...               {"en": [0, 1, 1], "de": [0]})
    >>> b.languages, b.galleries["de"].tolist(), b.shared_gallery
    (('en', 'de'), [0], False)
    >>> print(b)
    mine (test): 3 images, 2 languages; captions en 3, de 1;
    per-language galleries: en 2, de 1 images, 1 in all
    """

    name: str
    split: str
    image_ids: list[str]
    captions: dict[str, list[str]]
    text_to_image: dict[str, IntArray]
    image_paths: list[str] | None = None
    languages: tuple[str, ...] = field(init=False)
    galleries: dict[str, IntArray] = field(init=False)

    def __post_init__(self) -> None:
        ids = _strings(self.image_ids, "image_ids")
        _check_distinct(ids, "image_ids")
        n = len(ids)
        captions = _captions(self.captions)
        owners = _owners(self.text_to_image, captions, n)
        paths = None
        if self.image_paths is not None:
            paths = _strings(self.image_paths, "image_paths")
            if len(paths) != n:
                raise InputError(
                    f"image_paths has {len(paths)} entries for {n} images", argument="image_paths"
                )
        set_ = object.__setattr__
        set_(self, "image_ids", ids)
        set_(self, "captions", captions)
        set_(self, "text_to_image", owners)
        set_(self, "image_paths", paths)
        set_(self, "languages", tuple(captions))
        set_(self, "galleries", {lang: np.unique(t) for lang, t in owners.items()})

    @property
    def shared_gallery(self) -> bool:
        """Whether every language has a caption for every image (one gallery for all)."""
        n = len(self.image_ids)
        return all(len(g) == n for g in self.galleries.values())

    def summary(self) -> str:
        """One line: images, languages, captions per language, and the galleries."""
        langs = self.languages
        counts = ", ".join(f"{lang} {len(self.captions[lang])}" for lang in langs)
        head = (
            f"{self.name} ({self.split}): {len(self.image_ids)} images, {len(langs)} "
            f"language{'s' if len(langs) != 1 else ''}; captions {counts}; "
        )
        if self.shared_gallery:
            return head + "one gallery shared by every language"
        sizes = ", ".join(f"{lang} {len(self.galleries[lang])}" for lang in langs)
        in_all = np.ones(len(self.image_ids), dtype=bool)
        for gallery in self.galleries.values():
            covered = np.zeros_like(in_all)
            covered[gallery] = True
            in_all &= covered
        return head + f"per-language galleries: {sizes} images, {int(in_all.sum())} in all"

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        return f"<Benchmark {self.summary()}>"


def _strings(values: object, name: str) -> list[str]:
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise InputError(f"{name} must be a list of strings", argument=name)
    for i, v in enumerate(values):
        if not isinstance(v, str):
            raise InputError(
                f"{name}[{i}] must be a string, got {type(v).__name__}",
                argument=name,
                position=(i,),
            )
    return list(values)


def _check_distinct(ids: list[str], name: str) -> None:
    seen: dict[str, int] = {}
    for i, v in enumerate(ids):
        if v in seen:
            raise InputError(
                f"{name} repeats {v!r} at {i} (first at {seen[v]})", argument=name, position=(i,)
            )
        seen[v] = i


def _captions(captions: object) -> dict[str, list[str]]:
    if not isinstance(captions, Mapping) or not captions:
        raise InputError(
            "captions must map at least one language to its captions", argument="captions"
        )
    out = {}
    for lang, texts in captions.items():
        if not isinstance(lang, str) or not lang:
            raise InputError(f"captions has a key {lang!r}: not a language", argument="captions")
        out[lang] = _strings(texts, f"captions[{lang!r}]")
        if not out[lang]:
            raise InputError(f"captions[{lang!r}] is empty", argument="captions")
    return out


def _owners(owners: object, captions: dict[str, list[str]], n: int) -> dict[str, IntArray]:
    if not isinstance(owners, Mapping) or set(owners) != set(captions):
        keys = sorted(owners) if isinstance(owners, Mapping) else owners
        raise InputError(
            f"text_to_image must have the languages of captions ({', '.join(captions)}); "
            f"got {keys}",
            argument="text_to_image",
        )
    out = {}
    for lang, texts in captions.items():
        name = f"text_to_image[{lang!r}]"
        t = np.asarray(owners[lang])
        if t.ndim != 1 or len(t) != len(texts) or (t.size and t.dtype.kind not in "iu"):
            raise InputError(
                f"{name} must be {len(texts)} integers (one per caption), got "
                f"{t.dtype} with shape {list(t.shape)}",
                argument=name,
            )
        outside = np.flatnonzero((t < 0) | (t >= n))
        if outside.size:
            i = int(outside[0])
            raise InputError(
                f"{name} has {int(t[i])} at {i}, outside [0, {n})", argument=name, position=(i,)
            )
        out[lang] = t.astype(np.int64)
    return out
