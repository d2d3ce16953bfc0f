"""Gathering tensors across processes: the one module of the package that uses torch.distributed.

Every function asks torch.distributed for the rank and world size when it is called,
never earlier, so objects built before ``init_process_group`` work once it has run.
When torch.distributed is unavailable or not initialised the program is one process:
rank 0, world size 1, and gathering returns its input unchanged.

Gradients through a gather
--------------------------
:func:`all_gather_with_grad` is differentiable. In the backward pass each process
receives, for its own rows, the **sum over all processes** of the gradient that reached
those rows of the gathered tensor. So if every process ``r`` computes a loss ``L_r``
from gathered features, the gradient of a process's local features ``x`` is
``sum_r dL_r / dx``. When every process computes the same global loss ``L``, that is
``world_size * dL / dx``, and DistributedDataParallel, which averages parameter
gradients over processes, turns it back into exactly ``dL / dtheta``.

Every process must call these functions in the same order (they are collectives), with
tensors of the same number of dimensions and, beyond the first, the same sizes.

Within ``with collective_timeout(seconds):`` a collective that waits longer than that for
the other processes raises :class:`TimeoutError` instead of waiting for the process
group's own timeout (30 minutes by default in torch).
"""

from __future__ import annotations

import contextvars
import datetime
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
import torch.distributed as dist

from .core._validation import InputError, shape_str

# Seconds a collective may wait, and what it is for (named in the error); None: the group's.
_TIMEOUT: contextvars.ContextVar[tuple[float, str] | None] = contextvars.ContextVar(
    "ccr_metrics_collective_timeout", default=None
)

__all__ = [
    "all_gather_shapes",
    "all_gather_with_grad",
    "all_reduce_sum",
    "broadcast",
    "collective_timeout",
    "gather_objects",
    "gather_rows",
    "get_rank",
    "get_world_size",
    "is_distributed",
    "raise_if_any_failed",
]


def is_distributed() -> bool:
    """Whether torch.distributed is available and a default process group is initialised.

    Examples
    --------
    >>> is_distributed()  # no process group initialised here
    False
    """
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    """Return this process's rank in the default group, 0 when not distributed.

    Examples
    --------
    >>> get_rank()
    0
    """
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    """Return the number of processes in the default group, 1 when not distributed.

    Examples
    --------
    >>> get_world_size()
    1
    """
    return dist.get_world_size() if is_distributed() else 1


def all_gather_shapes(tensor: torch.Tensor) -> list[tuple[int, ...]]:
    """Return the shape of ``tensor`` on every process, in rank order.

    Parameters
    ----------
    tensor : torch.Tensor
        This process's tensor; every process must pass one with the same number of
        dimensions.

    Returns
    -------
    list of tuple of int
        ``world_size`` shapes; ``[tensor.shape]`` when not distributed.

    Examples
    --------
    >>> import torch
    >>> all_gather_shapes(torch.zeros(3, 4))  # one process
    [(3, 4)]
    """
    if not is_distributed():
        return [tuple(tensor.shape)]
    shape = torch.tensor(tensor.shape, dtype=torch.long, device=tensor.device)
    shapes = [torch.empty_like(shape) for _ in range(dist.get_world_size())]
    dist.all_gather(shapes, shape)
    return [tuple(int(n) for n in s.tolist()) for s in shapes]


class _AllGather(torch.autograd.Function):
    """all_gather whose backward sums each process's share of the gradient.

    Written here rather than taken from ``torch.distributed.nn``: that one is
    deprecated, and with gloo it leaves processes that abort at exit.
    """

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> tuple[torch.Tensor, ...]:
        parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, tensor.contiguous())
        return tuple(parts)

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor) -> torch.Tensor:
        # Every process holds a gradient for every part; a process's rows get the sum.
        total = torch.stack(grads)
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total[dist.get_rank()]


