"""From a model to what :func:`~ccr_metrics.evaluate` takes: :func:`encode_benchmark`.

The user's encoders are called on batches; with a cache, every finished batch is
written at once (to a temporary file, then renamed), so a run cut short resumes where
it stopped, and each finished part (the images, one language's captions) becomes one
safetensors file that later runs read instead of calling the encoders.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch

from .._containers import read_safetensors
from .._progress import progress_bar
from ..core._validation import (
    InputError,
    check_positive_int,
    dtype_str,
    first_nonfinite,
    shape_str,
)
from .benchmark import Benchmark

__all__ = ["EncodedBenchmark", "encode_benchmark"]

IntArray = npt.NDArray[np.int64]
_CHUNK = re.compile(r"(\d+)-(\d+)\.safetensors")


@dataclass(frozen=True, eq=False)
class EncodedBenchmark:
    """A benchmark's embeddings, named as :func:`~ccr_metrics.evaluate`'s parameters.

    Attributes
    ----------
    image_embeds : torch.Tensor, shape [N, D]
        One row per image of the benchmark, in its order.
    text_embeds : dict of str to torch.Tensor, each shape [M_l, D]
        Per language, one row per caption.
    text_to_image : dict of str to numpy.ndarray of int64, each shape [M_l]
        The image of each caption.
    galleries : dict of str to numpy.ndarray of int64, or None
        Per language, the images it covers; None where every language covers every
        image (one shared gallery).
    """

    image_embeds: torch.Tensor
    text_embeds: dict[str, torch.Tensor]
    text_to_image: dict[str, IntArray]
    galleries: dict[str, IntArray] | None

    def to_kwargs(self) -> dict[str, Any]:
        """Return the arguments of ``evaluate(**encoded.to_kwargs())``.

        ``galleries`` is among them only where the languages cover different images.
        """
        kwargs: dict[str, Any] = {
            "image_embeds": self.image_embeds,
            "text_embeds": dict(self.text_embeds),
            "text_to_image": dict(self.text_to_image),
        }
        if self.galleries is not None:
            kwargs["galleries"] = dict(self.galleries)
        return kwargs

    def __repr__(self) -> str:
        texts = ", ".join(f"{lang}: {shape_str(t)}" for lang, t in self.text_embeds.items())
        return (
            f"EncodedBenchmark(image_embeds {shape_str(self.image_embeds)}, text_embeds "
            f"{{{texts}}}, {'per-language' if self.galleries else 'one shared'} gallery)"
        )


@dataclass(frozen=True)
class _Part:
    """One run of an encoder over a list of items: the images, or one language's captions."""

    label: str  # for messages: "images" or "'en' captions"
    function: str  # the encoder's parameter name
    key: str  # the cache file's stem
    items: list[str]
    call: Callable[[list[str]], Any]


