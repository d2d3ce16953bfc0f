"""The counting kernel behind every rank: per query, the items above a threshold and tied with it.

For each row ``q`` of a score matrix ``s [Q, G]`` and its threshold ``best[q]`` (the
query's best positive score) the kernel counts ``above`` (entries ``> best[q]``) and
``tied`` (entries ``== best[q]``, positives included), and refuses a NaN or an infinity
by position. Two implementations give identical counts:

- a fused loop compiled by numba (the optional extra ``ccr-metrics[fast]``;
  :mod:`ccr_metrics.core._counting_numba`, imported only when numba is installed) reads
  each score once and, in that one read, counts it against the threshold and adds it to
  a finiteness probe; rows (or, for a column-major matrix, runs of queries) are spread
  over ``torch.get_num_threads()`` threads. It serves float32 and float64 CPU matrices
  stored row-major or column-major.
- torch operations over cache-sized blocks serve every other dtype, layout and device
  (CUDA included), and CPUs without numba: per block, ``>`` and ``>=`` comparisons
  into 0/1 floats, one sum of those (the counts) and one of the scores (the
  finiteness probe); a column-major matrix is walked along its contiguous axis.

``CCR_METRICS_KERNEL=torch`` in the environment selects the torch path even where
numba is installed (``numba`` insists on it, ``auto`` is the default).
"""

from __future__ import annotations

import os
import types
from functools import cache
from typing import Any, NamedTuple

import numpy as np
import torch

from ._validation import InputError, first_nonfinite, positive_int

# Bytes per block of the torch path on a CPU, scores and their comparison results: the
# block stays in cache across the passes over it (8 MB was the best of 4 to 16 MB on a
# 2-vCPU AMD EPYC with 32 MB of L3; below that, per-op overheads add up). A GPU wants
# large blocks to fill its cores: 2**27 scores, 512 MB of float32 results.
_CPU_BLOCK_BYTES = 1 << 23
_CUDA_BLOCK_ELEMENTS = 1 << 27
# float32 accumulators count exactly up to 2**24; longer rows are counted in float64.
_FLOAT32_EXACT = 1 << 24
_KERNELS = ("auto", "numba", "torch")
# Strided matrices up to this size are copied C-contiguous for the compiled loops (see
# _dense): the copy takes microseconds, a compile of the strided layout a second.
_COPY_BYTES = 1 << 16


class MaskedCounts(NamedTuple):
    """Counts of queries whose positives are a bool mask, all ``[Q]``."""

    best: torch.Tensor  # best positive score (meaningless where has_positive is False)
    has_positive: torch.Tensor  # bool
    tied_positives: torch.Tensor  # int64: positives scoring exactly best
    above: torch.Tensor  # int64
    tied: torch.Tensor  # int64: every item scoring exactly best, positives included


def check_chunk_size(chunk_size: int | None) -> int | None:
    """Return ``chunk_size`` if it is None or a positive int, else raise naming it."""
    if chunk_size is not None and positive_int(chunk_size) is None:
        raise InputError(
            f"chunk_size must be a positive integer or None, got {chunk_size!r}",
            argument="chunk_size",
        )
    return chunk_size