def all_gather_with_grad(
    tensor: torch.Tensor, *, shapes: Sequence[Sequence[int]] | None = None
) -> torch.Tensor:
    """Concatenate every process's ``tensor`` along dim 0, in rank order, keeping gradients.

    Parameters
    ----------
    tensor : torch.Tensor, shape [n_r, ...]
        This process's rows. Processes may hold different numbers of rows; the other
        dimensions must agree. Any dtype (bool masks too; only floating tensors carry
        gradients).
    shapes : sequence of sequence of int, optional
        The shape of ``tensor`` on every process, as :func:`all_gather_shapes`
        returns it; pass it to save that extra collective when it is known.

    Returns
    -------
    torch.Tensor, shape [sum_r n_r, ...]
        The gathered rows; ``tensor`` itself when not distributed. Backward sums the
        gradients of all processes into each process's rows (see the module notes).

    Raises
    ------
    ValueError
        If the processes' shapes differ beyond dim 0 (raised on every process).

    Examples
    --------
    >>> import torch
    >>> x = torch.ones(2, 3)
    >>> all_gather_with_grad(x) is x  # one process: nothing to gather
    True
    """
    if not isinstance(tensor, torch.Tensor):
        raise InputError(
            f"all_gather_with_grad needs a torch.Tensor, got {type(tensor).__name__}",
            argument="tensor",
        )
    if not is_distributed():
        return tensor
    if shapes is None:
        shapes = all_gather_shapes(tensor)
    trailing = {tuple(s[1:]) for s in shapes}
    if len(trailing) > 1:
        listed = ", ".join(f"rank {r}: {list(s)}" for r, s in enumerate(shapes))
        raise InputError(
            f"all_gather_with_grad needs the same shape beyond dim 0 on every process, "
            f"got {listed} (this process: {shape_str(tensor)})",
            argument="all_gather_with_grad",
        )
    sizes = [int(s[0]) for s in shapes]
    longest = max(sizes)
    padded = tensor
    if tensor.shape[0] < longest:
        # all_gather needs equal shapes: pad with rows that are sliced off afterwards.
        filler = tensor.new_zeros((longest - tensor.shape[0], *tensor.shape[1:]))
        padded = torch.cat([tensor, filler])
    parts = _AllGather.apply(padded)  # type: ignore[no-untyped-call]
    return torch.cat([part[:size] for part, size in zip(parts, sizes, strict=True)])


