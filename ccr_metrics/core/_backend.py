"""numpy <-> torch in/out: the core computes in torch once, whatever the caller passed."""

from __future__ import annotations

import warnings
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import torch

from ._validation import InputError, check_has_data, dtype_str

#: An array argument: a numpy array, a torch tensor, or anything ``np.asarray`` accepts.
ArrayLike: TypeAlias = npt.ArrayLike | torch.Tensor
#: What the public functions return for an array: numpy in gives numpy out, torch gives torch.
Array: TypeAlias = npt.NDArray[Any] | torch.Tensor


def to_tensor(x: ArrayLike, name: str) -> tuple[torch.Tensor, bool]:
    """Return ``(tensor, came_from_torch)`` without copying where the input allows it.

    numpy arrays are shared with ``torch.from_numpy``; other array-likes go through
    ``np.asarray``. Dtypes the computation lacks are converted where that is exact
    (unsigned integers to int64, float8 to float32, long double to float64, sparse
    tensors to dense) and refused naming ``name`` and the dtype otherwise (object,
    strings, quantized tensors, values a conversion would change); so are meta tensors
    and masked arrays, whose mask would be dropped.
    """
    if isinstance(x, torch.Tensor):
        check_has_data(x, name)
        return _supported_tensor(x, name), True
    if isinstance(x, np.ma.MaskedArray):
        raise InputError(
            f"{name} is a masked array; its mask would be ignored: pass the values to use "
            "(np.ma.filled) or drop the masked rows",
            argument=name,
        )
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError, OverflowError) as exc:
        raise InputError(f"{name} could not be read as an array: {exc}", argument=name) from None
    if arr.dtype.kind not in "biufc":
        raise InputError(
            f"{name} must be numeric, got an array of dtype {arr.dtype}", argument=name
        )
    if arr.dtype.kind == "u" and arr.dtype.itemsize > 1:
        if arr.size and arr.max() > np.iinfo(np.int64).max:
            raise InputError(f"{name} holds unsigned values beyond the int64 range", argument=name)
        arr = arr.astype(np.int64)
    if arr.dtype.kind in "fc" and arr.dtype.itemsize > (8 if arr.dtype.kind == "f" else 16):
        arr = _from_long_double(arr, name)
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if any(stride < 0 for stride in arr.strides):  # a reversed view: torch cannot share it
        arr = arr.copy()
    with warnings.catch_warnings():
        # Read-only arrays (np.load with mmap_mode="r") are fine: the core never writes.
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(arr), False


#: Dtypes whose every value a wider dtype holds exactly: converted, never refused.
_WIDENED = {
    torch.uint16: torch.int64,
    torch.uint32: torch.int64,
    torch.float8_e4m3fn: torch.float32,
    torch.float8_e4m3fnuz: torch.float32,
    torch.float8_e5m2: torch.float32,
    torch.float8_e5m2fnuz: torch.float32,
    torch.float8_e8m0fnu: torch.float32,
}
_COMPUTED = {
    torch.bool,
    torch.uint8,
    torch.int8,
    torch.int16,
    torch.int32,
    torch.int64,
    torch.float16,
    torch.bfloat16,
    torch.float32,
    torch.float64,
    torch.complex32,
    torch.complex64,
    torch.complex128,
}


def _supported_tensor(t: torch.Tensor, name: str) -> torch.Tensor:
    """``t`` itself when the computation handles its dtype and layout, else an exact copy."""
    if t.is_quantized:
        raise InputError(
            f"{name} is a quantized tensor ({dtype_str(t)}); pass {name}.dequantize() if "
            "its dequantized values are the ones to rank",
            argument=name,
        )
    if t.layout != torch.strided:
        t = t.to_dense()
    if t.dtype in _COMPUTED:
        return t
    if t.dtype in _WIDENED:
        return t.to(_WIDENED[t.dtype])
    if t.dtype == torch.uint64:
        if bool((t.view(torch.int64) < 0).any()):  # the top bit set: beyond int64
            raise InputError(f"{name} holds uint64 values beyond the int64 range", argument=name)
        return t.to(torch.int64)
    raise InputError(
        f"{name} has dtype {dtype_str(t)}, which the computation does not support; convert "
        "it to a standard integer or floating-point dtype",
        argument=name,
    )


def _from_long_double(arr: npt.NDArray[Any], name: str) -> npt.NDArray[Any]:
    """Narrow a long double array to float64 (complex128); refuse it where a value changes."""
    narrow = arr.astype(np.float64 if arr.dtype.kind == "f" else np.complex128)
    differs = ~((narrow.astype(arr.dtype) == arr) | (np.isnan(arr) & np.isnan(narrow)))
    if differs.any():
        at = [int(i) for i in np.argwhere(differs)[0]]
        raise InputError(
            f"{name} has dtype {arr.dtype}, and its value at index {at} has no exact "
            f"{narrow.dtype} form (the computation's widest); convert it yourself if "
            "rounding is acceptable",
            argument=name,
        )
    return narrow


def to_output(t: torch.Tensor, as_torch: bool) -> Array:
    """Give ``t`` back in the caller's kind: itself for torch callers, a numpy array else."""
    if as_torch:
        return t
    return t.detach().cpu().numpy()
