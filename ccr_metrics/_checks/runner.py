"""The runner of the invariant checks: options, properties, failures and results.

:class:`Options` holds what the user said about the checked function and calls it;
:class:`Property` is one entry of a check's table, registered with :func:`_register`;
:func:`run_check` runs a table with :func:`_falsify` (hypothesis, derandomized, no
database) and returns a :class:`CheckResult` or raises a :class:`CheckFailure` of
:class:`PropertyFailure` entries, whose inputs :func:`_show` prints. Also here: the
helpers every table uses (reading an output as floats, comparing) and the validation of
the arguments every check takes.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt
import torch
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Flaky

from ..core._validation import InputError, check_positive_int
from ..core.mrv import Reduction
from ..core.ties import TIES, Ties
from ..training._contrastive import Variant

Claim = Literal["optimistic", "pessimistic", "average", "expected", "arbitrary"]
#: The tie behaviours a checked rank or recall function can declare: a policy of
#: :data:`~ccr_metrics.TIES`, or ``"arbitrary"`` (ties broken in an order of its own,
#: as an argsort does), checked against the optimistic and pessimistic bounds only.
CLAIMS: tuple[Claim, ...] = (*TIES, "arbitrary")
Form = Literal["ragged", "mask", "index"]
FORMS: tuple[Form, ...] = ("ragged", "mask", "index")
Backend = Literal["numpy", "torch"]
BACKENDS: tuple[Backend, ...] = ("numpy", "torch")
#: Examples each property draws unless ``max_examples`` says otherwise.
DEFAULT_MAX_EXAMPLES = 50
# The gradient check runs two evaluations per embedding entry: it gets a fifth of the budget.
_GRADIENT_SHARE = 5


class _Violation(Exception):
    """A property did not hold on one input; what the report shows about it."""

    def __init__(self, inputs: dict[str, Any], returned: Any, expected: Any) -> None:
        super().__init__("property violated")
        self.inputs = inputs
        self.returned = returned
        self.expected = expected


@dataclass(frozen=True)
class Options:
    """What the user said about the checked function, and how to call it."""

    fn: Callable[..., Any]
    adapter: Callable[..., Any] | None = None
    backend: Backend = "numpy"
    ties: Claim = "expected"
    positives: Form = "ragged"
    reduction: Reduction = "variance"
    masked: bool = False
    variant: Variant = "paper"
    rtol: float = 1e-6

    def call(self, shown: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        """Call the function (through the adapter); an exception becomes a violation."""
        try:
            if self.adapter is None:
                return self.fn(*args, **kwargs)
            return self.adapter(self.fn, *args, **kwargs)
        except Exception as exc:  # the user's code may raise anything: report it
            raise _Violation(shown, f"raised {type(exc).__name__}: {exc}", "a result") from exc

    def array(self, a: npt.NDArray[Any]) -> Any:
        """Return a copy of ``a`` as the backend's array type (the function may write to it)."""
        return torch.from_numpy(a.copy()) if self.backend == "torch" else a.copy()

    @property
    def declared(self) -> bool:
        """Whether the function claims a tie policy (rather than an arbitrary tie order)."""
        return self.ties != "arbitrary"

    @property
    def policy(self) -> Ties:
        """The declared tie policy; only the properties that apply when one is declared ask."""
        return cast(Ties, self.ties)


@dataclass(frozen=True)
class Property:
    """One named invariant of a check: ``test(data, options)`` raises on a counter-example."""

    #: Short identifier, what a failure names.
    name: str
    #: The invariant in one line.
    meaning: str
    #: Draws an input from ``data``, calls the function through the options, raises on a
    #: counter-example.
    test: Callable[[st.DataObject, Options], None]
    #: Whether the property applies to what the user declared (a mask, a tie policy).
    applies: Callable[[Options], bool]


@dataclass(frozen=True)
class PropertyFailure:
    """A property that failed: its shrunk input, what the function gave, what was expected."""

    name: str
    meaning: str
    inputs: dict[str, Any]
    returned: Any
    expected: Any

    def __str__(self) -> str:
        lines = [f"{self.name}: {self.meaning}", "  input:"]
        lines += [_line(f"    {key} = ", value) for key, value in self.inputs.items()]
        lines.append(_line("  returned: ", self.returned))
        lines.append(_line("  expected: ", self.expected))
        return "\n".join(lines)


class CheckFailure(AssertionError):
    """Raised by a check when properties fail: an ``AssertionError`` listing each one."""

    def __init__(
        self, check: str, function: str, failures: Sequence[PropertyFailure], n_checked: int
    ) -> None:
        self.check = check
        self.function = function
        self.failures = tuple(failures)
        head = (
            f"{check}({function}): {len(failures)} of {n_checked} properties failed; "
            "the inputs below are the smallest counter-examples found"
        )
        super().__init__("\n\n".join([head, *(str(f) for f in failures)]))

    @property
    def failed(self) -> tuple[str, ...]:
        """Names of the failed properties, in table order."""
        return tuple(f.name for f in self.failures)


