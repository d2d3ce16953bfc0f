"""numpy <-> torch in/out: the core computes in torch once, whatever the caller passed."""

from __future__ import annotations

import warnings
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import torch

from ._validation import InputError, check_has_data

#: An array argument: a numpy array, a torch tensor, or anything ``np.asarray`` accepts.
ArrayLike: TypeAlias = npt.ArrayLike | torch.Tensor
#: What the public functions return for an array: numpy in gives numpy out, torch gives torch.
Array: TypeAlias = npt.NDArray[Any] | torch.Tensor


def to_tensor(x: ArrayLike, name: str) -> tuple[torch.Tensor, bool]:
    """Return ``(tensor, came_from_torch)`` without copying where the input allows it.

    numpy arrays are shared with ``torch.from_numpy``; other array-likes go through
    ``np.asarray``. Dtypes torch cannot hold (object, strings, big unsigned integers)
    are refused with a message that names ``name``, and so are meta tensors.
    """
    if isinstance(x, torch.Tensor):
        check_has_data(x, name)
        return x, True
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError) as exc:
        raise InputError(f"{name} could not be read as an array: {exc}", argument=name) from None
    if arr.dtype.kind not in "biufc":
        raise InputError(
            f"{name} must be numeric, got an array of dtype {arr.dtype}", argument=name
        )
    if arr.dtype.kind == "u" and arr.dtype.itemsize > 1:
        if arr.size and arr.max() > np.iinfo(np.int64).max:
            raise InputError(f"{name} holds unsigned values beyond the int64 range", argument=name)
        arr = arr.astype(np.int64)
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if any(stride < 0 for stride in arr.strides):  # a reversed view: torch cannot share it
        arr = arr.copy()
    with warnings.catch_warnings():
        # Read-only arrays (np.load with mmap_mode="r") are fine: the core never writes.
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(arr), False


def to_output(t: torch.Tensor, as_torch: bool) -> Array:
    """Give ``t`` back in the caller's kind: itself for torch callers, a numpy array else."""
    if as_torch:
        return t
    return t.detach().cpu().numpy()