def broadcast(tensor: torch.Tensor, src: int) -> torch.Tensor:
    """Return process ``src``'s ``tensor`` on every process (filled in place elsewhere).

    Every process passes a tensor of the same shape and dtype; on processes other than
    ``src`` its values are overwritten. Returns ``tensor`` unchanged when not
    distributed.

    Examples
    --------
    >>> import torch
    >>> broadcast(torch.tensor([1, 2]), src=0)
    tensor([1, 2])
    """
    if is_distributed():
        _wait(dist.broadcast(tensor, src=src, async_op=True), "a broadcast")
    return tensor


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Return the element-wise sum of ``tensor`` over all processes (in place).

    Exact for integer tensors, which is what rank counting sends.

    Examples
    --------
    >>> import torch
    >>> all_reduce_sum(torch.tensor([3, 4]))  # one process: the sum is itself
    tensor([3, 4])
    """
    if is_distributed():
        _wait(dist.all_reduce(tensor, op=dist.ReduceOp.SUM, async_op=True), "a sum")
    return tensor


def raise_if_any_failed(error: Exception | None, what: str) -> None:
    """Raise on every process when any process failed, naming the processes and why.

    Each process passes the error it met (or None). Lets every process fail together,
    saying which one rejected its input and the first line of its error, instead of
    leaving the others waiting in the next collective.

    Raises
    ------
    InputError
        If ``error`` is not None on some process; ``from error`` on that process.

    Examples
    --------
    >>> raise_if_any_failed(None, "checking the shards")  # nothing failed: no error
    """
    line = None if error is None else str(error).split("\n", 1)[0]
    failed = [(r, e) for r, e in enumerate(gather_objects(line)) if e is not None]
    if not failed:
        return
    rank = get_rank()
    told = "; ".join(f"process {r}: {e}" for r, e in failed)
    who = "this process" if any(r == rank for r, _ in failed) else f"process {rank}"
    raise InputError(
        f"{what} failed on {len(failed)} of {get_world_size()} processes ({who} stopped too): "
        f"{told}",
        argument=None if error is None else getattr(error, "argument", None),
    ) from error


def gather_objects(obj: Any) -> list[Any]:
    """Every process's ``obj`` (small JSON data: dicts, lists, str, numbers), in rank order.

    Used to check that all processes were called alike. The objects travel as JSON
    between the program's own processes: nothing is unpickled. Tuples arrive as lists.

    Examples
    --------
    >>> gather_objects({"languages": ["en", "de"]})
    [{'languages': ['en', 'de']}]
    """
    if not is_distributed():
        return [json.loads(json.dumps(obj))]
    payload = torch.tensor(list(json.dumps(obj).encode()), dtype=torch.uint8, device=_device())
    parts = _gather_parts(payload)
    return [json.loads(bytes(part.tolist()).decode()) for part in parts]


def gather_rows(tensor: torch.Tensor) -> torch.Tensor:
    """Every process's ``tensor`` concatenated along dim 0, in rank order (no gradient).

    The first dimension may differ between processes; the others must agree.

    Examples
    --------
    >>> import torch
    >>> gather_rows(torch.tensor([4, 5]))
    tensor([4, 5])
    """
    if not is_distributed():
        return tensor
    return torch.cat(_gather_parts(tensor))


def _gather_parts(tensor: torch.Tensor) -> list[torch.Tensor]:
    """Every process's ``tensor``, in rank order."""
    sizes = _sizes(tensor)
    padded = tensor.new_zeros((max(sizes), *tensor.shape[1:]))
    padded[: tensor.shape[0]] = tensor
    parts = [torch.empty_like(padded) for _ in sizes]
    _wait(dist.all_gather(parts, padded, async_op=True), "a gather")
    return [part[:size] for part, size in zip(parts, sizes, strict=True)]


@contextmanager
def collective_timeout(seconds: float | None, what: str) -> Iterator[None]:
    """Within the block, a collective waits at most ``seconds`` (None: the group's timeout).

    ``what`` names the work in the :class:`TimeoutError` a stalled collective raises.

    Examples
    --------
    >>> with collective_timeout(5.0, "evaluating"):
    ...     pass
    """
    token = _TIMEOUT.set(None if seconds is None else (float(seconds), what))
    try:
        yield
    finally:
        _TIMEOUT.reset(token)


def _wait(work: Any, operation: str) -> None:
    """Wait for an asynchronous collective, at most the current timeout."""
    limit = _TIMEOUT.get()
    if limit is None:
        work.wait()
        return
    seconds, what = limit
    try:
        work.wait(datetime.timedelta(seconds=seconds))
    except RuntimeError as exc:
        # gloo reports a timeout, or a peer that went away, as a RuntimeError.
        reason = str(exc).splitlines()[0] if str(exc) else "no reason given"
        raise TimeoutError(
            f"process {get_rank()} stopped waiting for the other processes in {operation} "
            f"while {what} (limit {seconds:g} s): a process stalled, failed or was not "
            f"called ({reason}); the process group cannot be used any more, so end every "
            "process"
        ) from None


def _sizes(tensor: torch.Tensor) -> list[int]:
    """Every process's ``tensor.shape[0]``."""
    size = torch.tensor([tensor.shape[0]], dtype=torch.long, device=tensor.device)
    sizes = [torch.empty_like(size) for _ in range(get_world_size())]
    _wait(dist.all_gather(sizes, size, async_op=True), "a gather of sizes")
    return [int(s) for s in sizes]


def _device() -> torch.device:
    """Where collectives' tensors live: CUDA for NCCL, the CPU for the other backends."""
    return torch.device("cuda") if dist.get_backend() == "nccl" else torch.device("cpu")