def encode_benchmark(
    benchmark: Benchmark,
    encode_images: Callable[[list[str]], Any],
    encode_texts: Callable[[list[str], str], Any],
    *,
    batch_size: int,
    device: str | torch.device | None = None,
    cache: str | Path | None = None,
    progress: bool | Literal["auto"] = "auto",
) -> EncodedBenchmark:
    """Embed a benchmark's images and captions with your model, batch by batch.

    Parameters
    ----------
    benchmark : Benchmark
        What :func:`~ccr_metrics.load_benchmark` returns.
    encode_images : callable
        ``encode_images(paths) -> [b, D]``: ``paths`` is a list of ``b`` entries of
        ``benchmark.image_paths`` (where the format names no file, WIT, of
        ``benchmark.image_ids``: URLs). The paths are relative (see
        :func:`~ccr_metrics.load_benchmark`): join them to your images folder.
    encode_texts : callable
        ``encode_texts(captions, language) -> [b, D]``: ``b`` captions of one
        language, with its code (for models that are told the language).
    batch_size : int
        Items per call.
    device : str or torch.device, optional
        Where the returned embeddings are put. Default: the CPU. (Your encoders run
        wherever they put themselves; each batch is moved to the CPU as it comes.)
    cache : str or os.PathLike, optional
        A folder for the embeddings: ``{name}-{split}/`` in it holds one safetensors
        file per part (the images, each language's captions), named after a hash of
        the part's items, so a benchmark read with other languages or files never
        meets stale embeddings. A second run reads them without calling the encoders;
        a run cut short resumes from its last finished batch. One folder per model:
        nothing in it records which model made the embeddings.
    progress : bool or "auto", default "auto"
        A progress bar over the items encoded (tqdm, on stderr); "auto": when stderr
        is a terminal.

    Returns
    -------
    EncodedBenchmark
        The embeddings (torch tensors on ``device``, of the dtype the encoders return),
        ``text_to_image`` and ``galleries``; ``to_kwargs()`` gives
        ``evaluate``'s arguments.

    Raises
    ------
    ValueError
        If ``benchmark`` is not a Benchmark, an encoder is not callable, ``batch_size``
        is not a positive integer or ``device`` is not one; if an encoder returns, for
        a batch, anything but a real 2-D array with one row per item, the same width
        as before and finite values (naming the encoder, the batch and the items); if
        ``cache`` is a file, or a cache file does not hold the embeddings it should.
        An exception raised by an encoder propagates; the batches finished before it
        are kept in the cache.

    Notes
    -----
    :func:`~ccr_metrics.evaluate` scores by dot products: L2-normalise in your
    encoders for cosine similarity. Embeddings are returned as the encoders give them.

    Examples
    --------
    >>> import hashlib, tempfile
    >>> import numpy as np
    >>> import ccr_metrics as cm
    >>> def toy(items):  # a stand-in model: a fixed vector per string
    ...     seeds = [int(hashlib.sha256(s.encode()).hexdigest()[:8], 16) for s in items]
    ...     return np.stack([np.random.default_rng(s).standard_normal(4) for s in seeds])
    >>> b = cm.load_benchmark("xtd10", "tests/data/benchmarks/xtd10", languages=["en", "ja"])
    >>> calls = []
    >>> def texts(captions, language):
    ...     calls.append(language)
    ...     return toy(captions)
    >>> folder = tempfile.TemporaryDirectory()
    >>> encoded = cm.encode_benchmark(b, toy, texts, batch_size=2, cache=folder.name)
    >>> encoded
    EncodedBenchmark(image_embeds [3, 4], text_embeds {en: [3, 4], ja: [3, 4]}, one shared gallery)
    >>> calls
    ['en', 'en', 'ja', 'ja']
    >>> again = cm.encode_benchmark(b, toy, texts, batch_size=2, cache=folder.name)
    >>> len(calls), bool((again.text_embeds["ja"] == encoded.text_embeds["ja"]).all())
    (4, True)
    >>> report = cm.evaluate(**encoded.to_kwargs(), device="cpu")
    >>> list(report.languages)
    ['en', 'ja']
    >>> folder.cleanup()
    """
    if not isinstance(benchmark, Benchmark):
        raise InputError(
            f"benchmark must be a Benchmark (from load_benchmark), got {type(benchmark).__name__}",
            argument="benchmark",
        )
    for name, function in (("encode_images", encode_images), ("encode_texts", encode_texts)):
        if not callable(function):
            raise InputError(f"{name} must be callable, got {function!r}", argument=name)
    size = check_positive_int("batch_size", batch_size)
    target = _device(device)
    show = _progress(progress)
    folder = _cache_folder(cache, benchmark)
    parts = _parts(benchmark, encode_images, encode_texts)
    todo = sum(len(p.items) - _cached_rows(folder, p) for p in parts)
    width: list[int] = []  # the embedding width, fixed by the first batch
    with progress_bar(show, todo, unit="item", desc="encoding") as bar:
        embeds = [_encode(part, folder, size, width, bar) for part in parts]
    languages = benchmark.languages
    return EncodedBenchmark(
        image_embeds=embeds[0].to(target),
        text_embeds={lang: e.to(target) for lang, e in zip(languages, embeds[1:], strict=True)},
        text_to_image={lang: benchmark.text_to_image[lang].copy() for lang in languages},
        galleries=None
        if benchmark.shared_gallery
        else {lang: g.copy() for lang, g in benchmark.galleries.items()},
    )


def _device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cpu")
    try:
        target = torch.device(device)
    except (RuntimeError, TypeError):
        raise InputError(f"device {device!r} is not a torch device", argument="device") from None
    if target.type == "meta":
        raise InputError("device 'meta' holds no values; give a real device", argument="device")
    try:
        torch.empty(0, device=target)  # refused here, not after the whole encoding
    except (RuntimeError, AssertionError) as exc:
        raise InputError(f"device {device!r} is not available ({exc})", argument="device") from None
    return target


def _progress(progress: object) -> bool:
    if progress == "auto":
        return sys.stderr.isatty()
    if not isinstance(progress, bool):
        raise InputError(
            f"progress must be True, False or 'auto'; got {progress!r}", argument="progress"
        )
    return progress