@dataclass(frozen=True)
class CheckResult:
    """What a check returns when every property holds."""

    #: The check that ran (``"check_rank_function"``, ...).
    check: str
    #: The checked function's name.
    function: str
    #: Names of the properties that held, in table order.
    properties: tuple[str, ...]
    #: Examples drawn per property.
    max_examples: int

    def __str__(self) -> str:
        return (
            f"{self.check}({self.function}): {len(self.properties)} properties hold "
            f"on {self.max_examples} examples each"
        )


def run_check(
    check: str, table: Sequence[Property], options: Options, max_examples: int
) -> CheckResult:
    """Run every applicable property of ``table``; raise :class:`CheckFailure` if any fails."""
    function = getattr(options.fn, "__qualname__", None) or repr(options.fn)
    checked, failures = [], []
    threads = torch.get_num_threads()
    # The inputs hold a few dozen numbers: waking a thread pool costs more than the work,
    # milliseconds per call on a busy machine. Serial for the check, restored after.
    torch.set_num_threads(1)
    try:
        for prop in table:
            if not prop.applies(options):
                continue
            checked.append(prop.name)
            share = _GRADIENT_SHARE if prop.name == "gradient" else 1
            failure = _falsify(prop, options, max(1, max_examples // share))
            if failure is not None:
                failures.append(failure)
    finally:
        torch.set_num_threads(threads)
    if failures:
        raise CheckFailure(check, function, failures, len(checked))
    return CheckResult(check, function, tuple(checked), max_examples)


def _falsify(prop: Property, options: Options, max_examples: int) -> PropertyFailure | None:
    """Search for a counter-example to ``prop``; the shrunk one, or None if none is found."""

    @settings(
        max_examples=max_examples,
        derandomize=True,
        database=None,
        deadline=None,
        verbosity=Verbosity.quiet,
        report_multiple_bugs=False,
        suppress_health_check=list(HealthCheck),
        # No explain phase: it costs most of the search and adds nothing to the report.
        phases=(Phase.explicit, Phase.generate, Phase.shrink),
    )
    @given(st.data())
    def search(data: st.DataObject) -> None:
        prop.test(data, options)

    try:
        search()
    except _Violation as v:  # hypothesis re-raises the shrunk example's violation
        return PropertyFailure(prop.name, prop.meaning, v.inputs, v.returned, v.expected)
    except Flaky as exc:
        return PropertyFailure(
            prop.name,
            prop.meaning,
            {},
            f"different results on the same input ({type(exc).__name__})",
            "a deterministic function",
        )
    return None


def _line(prefix: str, value: Any) -> str:
    """``prefix`` and ``value``, the continuation lines of an array aligned under it."""
    return prefix + _show(value).replace("\n", "\n" + " " * len(prefix))


def _show(value: Any) -> str:
    """``value`` printed compactly: arrays as nested lists (a mask as 0/1), floats to 10 places."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        if value.dtype == bool:
            value = value.astype(np.int64)
        return np.array2string(value, separator=", ", max_line_width=80, precision=8, threshold=400)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_show(v)}" for k, v in value.items())
    if isinstance(value, float):
        return repr(round(value, 10))
    return str(value)


def _register(
    table: list[Property], name: str, meaning: str, *, when: Callable[[Options], bool] | None = None
) -> Callable[[Callable[[st.DataObject, Options], None]], Callable[[st.DataObject, Options], None]]:
    def add(
        test: Callable[[st.DataObject, Options], None],
    ) -> Callable[[st.DataObject, Options], None]:
        table.append(Property(name, meaning, test, when or (lambda _: True)))
        return test

    return add


def _as_float_array(value: Any, shown: dict[str, Any], wanted: str) -> npt.NDArray[np.float64]:
    """Return the output as float64; one that is no array of numbers is a violation."""
    try:
        if isinstance(value, torch.Tensor):
            return value.detach().cpu().double().numpy()
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, RuntimeError):
        raise _Violation(shown, value, wanted) from None


def _close(got: Any, want: Any, rtol: float, atol: float = 1e-9) -> bool:
    return bool(np.allclose(got, want, rtol=rtol, atol=atol))


def _checked(fn: object, adapter: object, max_examples: object) -> int:
    """Validate what every check takes; return the example budget."""
    if not callable(fn):
        raise InputError(f"fn must be callable, got {type(fn).__name__}", argument="fn")
    if adapter is not None and not callable(adapter):
        raise InputError(
            f"adapter must be callable or None, got {type(adapter).__name__}", argument="adapter"
        )
    return check_positive_int("max_examples", max_examples)


def _check_masked(masked: object) -> None:
    if not isinstance(masked, bool):
        raise InputError(f"masked must be True or False, got {masked!r}", argument="masked")


def _check_rtol(rtol: object) -> None:
    if (
        isinstance(rtol, bool)
        or not isinstance(rtol, numbers.Real)
        or not math.isfinite(rtol)
        or rtol <= 0
    ):
        raise InputError(f"rtol must be a finite positive number, got {rtol!r}", argument="rtol")
