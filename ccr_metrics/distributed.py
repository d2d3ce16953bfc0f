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

Faults
------
Work that every process does together (one call of ``evaluate_sharded``) runs in
``with shared_work(what, timeout=seconds):``. There a collective that waits longer than
``seconds`` raises :class:`TimeoutError` (as does one whose peer ran out of time
first), and one whose peer failed or ended raises :class:`RuntimeError`, instead of
waiting for the process group's own timeout (30 minutes by default in torch). Either
error names the process that stalled or failed where that can be known: every process
notes in the group's store how far it got and, when it leaves the block with an error,
that it failed and why; a waiting process looks there every ``_POLL_S`` seconds, so it
learns of a failure at once. Collectives of such a block carry the ``seconds`` as their
own timeout (not on NCCL, whose watchdog would end the process): none is left in flight
past it, so after either error ``torch.distributed.destroy_process_group()`` returns at
once and the process can end; the group cannot be used any more.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import datetime
import json
import numbers
import re
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.distributed as dist

from .core._validation import InputError, shape_str


class _Work(NamedTuple):
    """The work of a :func:`shared_work` block: what it is, and its limit in seconds."""

    what: str
    seconds: float | None


_WORK: contextvars.ContextVar[_Work | None] = contextvars.ContextVar(
    "ccr_metrics_shared_work", default=None
)
# A waiting collective looks for failed peers this often (seconds).
_POLL_S = 0.2
# The longest timeout accepted: a year, far below what datetime and torch can hold.
MAX_TIMEOUT_S = 365 * 24 * 3600.0
# Where each process notes in the group's store how far it got ([call, step, gave up]),
# and that it failed and why ([call, message]), by rank.
_PROGRESS_KEY = "ccr_metrics/progress/{}"
_FAILED_KEY = "ccr_metrics/failed/{}"
# Set on the errors of a broken group, which are no failure of this process's own.
_FAULT = "_ccr_metrics_group_fault"

