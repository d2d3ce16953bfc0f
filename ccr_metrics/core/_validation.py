"""Argument checks whose messages name the argument, its shape and the offending place."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import TypeVar

import numpy as np
import torch

T = TypeVar("T", bound=str)


class InputError(ValueError):
    """A bad input, named in the user's terms: the argument and the first offending place.

    A ``ValueError``, so ``except ValueError`` catches it. ``argument`` names the
    argument (or file field) at fault, ``position`` is the first offending index where
    there is one, and ``value`` the offending value.
    """

    def __init__(
        self,
        message: str,
        *,
        argument: str | None = None,
        position: tuple[int, ...] | None = None,
        value: float | None = None,
    ) -> None:
        super().__init__(message)
        self.argument = argument
        self.position = position
        self.value = value


def check_choice(name: str, value: T, options: Sequence[T]) -> T:
    """Return ``value`` if it is one of ``options``, else raise a ValueError listing them."""
    if not isinstance(value, str) or value not in options:
        listed = ", ".join(repr(o) for o in options)
        raise InputError(f"{name} must be one of {listed}; got {value!r}", argument=name)
    return value


def dtype_str(t: torch.Tensor) -> str:
    """Dtype written as numpy users know it: ``float32``, not ``torch.float32``."""
    return str(t.dtype).removeprefix("torch.")


def shape_str(t: torch.Tensor) -> str:
    """Shape written as ``[3, 4]`` for messages."""
    return "[" + ", ".join(str(s) for s in t.shape) + "]"


def check_numeric(t: torch.Tensor, name: str) -> None:
    """Refuse bool and complex tensors: neither orders as a score or a rank."""
    if t.dtype == torch.bool:
        raise InputError(
            f"{name} must hold numbers, got a bool array {shape_str(t)}", argument=name
        )
    if t.is_complex():
        raise InputError(f"{name} must be real, got complex dtype {dtype_str(t)}", argument=name)


def is_integer(t: torch.Tensor) -> bool:
    """Whether ``t`` holds integers: its dtype is neither bool, floating point nor complex."""
    return not (t.dtype == torch.bool or t.is_floating_point() or t.is_complex())


def check_integer(t: torch.Tensor, name: str, what: str) -> None:
    """Refuse a tensor of indices whose dtype is not an integer one; ``what`` names them."""
    if not is_integer(t):
        raise InputError(
            f"{name} must hold integer {what}, got dtype {dtype_str(t)}", argument=name
        )


def check_floating(t: torch.Tensor, name: str) -> None:
    """Refuse a tensor of embeddings or similarities that is not floating point."""
    if not t.is_floating_point():
        raise InputError(
            f"{name} must be floating point, got dtype {dtype_str(t)} {shape_str(t)}",
            argument=name,
        )


def check_unique(name: str, values: Sequence[str]) -> None:
    """Refuse names given more than once (a language counted twice, in averages and MRV)."""
    repeated = sorted({v for v in values if list(values).count(v) > 1})
    if repeated:
        raise InputError(f"{name} names {repeated} more than once", argument=name)


def check_language_names(name: str, languages: Iterable[object]) -> None:
    """Refuse language names that a report's flat keys (``en/i2t/R@1``) cannot carry.

    A name must be a non-empty string without ``/`` (the keys' separator) and not
    ``"average"`` (the mean over languages has that name).
    """
    for language in languages:
        if not isinstance(language, str):
            problem = "is not a string"
        elif not language:
            problem = "is empty"
        elif "/" in language:
            problem = "holds '/', which separates the parts of metric names (en/i2t/R@1)"
        elif language == "average":
            problem = "is the name of the mean over languages"
        else:
            continue
        raise InputError(f"{name}: language name {language!r} {problem}", argument=name)


def check_has_data(t: torch.Tensor, name: str) -> None:
    """Refuse a meta tensor: it has a shape but no values to rank, sum or check."""
    if t.is_meta:
        raise InputError(
            f"{name} is a meta tensor (a shape without values); pass one with data",
            argument=name,
        )


def check_ndim(t: torch.Tensor, name: str, ndim: int, layout: str) -> None:
    """Raise unless ``t`` has ``ndim`` dimensions; ``layout`` names them, e.g. ``[Q, G]``."""
    if t.ndim != ndim:
        raise InputError(
            f"{name} must be {ndim}-D {layout}, got {t.ndim}-D with shape {shape_str(t)}",
            argument=name,
        )


def first_nonfinite(t: torch.Tensor) -> tuple[tuple[int, ...], float] | None:
    """Index and value of the first NaN or infinity in ``t``, or None when all are finite."""
    if not t.is_floating_point():
        return None
    bad = ~torch.isfinite(t)
    if not bool(bad.any()):
        return None
    index = tuple(int(i) for i in bad.nonzero()[0])
    return index, float(t[index])


def check_finite(t: torch.Tensor, name: str) -> None:
    """Raise naming the first non-finite entry of ``t``."""
    found = first_nonfinite(t)
    if found is not None:
        index, value = found
        raise InputError(
            f"{name} contains {value} at index {list(index)}; it must be finite", argument=name
        )


def integer(value: object) -> int | None:
    """``value`` as a Python int if it is an integer of any size, else None.

    An int, a numpy integer (``uint64`` included) or a 0-d integer array or tensor
    counts; a bool (Python's, numpy's, a bool array) does not: ``True`` is no count.
    """
    if isinstance(value, np.ndarray):
        return int(value.item()) if value.ndim == 0 and value.dtype.kind in "iu" else None
    if isinstance(value, torch.Tensor):
        return int(value.item()) if value.ndim == 0 and is_integer(value) else None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        return None
    return int(value)


def positive_int(value: object, maximum: int | None = None) -> int | None:
    """``value`` as an int if it is an integer in ``[1, maximum]`` (see :func:`integer`)."""
    checked = integer(value)
    if checked is None or checked < 1 or (maximum is not None and checked > maximum):
        return None
    return checked


def check_positive_int(name: str, value: object, *, maximum: int | None = None) -> int:
    """Return ``value`` as an int, or raise naming ``name`` unless it is in ``[1, maximum]``.

    ``maximum`` bounds a count that sets the work done (resamples, permutations), so
    that a huge value is refused before any work rather than run without end.
    """
    checked = integer(value)
    if checked is None or checked < 1:
        raise InputError(f"{name} must be a positive integer, got {value!r}", argument=name)
    if maximum is not None and checked > maximum:
        raise InputError(f"{name} must be at most {maximum}, got {checked}", argument=name)
    return checked


def check_positive_ints(name: str, values: object) -> tuple[int, ...]:
    """Normalise an int or an iterable of ints to a tuple of distinct positive ints.

    Text is refused whole: ``b"5"`` would otherwise iterate as the cut-off 53.
    """
    if isinstance(values, (str, bytes, bytearray, Mapping)):
        raise InputError(
            f"{name} must be a positive integer or a sequence of them, got {values!r}",
            argument=name,
        )
    if isinstance(values, (np.ndarray, torch.Tensor)) and values.ndim > 1:
        raise InputError(
            f"{name} must be one cut-off or a 1-D sequence of them, got an array of shape "
            f"{list(values.shape)}",
            argument=name,
        )
    if isinstance(values, (np.ndarray, torch.Tensor)) and values.ndim == 0:
        items: list[object] = [values]
    elif isinstance(values, Iterable):
        items = list(values)
    else:
        items = [values]
    if not items:
        raise InputError(f"{name} must name at least one cut-off", argument=name)
    checked: list[int] = []
    for v in items:
        value = positive_int(v)
        if value is None:
            raise InputError(f"{name} must hold positive integers, got {v!r}", argument=name)
        checked.append(value)
    return tuple(dict.fromkeys(checked))


def cutoff_as_float(k: int) -> float:
    """Return the largest float64 at or below the cut-off ``k``, of any size.

    For a float rank ``r``, ``r <= cutoff_as_float(k)`` exactly when ``r <= k``: no
    overflow past float64 (``k = 10**400``), no rounding up past ``k`` (``2**54 + 3``).
    """
    if k >= _FLOAT_MAX:
        return sys.float_info.max
    f = float(k)
    return f if f <= k else math.nextafter(f, 0.0)


_FLOAT_MAX = int(sys.float_info.max)


def check_seed(name: str, value: object) -> int | None:
    """Return a seed as an int (or None): a non-negative integer of any size."""
    if value is None:
        return None
    checked = integer(value)
    if checked is None or checked < 0:
        raise InputError(
            f"{name} must be a non-negative integer or None, got {value!r}", argument=name
        )
    return checked


def check_bool_mask(
    mask: torch.Tensor,
    name: str,
    shape: tuple[int, ...],
    layout: str,
    device: torch.device,
    *,
    row_ok: bool = False,
) -> torch.Tensor:
    """Return ``mask`` on ``device`` after checking it is bool with the given ``shape``.

    ``layout`` names the dimensions for the message, e.g. ``"(instances x languages)"``.
    With ``row_ok``, one row ``shape[1:]`` is accepted too and broadcast to ``shape``.
    """
    if mask.dtype != torch.bool:
        raise InputError(f"{name} must be a bool array, got dtype {dtype_str(mask)}", argument=name)
    shapes = [shape, shape[1:]] if row_ok else [shape]
    if tuple(mask.shape) not in shapes:
        wanted = " or ".join("[" + ", ".join(str(n) for n in s) + "]" for s in shapes)
        raise InputError(
            f"{name} must have shape {wanted} {layout}, got {shape_str(mask)}", argument=name
        )
    return mask.to(device).expand(shape)
