"""The inputs of an evaluation: checked, laid out by language, on the compute device."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

import torch

from ..core._backend import ArrayLike, to_tensor
from ..core._positives import text_owner_index
from ..core._validation import (
    InputError,
    check_choice,
    check_floating,
    check_language_names,
    check_ndim,
    check_numeric,
    check_positive_ints,
    check_unique,
    shape_str,
)
from ..core.mrv import CAPTION_REDUCTIONS
from ..core.ties import TIES


class Prepared(NamedTuple):
    """Checked embeddings on the compute device, in their common dtype."""

    images: torch.Tensor  # [N, D]
    texts: dict[str, torch.Tensor]  # selected languages, in order: [M_l, D]
    owners: dict[str, torch.Tensor]  # [M_l] on the CPU
    ks: tuple[int, ...]
    device: torch.device
    dtype: torch.dtype


def options(
    k: int | Iterable[int], ties: str, caption_reduction: str, device: str | torch.device | None
) -> tuple[tuple[int, ...], torch.device]:
    """Check the options every evaluation takes; return the cut-offs and the device."""
    cutoffs = check_positive_ints("k", k)
    check_choice("ties", ties, TIES)
    check_choice("caption_reduction", caption_reduction, CAPTION_REDUCTIONS)
    return cutoffs, resolve_device(device)


def prepare(
    image_embeds: ArrayLike,
    text_embeds: Mapping[str, ArrayLike],
    text_to_image: Mapping[str, ArrayLike] | None,
    k: int | Iterable[int],
    ties: str,
    languages: Sequence[str] | None,
    caption_reduction: str,
    device: str | torch.device | None,
    *,
    shard: bool = False,
) -> Prepared:
    """Validate the arguments of :func:`evaluate` and move the embeddings once.

    A ``shard`` (one process's part of a sharded test set) may hold no image, or no
    text in a language; the whole test set is checked for that once the shards are
    known.
    """
    cutoffs, dev = options(k, ties, caption_reduction, device)
    images = _embeddings(image_embeds, "image_embeds", shard)
    if not isinstance(text_embeds, Mapping) or not text_embeds:
        raise InputError(
            "text_embeds must map each language to its text embeddings [M, D]",
            argument="text_embeds",
        )
    check_language_names("text_embeds", text_embeds)
    selected = select_languages(languages, list(text_embeds))
    texts = {
        lang: _embeddings(text_embeds[lang], f"text_embeds[{lang!r}]", shard) for lang in selected
    }
    dim = images.shape[1]
    for lang, t in texts.items():
        if t.shape[1] != dim:
            raise InputError(
                f"text_embeds[{lang!r}] has dimension {t.shape[1]} ({shape_str(t)}) but "
                f"image_embeds has {dim} ({shape_str(images)})",
                argument=f"text_embeds[{lang!r}]",
            )
    owners = text_owners(
        text_to_image, {lang: t.shape[0] for lang, t in texts.items()}, len(images), text_embeds
    )
    dtype = images.dtype
    for t in texts.values():
        dtype = torch.promote_types(dtype, t.dtype)
    return Prepared(
        images=images.detach().to(device=dev, dtype=dtype),
        texts={lang: t.detach().to(device=dev, dtype=dtype) for lang, t in texts.items()},
        owners=owners,
        ks=cutoffs,
        device=dev,
        dtype=dtype,
    )


def score_matrices(
    i2t: Mapping[str, ArrayLike] | None,
    t2i: Mapping[str, ArrayLike] | None,
    languages: Sequence[str] | None,
) -> tuple[dict[str, dict[str, torch.Tensor]], int, dict[str, int]]:
    """Check stored score matrices: ``({lang: {dir: matrix}}, N, {lang: M_l})``.

    Values are not read here: the counting pass finds a NaN or infinity block by block,
    so a memory-mapped matrix is never read whole for the check.
    """
    given = {"i2t": dict(i2t or {}), "t2i": dict(t2i or {})}
    for direction, by_lang in given.items():
        check_language_names(direction, by_lang)
    available = list(dict.fromkeys([*given["i2t"], *given["t2i"]]))
    if not available:
        raise InputError(
            "evaluate_scores needs i2t or t2i score matrices for some language", argument="i2t"
        )
    selected = select_languages(languages, available)
    matrices: dict[str, dict[str, torch.Tensor]] = {lang: {} for lang in selected}
    for direction, by_lang in given.items():
        for lang in selected:
            if lang in by_lang:
                m, _ = to_tensor(by_lang[lang], f"{direction}[{lang!r}]")
                check_ndim(m, f"{direction}[{lang!r}]", 2, _LAYOUT[direction])
                check_numeric(m, f"{direction}[{lang!r}]")
                matrices[lang][direction] = m
    n_images, n_texts = _score_shapes(matrices)
    return matrices, n_images, n_texts


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Return the device to compute on: CUDA when available for None or "auto".

    Raises
    ------
    ValueError
        If ``device`` is not a device name, is ``"meta"``, or names a device that is
        not available (CUDA where there is none, a CUDA index beyond the count).

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise InputError(
            f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}", argument="device"
        ) from None
    if dev.type == "meta":
        raise InputError(
            f"device {device!r} holds shapes without values, so nothing can be ranked; "
            "use 'cpu' or 'cuda'",
            argument="device",
        )
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(
                f"device {device!r} was asked for but CUDA is not available", argument="device"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InputError(
                f"device {device!r} was asked for but there are "
                f"{torch.cuda.device_count()} CUDA device(s)",
                argument="device",
            )
    elif dev.type != "cpu":
        try:  # another backend (mps, xpu, ...): usable only if torch can allocate on it
            torch.empty(0, device=dev)
        except (RuntimeError, AssertionError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(
                f"device {device!r} is not available here ({reason[:120]}); use 'cpu' or 'cuda'",
                argument="device",
            ) from None
    return dev


_LAYOUT = {"i2t": "[N, M] (images x texts)", "t2i": "[M, N] (texts x images)"}


def _embeddings(x: ArrayLike, name: str, may_be_empty: bool) -> torch.Tensor:
    t, _ = to_tensor(x, name)
    check_ndim(t, name, 2, "[count, D]")
    check_numeric(t, name)
    check_floating(t, name)
    if t.shape[0] == 0 and not may_be_empty:
        raise InputError(f"{name} is empty ({shape_str(t)})", argument=name)
    if t.shape[1] == 0:
        raise InputError(
            f"{name} has embeddings of dimension 0 ({shape_str(t)}): nothing to compare",
            argument=name,
        )
    return t


def select_languages(languages: Sequence[str] | None, available: list[str]) -> list[str]:
    """Return the languages to evaluate, in order: ``languages`` checked, or all ``available``.

    ``languages`` must name available languages, each once.
    """
    if languages is None:
        return available
    if isinstance(languages, str):
        languages = [languages]
    unknown = [lang for lang in languages if lang not in available]
    if unknown:
        raise InputError(
            f"unknown language(s) {unknown}; available: {available}", argument="languages"
        )
    if not languages:
        raise InputError("languages must name at least one language", argument="languages")
    check_unique("languages", languages)
    return list(languages)


def text_owners(
    text_to_image: Mapping[str, ArrayLike] | None,
    n_texts: Mapping[str, int],
    n_images: int,
    known: Iterable[str],
) -> dict[str, torch.Tensor]:
    """Return the checked text-to-image index of each language, LongTensors on the CPU.

    ``known`` are the languages the texts come in (before any ``languages=`` selection):
    an entry for another one is refused, as the file loaders refuse it, since it is
    most likely a misspelt language whose texts would otherwise be read in file order.
    """
    if text_to_image is not None and not isinstance(text_to_image, Mapping):
        raise InputError(
            "text_to_image must map each language to the image index of its texts [M], "
            f"got {type(text_to_image).__name__}",
            argument="text_to_image",
        )
    mapping = dict(text_to_image or {})
    known = list(known)
    for lang in mapping:
        if lang not in known:
            raise InputError(
                f"text_to_image has an entry for {lang!r}, a language with no texts "
                f"(the texts are in {', '.join(map(repr, known))})",
                argument="text_to_image",
            )
    owners = {}
    for lang, m in n_texts.items():
        if m == 0 and lang not in mapping:  # a shard without texts in the language
            owners[lang] = torch.zeros(0, dtype=torch.long)
            continue
        try:
            owners[lang] = text_owner_index(
                mapping.get(lang), n_texts=m, n_images=n_images, device=torch.device("cpu")
            )
        except ValueError as exc:
            raise InputError(f"language {lang!r}: {exc}", argument="language") from None
    return owners


def _score_shapes(
    matrices: Mapping[str, Mapping[str, torch.Tensor]],
) -> tuple[int, dict[str, int]]:
    """``N`` and each language's ``M_l`` from the matrices, checked to agree."""
    n_images: int | None = None
    n_texts: dict[str, int] = {}
    for lang, by_dir in matrices.items():
        for direction, m in by_dir.items():
            n, k = (m.shape[0], m.shape[1]) if direction == "i2t" else (m.shape[1], m.shape[0])
            name = f"{direction}[{lang!r}] {shape_str(m)}"
            if n == 0 or k == 0:
                raise InputError(
                    f"{name} holds no {'images' if n == 0 else 'texts'}; a score matrix needs "
                    "at least one of each",
                    argument=f"{direction}[{lang!r}]",
                )
            if n_images is None:
                n_images = n
            elif n != n_images:
                raise InputError(
                    f"{name} has {n} images but other matrices have {n_images}", argument=name
                )
            if n_texts.setdefault(lang, k) != k:
                raise InputError(
                    f"{name} has {k} texts but the other direction has {n_texts[lang]}",
                    argument=name,
                )
    if n_images is None:
        raise InputError(
            "evaluate_scores needs i2t or t2i score matrices for some language", argument="i2t"
        )
    return n_images, n_texts
