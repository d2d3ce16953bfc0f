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
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist

from ._validation import InputError, shape_str

__all__ = [
    "all_gather_shapes",
    "all_gather_with_grad",
    "all_reduce_sum",
    "any_process",
    "broadcast",
    "gather_objects",
    "get_rank",
    "get_world_size",
    "is_distributed",
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
        dist.broadcast(tensor, src=src)
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
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def any_process(flag: bool) -> bool:
    """Whether ``flag`` is True on any process.

    Lets every process fail together when one of them rejects its input, instead of
    leaving the others waiting in the next collective.

    Examples
    --------
    >>> any_process(False), any_process(True)
    (False, True)
    """
    if not is_distributed():
        return flag
    # NCCL only moves CUDA tensors; the other backends take CPU ones.
    device = torch.device("cuda") if dist.get_backend() == "nccl" else torch.device("cpu")
    value = torch.tensor([int(flag)], device=device)
    return bool(all_reduce_sum(value).item() > 0)


def gather_objects(obj: Any) -> list[Any]:
    """Every process's ``obj`` (small, picklable metadata), in rank order.

    Used to check that all processes were called alike. The objects travel between the
    program's own processes; nothing is read from a file.

    Examples
    --------
    >>> gather_objects({"languages": ["en", "de"]})
    [{'languages': ['en', 'de']}]
    """
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out