__all__ = [
    "all_gather_shapes",
    "all_gather_with_grad",
    "all_reduce_sum",
    "broadcast",
    "check_timeout",
    "gather_equal",
    "gather_objects",
    "gather_rows",
    "get_rank",
    "get_world_size",
    "is_distributed",
    "raise_if_any_failed",
    "shared_work",
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
        opts = dist.BroadcastOptions()
        opts.rootRank, opts.rootTensor = src, 0
        _collective("a broadcast", opts, lambda group: group.broadcast([tensor], opts))
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
        opts = dist.AllreduceOptions()
        opts.reduceOp = dist.ReduceOp(dist.ReduceOp.SUM)
        _collective("a sum", opts, lambda group: group.allreduce([tensor], opts))
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
    if is_distributed():
        # One small sum says whether any failed; the messages travel only then.
        flag = torch.tensor([int(error is not None)], device=_device())
        if not int(all_reduce_sum(flag)):
            return
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


def gather_rows(tensor: torch.Tensor, *, sizes: Sequence[int] | None = None) -> torch.Tensor:
    """Every process's ``tensor`` concatenated along dim 0, in rank order (no gradient).

    The first dimension may differ between processes; the others must agree.
    ``sizes``, every process's first dimension when the caller knows them, saves the
    collective that finds them.

    Examples
    --------
    >>> import torch
    >>> gather_rows(torch.tensor([4, 5]))
    tensor([4, 5])
    """
    if not is_distributed():
        return tensor
    return torch.cat(_gather_parts(tensor, sizes))


def gather_equal(tensor: torch.Tensor) -> torch.Tensor:
    """Every process's ``tensor`` concatenated along dim 0, in rank order (no gradient).

    Every process passes the same shape: one collective, where :func:`gather_rows`
    takes two unless it is given the sizes.

    Examples
    --------
    >>> import torch
    >>> gather_equal(torch.tensor([[1, 2]]))
    tensor([[1, 2]])
    """
    if not is_distributed():
        return tensor
    return torch.cat(_all_gather(tensor.contiguous(), "a gather"))


def _gather_parts(tensor: torch.Tensor, sizes: Sequence[int] | None = None) -> list[torch.Tensor]:
    """Every process's ``tensor`` (``sizes[r]`` rows on process ``r``), in rank order."""
    if sizes is None:
        size = torch.tensor([tensor.shape[0]], dtype=torch.long, device=tensor.device)
        sizes = [int(n) for n in _all_gather(size, "a gather of sizes")]
    padded = tensor.new_zeros((max(sizes), *tensor.shape[1:]))
    padded[: tensor.shape[0]] = tensor
    parts = _all_gather(padded, "a gather")
    return [part[:size] for part, size in zip(parts, sizes, strict=True)]


def _all_gather(tensor: torch.Tensor, operation: str) -> list[torch.Tensor]:
    """Every process's ``tensor`` (the same shape on all), in rank order."""
    parts = [torch.empty_like(tensor) for _ in range(get_world_size())]
    opts = dist.distributed_c10d.AllgatherOptions()  # type: ignore[attr-defined]
    _collective(operation, opts, lambda group: group.allgather([parts], [tensor], opts))
    return parts


def check_timeout(timeout: object) -> float | None:
    """Return ``timeout`` as seconds (a float), or None for None; refuse anything else.

    A real number of seconds (a 0-d array counts) above 0 and at most
    :data:`MAX_TIMEOUT_S` (a year); not a bool, text or a ``timedelta``.

    Raises
    ------
    InputError
        Naming ``timeout``: a bool, a non-number, NaN, zero, negative or too long.

    Examples
    --------
    >>> check_timeout(2)
    2.0
    >>> try:
    ...     check_timeout(float("nan"))
    ... except ValueError as exc:
    ...     print(exc)
    timeout must be a number of seconds above 0 and at most 31536000, or None, got nan
    """
    if timeout is None:
        return None
    value = timeout
    if isinstance(value, (np.ndarray, torch.Tensor)) and value.ndim == 0:
        value = value.item()  # a 0-d array acts as its value
    seconds = None
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        seconds = float(value)
    if seconds is None or not 0 < seconds <= MAX_TIMEOUT_S:  # NaN fails too
        raise InputError(
            f"timeout must be a number of seconds above 0 and at most {MAX_TIMEOUT_S:.0f}, "
            f"or None, got {timeout!r}",
            argument="timeout",
        )
    return seconds


@contextmanager
def shared_work(what: str, *, timeout: object = None) -> Iterator[None]:
    """Run the block's collectives as work of every process, bounded by ``timeout`` seconds.

    Within the block a collective waits at most ``timeout`` seconds (None, or a value
    :func:`check_timeout` refuses: the group's own timeout) before it raises
    :class:`TimeoutError`; a peer that failed or ended makes it raise
    :class:`RuntimeError` at once. ``what`` names the work in those errors. An error
    that leaves the block is noted in the group's store, for the other processes to
    name (see the module notes).

    Examples
    --------
    >>> with shared_work("evaluating", timeout=5.0):
    ...     pass
    """
    try:
        seconds = check_timeout(timeout)
    except InputError:
        seconds = None  # the caller refuses it on every process, with its other checks
    progress = _progress() if is_distributed() else None
    if progress is not None:
        progress.call, progress.step = progress.call + 1, 0
    _forget_finished()
    token = _WORK.set(_Work(what, seconds))
    try:
        yield
    except BaseException as exc:
        if progress is not None and not getattr(exc, _FAULT, False):
            line = str(exc).split("\n", 1)[0]
            why = f"{type(exc).__name__}: {line}" if line else type(exc).__name__
            _note(progress, _FAILED_KEY, [progress.call, why])
        raise
    finally:
        _WORK.reset(token)


@dataclass
class _Progress:
    """Where a process is in its group: its ``call``-th shared work, ``step``-th collective."""

    group: weakref.ref[Any]  # not kept alive here: its store closes with it
    has_store: bool  # False where torch gives none, or once it failed
    call: int = 0
    step: int = 0


_PROGRESS: list[_Progress] = []  # the current group's, once a collective ran in it


def _progress() -> _Progress:
    """Return this process's progress in the current default group (new with the group)."""
    group = dist.group.WORLD
    if not _PROGRESS or _PROGRESS[0].group() is not group:
        _PROGRESS[:] = [_Progress(weakref.ref(group), hasattr(group, "get_group_store"))]
    return _PROGRESS[0]


def _note(progress: _Progress, key: str, note: list[Any]) -> None:
    """Note ``note`` under this process's ``key`` in the group's store (see the module notes)."""
    _use_store(progress, lambda store: store.set(key.format(get_rank()), json.dumps(note)))


def _read(progress: _Progress, key: str) -> dict[int, Any]:
    """Every other process's note under ``key``, where it wrote one."""

    def read(store: Any) -> dict[int, Any]:
        names = {r: key.format(r) for r in range(get_world_size()) if r != get_rank()}
        return {r: json.loads(store.get(k)) for r, k in names.items() if store.check([k])}

    return _use_store(progress, read) or {}


def _use_store(progress: _Progress, use: Callable[[Any], Any]) -> Any:
    """``use(store)``, or None when there is no store or it failed (then it is not used again)."""
    group = progress.group()
    if group is None or not progress.has_store:
        return None
    try:
        return use(group.get_group_store())
    except (RuntimeError, ValueError):
        # The store went with the process that hosted it: the peers' own errors tell them.
        progress.has_store = False
        return None


def _collective(operation: str, opts: Any, start: Callable[[Any], Any]) -> None:
    """Start a collective with ``opts`` on the default group and wait for it (see the notes)."""
    work = _WORK.get()
    progress = _progress()
    progress.step += 1
    _note(progress, _PROGRESS_KEY, [progress.call, progress.step, False])
    nccl = dist.get_backend() == "nccl"
    if work is not None and work.seconds is not None and not nccl:
        # Its own timeout, so that it is not left in flight: a process cannot end while a
        # collective of its group is (the group's teardown waits for it).
        opts.timeout = _delta(work.seconds)
    # Set before the collective starts, so that its own timeout ends no earlier.
    deadline = None if work is None or work.seconds is None else time.monotonic() + work.seconds
    handle = start(dist.group.WORLD)
    if nccl:  # waiting in slices would tear NCCL's communicator down: wait once
        _wait_once(handle, operation, work)
    else:
        _wait_polling(handle, operation, work, progress, deadline)


def _wait_once(handle: Any, operation: str, work: _Work | None) -> None:
    """Wait for the collective, at most the work's limit."""
    try:
        if work is None or work.seconds is None:
            handle.wait()
        else:
            handle.wait(_delta(work.seconds))
    except RuntimeError as exc:
        _keep(handle, None)
        raise _fault(operation, work, timed_out=not handle.is_completed(), reason=exc) from None


def _wait_polling(
    handle: Any, operation: str, work: _Work | None, progress: _Progress, deadline: float | None
) -> None:
    """Wait for the collective in slices, looking between them for a failed peer."""
    try:
        while True:
            left = _POLL_S if deadline is None else min(_POLL_S, deadline - time.monotonic())
            try:
                handle.wait(_delta(left))
                return
            except RuntimeError as exc:
                late = deadline is not None and time.monotonic() >= deadline
                if handle.is_completed():  # it failed (a slice ending leaves it running)
                    raise _fault(operation, work, timed_out=late, reason=exc) from None
            if deadline is not None and time.monotonic() >= deadline:
                raise _fault(operation, work, timed_out=True)
            if any(call == progress.call for call, _ in _read(progress, _FAILED_KEY).values()):
                raise _fault(operation, work, timed_out=False)
    except BaseException:
        _keep(handle, None if work is None else work.seconds)
        raise


# Collectives an error left unfinished, with their own timeout, kept until they end.
# Dropped while gloo still runs one, its tensors would be freed on gloo's thread, which
# aborts the process if that happens as the interpreter shuts down.
_LEFT: list[tuple[Any, float | None]] = []


def _keep(handle: Any, seconds: float | None) -> None:
    """Keep ``handle`` until it ends (at exit, it may run ``seconds`` more at most)."""
    if not handle.is_completed():
        if not _LEFT:
            atexit.register(_finish_left)
        _LEFT.append((handle, seconds))


def _forget_finished() -> None:
    """Drop the kept collectives that ended (long enough ago for gloo to be done)."""
    _LEFT[:] = [(h, s) for h, s in _LEFT if not h.is_completed()]


def _finish_left() -> None:
    """At exit, before the interpreter shuts down: let the kept collectives end.

    Each ends by its own timeout at the latest, no later than the group's teardown
    would have waited for it; one without a timeout of its own is not waited for.
    """
    for handle, seconds in _LEFT:
        if seconds is not None and not handle.is_completed():
            with contextlib.suppress(RuntimeError):
                handle.wait(_delta(seconds))


def _delta(seconds: float) -> datetime.timedelta:
    """``seconds`` for torch, which counts whole milliseconds and reads 0 as no limit."""
    return datetime.timedelta(seconds=max(seconds, 0.001))


def _fault(
    operation: str, work: _Work | None, *, timed_out: bool, reason: Exception | None = None
) -> Exception:
    """Return the error of a collective a peer left waiting: who stalled or failed, if known.

    A :class:`TimeoutError` when this process, or a peer, ran out of time (a stall), a
    :class:`RuntimeError` when a peer failed or ended.
    """
    progress = _progress()
    if timed_out:  # first, for the peers that lose this process in the meantime
        _note(progress, _PROGRESS_KEY, [progress.call, progress.step, True])
    what = "" if work is None else f" while {work.what}"
    limit = "" if work is None or work.seconds is None else f" (limit {work.seconds:g} s)"
    blamed, stall = _blame(progress)
    if not timed_out and not stall and not any("failed" in b for b in blamed):
        # A peer that just ran out of time (or failed) may not have said so yet.
        time.sleep(_POLL_S)
        blamed, stall = _blame(progress)
    told = "; ".join(blamed or ["a process stalled, failed or was not called"])
    if reason is not None and str(reason) and not timed_out:
        # gloo's first line, without the source file it starts with.
        line = re.sub(r"^\[[^]]*\] ", "", str(reason).splitlines()[0])
        told += f" (torch.distributed: {line})"
    if timed_out:
        head = f"process {get_rank()} stopped waiting for the other processes in {operation}"
    else:
        head = f"process {get_rank()} lost the other processes in {operation}"
    error: Exception = (TimeoutError if timed_out or stall else RuntimeError)(
        f"{head}{what}{limit}: {told}; the process group cannot be used any more, so end "
        "every process"
    )
    setattr(error, _FAULT, True)
    _note(progress, _PROGRESS_KEY, [progress.call, progress.step, timed_out or stall])
    return error


def _blame(progress: _Progress) -> tuple[list[str], bool]:
    """Say, from their notes, which other processes left this one waiting, and how.

    Also whether it was a stall: a peer ran out of time and none failed.
    """
    if not progress.has_store:
        return [], False
    failed = _read(progress, _FAILED_KEY)
    said, failure, gave_up = [], False, False
    for rank, note in _read_all(progress).items():
        if rank in failed and failed[rank][0] == progress.call:
            said.append(f"process {rank} failed: {failed[rank][1]}")
            failure = True
        elif note is None:
            said.append(f"process {rank} never reached a collective (was it called?)")
        elif note[0] == progress.call and note[2]:
            said.append(f"process {rank} ran out of time, at collective {note[1]}")
            gave_up = True
        elif note[0] < progress.call:
            said.append(
                f"process {rank} stalled, ended or was not called: it has not begun this work"
            )
        elif note[1] < progress.step:
            said.append(
                f"process {rank} stalled, ended or was not called: it is at collective "
                f"{note[1]} of this work, this process at {progress.step}"
            )
    return said, gave_up and not failure


def _read_all(progress: _Progress) -> dict[int, Any]:
    """Every other process's progress note, None where it wrote none."""
    notes = _read(progress, _PROGRESS_KEY)
    return {r: notes.get(r) for r in range(get_world_size()) if r != get_rank()}


def _device() -> torch.device:
    """Where collectives' tensors live: CUDA for NCCL, the CPU for the other backends."""
    return torch.device("cuda") if dist.get_backend() == "nccl" else torch.device("cpu")