def _safe(name: str) -> str:
    """``name`` as a file name: characters other than letters, digits, ``._-`` become ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def _digest(items: Sequence[str]) -> str:
    return hashlib.sha256(json.dumps(list(items), ensure_ascii=False).encode()).hexdigest()[:16]


def _cache_folder(cache: str | Path | None, benchmark: Benchmark) -> Path | None:
    if cache is None:
        return None
    root = Path(cache)
    if root.exists() and not root.is_dir():
        raise InputError(f"cache {root} is a file; give a folder", argument="cache")
    folder = root / _safe(f"{benchmark.name}-{benchmark.split}")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _parts(
    benchmark: Benchmark,
    encode_images: Callable[[list[str]], Any],
    encode_texts: Callable[[list[str], str], Any],
) -> list[_Part]:
    paths = benchmark.image_paths if benchmark.image_paths is not None else benchmark.image_ids
    parts = [_Part("images", "encode_images", f"images-{_digest(paths)}", paths, encode_images)]
    for lang in benchmark.languages:
        captions = benchmark.captions[lang]
        parts.append(
            _Part(
                f"{lang!r} captions",
                "encode_texts",
                f"text-{_safe(lang)}-{_digest([lang, *captions])}",
                captions,
                _in_language(encode_texts, lang),
            )
        )
    return parts


def _in_language(
    encode_texts: Callable[[list[str], str], Any], lang: str
) -> Callable[[list[str]], Any]:
    return lambda batch: encode_texts(batch, lang)


def _chunks(folder: Path | None, part: _Part) -> list[tuple[int, int, Path]]:
    """List the finished batches of an unfinished part, ``(start, stop, file)``, from 0 on."""
    if folder is None:
        return []
    found = {}
    for file in (folder / f"{part.key}.partial").glob("*.safetensors"):
        match = _CHUNK.fullmatch(file.name)
        if match:
            found[int(match[1])] = (int(match[2]), file)
    chunks, start = [], 0
    while start in found and start < found[start][0] <= len(part.items):
        stop, file = found[start]
        chunks.append((start, stop, file))
        start = stop
    return chunks


def _cached_rows(folder: Path | None, part: _Part) -> int:
    if folder is not None and (folder / f"{part.key}.safetensors").is_file():
        return len(part.items)
    chunks = _chunks(folder, part)
    return chunks[-1][1] if chunks else 0


def _encode(
    part: _Part, folder: Path | None, size: int, width: list[int], bar: Any
) -> torch.Tensor:
    """Embed one part: read it from the cache, resume it, or encode it whole."""
    n = len(part.items)
    final = folder / f"{part.key}.safetensors" if folder is not None else None
    if final is not None and final.is_file():
        return _read(final, n, width)
    rows = [_read(file, stop - start, width) for start, stop, file in _chunks(folder, part)]
    start = sum(len(r) for r in rows)
    for first in range(start, n, size):
        batch = part.items[first : first + size]
        out = _checked(part.call(batch), part, first // size, first, len(batch), width)
        if folder is not None:
            _write(
                folder / f"{part.key}.partial" / f"{first}-{first + len(batch)}.safetensors", out
            )
        rows.append(out)
        bar.update(len(batch))
    embeds = torch.cat(rows)
    if final is not None:
        _write(final, embeds)
        shutil.rmtree(final.parent / f"{part.key}.partial", ignore_errors=True)
    return embeds


def _checked(
    out: Any, part: _Part, batch: int, first: int, count: int, width: list[int]
) -> torch.Tensor:
    """Return one batch's encoder output as a CPU tensor (a copy), or refuse it saying why."""
    span = f"{part.label} {first}-{first + count - 1}"

    def refused(what: str) -> InputError:
        message = f"{part.function} returned {what} for batch {batch} ({span})"
        return InputError(message, argument=part.function)

    try:
        if isinstance(out, torch.Tensor):
            t = out.detach().to("cpu", copy=True)
        else:
            t = torch.from_numpy(np.array(out, copy=True))
    except (TypeError, ValueError, RuntimeError, NotImplementedError):
        raise refused(f"a {type(out).__name__}, not an array of numbers") from None
    if t.dtype == torch.bool or t.is_complex():
        raise refused(f"dtype {dtype_str(t)}; expected real numbers")
    if t.ndim != 2 or t.shape[0] != count or (width and t.shape[1] != width[0]):
        raise refused(f"shape {shape_str(t)}; expected [{count}, {width[0] if width else 'D'}]")
    bad = first_nonfinite(t)
    if bad is not None:
        index, value = bad
        raise refused(f"{value} at row {index[0]}, column {index[1]}")
    width[:] = [t.shape[1]]
    return t.contiguous()


def _write(file: Path, embeds: torch.Tensor) -> None:
    """Write ``embeds`` to ``file`` whole or not at all: a temporary file, then a rename."""
    # Here, not at the top: `import ccr_metrics` must not load safetensors.
    from safetensors.torch import save_file

    file.parent.mkdir(parents=True, exist_ok=True)
    temporary = file.with_name(file.name + ".tmp")
    save_file({"embeds": embeds}, str(temporary))
    temporary.replace(file)


def _read(file: Path, rows: int, width: list[int]) -> torch.Tensor:
    """Read the embeddings cached in ``file`` (into memory), checked to have ``rows`` rows."""
    tensors = read_safetensors(file)
    stored = tensors.get("embeds")
    shape = list(stored.shape) if stored is not None else []
    if len(shape) != 2 or shape[0] != rows or (width and shape[1] != width[0]):
        raise InputError(
            f"{file}: a cache file with embeddings of shape {shape}, expected {rows} rows"
            f"{f' of width {width[0]}' if width else ''}; delete it to encode again",
            argument="cache",
        )
    t = stored.clone() if isinstance(stored, torch.Tensor) else torch.from_numpy(np.array(stored))
    width[:] = [t.shape[1]]
    return t