def count_against(
    s: torch.Tensor, best: torch.Tensor, *, chunk_size: int | None, name: str = "scores"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row of ``s [Q, G]``: how many entries are ``> best`` and how many ``== best``.

    ``best`` ``[Q]`` has the dtype and device of ``s``. ``chunk_size`` is the block
    height of the torch path (None: a default for the device and layout). Returns
    int64 ``(above, tied)`` on the device of ``s``.

    Raises
    ------
    ValueError
        If ``s`` holds a NaN or an infinity; the message names ``name`` and the position.
    """
    kernel = _numba_kernel(s, columns=True)
    if kernel is not None:
        above, tied, probe = _numba_outputs(s)
        b = np.ascontiguousarray(_numpy(best))
        if s.stride(1) == 1:
            kernel.rows(_dense(_numpy(s)), b, above, tied, probe)
        else:
            kernel.columns(_dense(_numpy(s).T), b, above, tied, probe)
        _check_probe(s, torch.from_numpy(probe), name)
        return _counts(above), _counts(tied)
    return _torch_count_against(s, best, chunk_size, name)


def count_masked(
    s: torch.Tensor, mask: torch.Tensor, *, name: str = "scores"
) -> MaskedCounts | None:
    """Best positive and counts of every row of ``s [Q, G]`` whose positives are ``mask``.

    ``mask`` is bool ``[Q, G]`` on the device of ``s``. The fused numba kernel finds
    each row's best positive by skipping the mask's all-zero words, then counts the row
    while it is still in cache. Returns None where that kernel cannot serve ``s``: the
    caller then turns the mask into index pairs.

    Raises
    ------
    ValueError
        If ``s`` holds a NaN or an infinity; the message names ``name`` and the position.
    """
    kernel = _numba_kernel(s, columns=False) if mask.is_contiguous() else None
    if kernel is None:
        return None
    n = s.shape[0]
    above, tied, probe = _numba_outputs(s)
    best: np.ndarray[Any, Any] = np.empty(n, dtype=_numpy_dtype(s))
    tied_positives = np.empty(n, dtype=np.int64)
    n_positives = np.empty(n, dtype=np.int64)
    flat = _numpy(mask).reshape(-1)
    words = flat[: flat.size // 8 * 8].view(np.uint64)
    kernel.masked(
        _dense(_numpy(s)), flat, words, best, n_positives, tied_positives, above, tied, probe
    )
    _check_probe(s, torch.from_numpy(probe), name)
    return MaskedCounts(
        best=torch.from_numpy(best),
        has_positive=torch.from_numpy(n_positives) > 0,
        tied_positives=torch.from_numpy(tied_positives),
        above=_counts(above),
        tied=_counts(tied),
    )


# --- torch path -----------------------------------------------------------------------


def _torch_count_against(
    s: torch.Tensor, best: torch.Tensor, chunk_size: int | None, name: str
) -> tuple[torch.Tensor, torch.Tensor]:
    n_queries, n_gallery = s.shape
    if not (s.stride(0) == 1 and s.stride(1) != 1):
        rows = _block_rows(chunk_size, n_gallery, s)
        return _torch_count_rows(s, best, rows, name)
    # Column-major (a transposed view): walk it along its contiguous axis, blocks of
    # gallery items counted into per-query totals, about as many elements per block
    # as chunk_size rows would hold.
    if chunk_size is None:
        step = _block_rows(None, n_queries, s)
    else:
        step = max(1, min(int(chunk_size) * n_gallery // n_queries, n_gallery))
    acc = _accumulator(s)
    sums = torch.zeros((3, n_queries), dtype=acc, device=s.device)
    block_sums = torch.empty_like(sums)
    flags = torch.empty((min(step, n_gallery), n_queries), dtype=acc, device=s.device)
    b, (probe, above, at_least) = best[None, :], block_sums
    for block in torch.split(s.T, step):
        _block_sums(block, b, 0, flags, probe, above, at_least)
        sums += block_sums
    return _from_sums(s, sums, name)


def _torch_count_rows(
    s: torch.Tensor, best: torch.Tensor, rows: int, name: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Count ``s`` in blocks of ``rows`` rows: ``(above, tied)``."""
    acc = _accumulator(s)
    sums = torch.empty((3, s.shape[0]), dtype=acc, device=s.device)
    flags = torch.empty((min(rows, s.shape[0]), s.shape[1]), dtype=acc, device=s.device)
    # split() makes all the blocks' views in one call each: per-block Python adds up.
    splits = [torch.split(t, rows) for t in (s, best[:, None], *sums)]
    for block, b, probe, above, at_least in zip(*splits, strict=True):
        _block_sums(block, b, 1, flags, probe, above, at_least)
    return _from_sums(s, sums, name)


def _from_sums(s: torch.Tensor, sums: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(above, tied)`` from ``[probe, above, above + tied]`` sums ``[3, Q]``."""
    probe, above, at_least = sums
    _check_probe(s, probe, name)
    return above.long(), (at_least - above).long()


def _block_sums(
    block: torch.Tensor,
    b: torch.Tensor,
    dim: int,
    flags: torch.Tensor,
    probe: torch.Tensor,
    above: torch.Tensor,
    at_least: torch.Tensor,
) -> None:
    """Sum ``block`` over ``dim`` into ``probe``, and count it against ``b`` into the others.

    ``above`` gets the count of scores ``> b``, ``at_least`` of those ``>= b``: each
    comparison writes 0/1 into ``flags`` (at least the block's shape, in the dtype of the
    counts: a comparison into a bool costs several times one into a float here), whose
    sum is exact. One buffer serves both comparisons, which leaves more of the cache to
    the block: two buffers summed in one call measured 5-15% slower here, on one thread
    and on two. ``probe`` is non-finite when the block holds a NaN or an infinity, or,
    rarely, when finite scores overflow; the exact check that follows tells these
    apart. Each pass after the first reads the block from cache: it is sized to stay
    there.
    """
    if flags.shape[0] != block.shape[0]:  # the last, shorter block
        flags = flags[: block.shape[0]]
    torch.gt(block, b, out=flags)
    torch.sum(flags, dim, out=above)
    torch.ge(block, b, out=flags)
    torch.sum(flags, dim, out=at_least)
    if block.dtype == probe.dtype:
        torch.sum(block, dim, out=probe)
    elif block.is_floating_point():  # float16, bfloat16
        torch.sum(block, dim, dtype=probe.dtype, out=probe)
    else:  # integers are always finite
        probe.zero_()


def _block_rows(chunk_size: int | None, n_gallery: int, s: torch.Tensor) -> int:
    """Rows of ``n_gallery`` scores per block: ``chunk_size``, or a cache-sized default."""
    if chunk_size is not None:
        # torch.split wants an int within int64; chunk_size may be a 0-d array or huge.
        return min(int(chunk_size), max(s.shape[0], 1))
    if s.device.type == "cuda":
        budget = _CUDA_BLOCK_ELEMENTS
    else:
        budget = _CPU_BLOCK_BYTES // (s.element_size() + _accumulator(s).itemsize)
    return max(1, budget // max(n_gallery, 1))


def _accumulator(s: torch.Tensor) -> torch.dtype:
    """Dtype the torch path counts in: float32 is exact for counts up to 2**24.

    float64 scores are compared into float64: a comparison that converts to another
    dtype costs about twice one that does not.
    """
    if s.dtype == torch.float64 or s.shape[1] > _FLOAT32_EXACT:
        return torch.float64
    return torch.float32


# --- shared ---------------------------------------------------------------------------


def _check_probe(s: torch.Tensor, probe: torch.Tensor, name: str) -> None:
    """Find the first NaN or infinity among the rows whose probe is not finite."""
    suspicious = ~torch.isfinite(probe)
    if not bool(suspicious.any()):
        return
    rows_to_check = suspicious.nonzero()[:, 0].to(s.device)
    found = first_nonfinite(s[rows_to_check])
    if found is not None:
        (i, j), value = found
        row = int(rows_to_check[i])
        raise InputError(
            f"{name} contains {value} at [{row}, {j}]; {name} must be finite",
            argument=name,
            position=(row, j),
            value=value,
        )


# --- numba path -----------------------------------------------------------------------


def kernel_choice() -> str:
    """Return the kernel setting from ``CCR_METRICS_KERNEL``: "auto", "numba" or "torch"."""
    choice = os.environ.get("CCR_METRICS_KERNEL", "auto")
    if choice not in _KERNELS:
        raise InputError(
            f"CCR_METRICS_KERNEL must be one of {', '.join(_KERNELS)}; got {choice!r}",
            argument="CCR_METRICS_KERNEL",
        )
    return choice


def numba_available() -> bool:
    """Whether the compiled kernel can run here (numba installed and not switched off)."""
    return kernel_choice() != "torch" and _compiled() is not None


def _numba_kernel(s: torch.Tensor, *, columns: bool) -> Any:
    """Return the compiled loops for ``s`` (a ``Kernels``), or None for the torch path.

    ``columns`` says whether the caller can use the column-major loop.
    """
    choice = kernel_choice()
    if choice == "torch" or s.device.type != "cpu":
        return None
    if s.dtype not in (torch.float32, torch.float64):
        return None
    if s.dtype == torch.float32 and s.shape[1] > _FLOAT32_EXACT:
        return None
    row_major = s.stride(1) == 1 and s.stride(0) >= s.shape[1]
    column_major = columns and s.stride(0) == 1 and s.stride(1) >= s.shape[0]
    if not (row_major or column_major):
        return None
    compiled = _compiled()
    if compiled is None:  # numba is not installed
        refuse_missing_numba(choice)
        return None
    return compiled.use_threads(torch.get_num_threads())


def refuse_missing_numba(choice: str) -> None:
    """Raise when ``CCR_METRICS_KERNEL`` insists on numba (``choice``) and it is missing."""
    if choice == "numba":
        raise InputError(
            'CCR_METRICS_KERNEL=numba but numba is not installed: pip install "ccr-metrics[fast]"',
            argument="CCR_METRICS_KERNEL",
        )


def _numpy(t: torch.Tensor) -> np.ndarray[Any, Any]:
    return t.detach().numpy()


def _dense(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Return ``a`` C-contiguous where that takes a small copy, else ``a`` itself.

    numba compiles each loop once per array layout: a small strided view (a column
    slice, one language of a ``[B, K, G]`` batch) would cost a compile of its own, its
    copy costs microseconds. A large one is counted in place, never copied.
    """
    if a.flags.c_contiguous or a.nbytes > _COPY_BYTES:
        return a
    return np.ascontiguousarray(a)


def _numba_outputs(s: torch.Tensor) -> tuple[np.ndarray[Any, Any], ...]:
    """Empty ``above`` and ``tied`` (in the loops' accumulator dtype) and ``probe`` ``[Q]``.

    The accumulators are float32 for float32 scores (exact below ``_FLOAT32_EXACT``)
    and int64 for float64 scores; see :mod:`ccr_metrics.core._counting_numba`.
    """
    n = s.shape[0]
    acc = np.float32 if s.dtype == torch.float32 else np.int64
    return np.empty(n, acc), np.empty(n, acc), np.empty(n, _numpy_dtype(s))


def _counts(array: np.ndarray[Any, Any]) -> torch.Tensor:
    """Return an accumulator array of the loops as int64 counts."""
    return torch.from_numpy(array).long()


def _numpy_dtype(s: torch.Tensor) -> type:
    return np.float32 if s.dtype == torch.float32 else np.float64


@cache
def _compiled() -> types.ModuleType | None:
    """Return the module of compiled loops (compiled on first use); None without numba."""
    try:
        from . import _counting_numba
    except ImportError:
        return None
    return _counting_numba
