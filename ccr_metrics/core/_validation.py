"""Argument checks whose messages name the argument, its shape and the offending place."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import numpy as np
import torch

T = TypeVar("T", bound=str)
F = TypeVar("F", bound=Callable[..., Any])


def renamed(**old_to_new: str) -> Callable[[F], F]:
    """Accept the old name of a keyword argument for one release, with a DeprecationWarning.

    ``@renamed(ks="k")`` makes ``f(ks=...)`` mean ``f(k=...)``; giving both is an error.
    """

    def decorate(function: F) -> F:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for old, new in old_to_new.items():
                if old in kwargs:
                    if new in kwargs:
                        raise InputError(
                            f"{function.__name__}() got both {old}= and {new}=; {old} is "
                            f"the deprecated name of {new}",
                            argument=old,
                        )
                    warnings.warn(
                        f"{function.__name__}({old}=...) is deprecated and goes in the next "
                        f"release; use {new}=",
                        DeprecationWarning,
                        stacklevel=2,
                    )
                    kwargs[new] = kwargs.pop(old)
            return function(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


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


def positive_int(value: object) -> int | None:
    """``value`` as an int if it is a positive integer (a 0-d integer tensor included)."""
    if isinstance(value, torch.Tensor) and value.ndim == 0 and not value.is_floating_point():
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        return None
    return int(value)


def check_positive_int(name: str, value: object) -> int:
    """Return ``value`` as an int, or raise naming ``name`` unless it is a positive integer."""
    checked = positive_int(value)
    if checked is None:
        raise InputError(f"{name} must be a positive integer, got {value!r}", argument=name)
    return checked


def check_positive_ints(name: str, values: object) -> tuple[int, ...]:
    """Normalise an int or an iterable of ints to a tuple of distinct positive ints."""
    if isinstance(values, torch.Tensor) and values.ndim == 0:
        items: list[object] = [values]
    elif isinstance(values, (int, np.integer, str)) or not isinstance(values, Iterable):
        items = [values]
    else:
        items = list(values)
    if not items:
        raise InputError(f"{name} must name at least one cut-off", argument=name)
    checked: list[int] = []
    for v in items:
        value = positive_int(v)
        if value is None:
            raise InputError(f"{name} must hold positive integers, got {v!r}", argument=name)
        checked.append(value)
    return tuple(dict.fromkeys(checked))


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
