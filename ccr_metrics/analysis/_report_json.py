"""The saved form of a report: a JSON document, written and read back field by field.

Format 3 holds everything ``Report.to_dict()`` gives, plus what the report is made
of: ``counts`` (per language and direction, the three count arrays), ``ranks``,
``text_to_image``, and, when the report has intervals, ``confidence`` (the options that
drew them) beside the intervals themselves. Format 2 is format 3 without
``mrv_images`` (the images MRV is over), read as format 3. Format 1 held ranks only; it
is read as such, without intervals. Any other version is refused by name. Reading
checks every field's type, naming it (``counts.en.i2t.above``); the derived numbers
are never recomputed to replace the saved ones: :func:`check_saved`
refuses a file whose saved numbers are not what its counts give, and intervals come
back as they were saved.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .._outputs import open_output
from ..core._validation import InputError
from ..core.ties import RankCounts
from .results import Interval, Intervals, MetricKey, close

FORMAT = "ccr-metrics-report/3"
# Format 3 without mrv_images (the images MRV is over): read as format 3, the count
# derived from text_to_image. The version changed because a format-2 reader would take
# the MRV of a report made with settings.mrv_images "all" over other images, and then
# call the file corrupt.
FORMAT_2 = "ccr-metrics-report/2"
# Reports saved before counts were kept: ranks only, read as such.
FORMAT_RANKS_ONLY = "ccr-metrics-report/1"


def payload(
    summary: Mapping[str, Any],
    ranks: Mapping[str, Mapping[str, np.ndarray[Any, Any]]],
    text_to_image: Mapping[str, np.ndarray[Any, Any]],
    counts: Mapping[str, Mapping[str, RankCounts]] | None,
    intervals: Intervals | None,
) -> dict[str, Any]:
    """Build the JSON document of a report from its parts and its ``to_dict()`` summary."""
    out: dict[str, Any] = {
        "format": FORMAT,
        **summary,
        "text_to_image": {lang: np.asarray(v).tolist() for lang, v in text_to_image.items()},
        "ranks": {
            lang: {d: [None if math.isnan(x) else x for x in r.tolist()] for d, r in dirs.items()}
            for lang, dirs in ranks.items()
        },
    }
    if intervals is not None:
        out["confidence"] = intervals.options()
        out["interval_values"] = {
            key.name: [_number(v) for v in value] for key, value in intervals.values.items()
        }
    if counts is not None:
        out["counts"] = {
            lang: {
                d: {
                    name: np.asarray(getattr(c, name)).tolist()
                    for name in ("above", "tied_negatives", "tied_positives")
                }
                for d, c in dirs.items()
            }
            for lang, dirs in counts.items()
        }
    return out


def write(path: str | Path, document: Mapping[str, Any]) -> None:
    """Write ``document`` as JSON (NaN refused: every undefined number is null).

    Raises InputError for a path that is not a regular file (a FIFO, a device) or cannot
    be written, without blocking; an OSError while writing names the path.
    """
    text = json.dumps(document, allow_nan=False)  # before the file is opened (truncated)
    with open_output(path, argument="path") as handle:
        handle.write(text.encode("utf-8"))


def read(path: str | Path) -> dict[str, Any]:
    """Read the fields a Report is built from out of a saved report, each checked for type.

    Returns ``{"counts" or "ranks", "text_to_image", "n_images", "ks", "settings",
    "intervals", "saved"}``: ``counts`` for formats 2 and 3, ``ranks`` for format 1, and
    ``saved`` the document's derived numbers, for :func:`check_saved`.

    Raises
    ------
    OSError
        If the file cannot be read (FileNotFoundError if it does not exist).
    InputError
        If the file is not JSON, not a ccr-metrics report or of a format version this
        release does not read, or a field is missing or of the wrong type; the message
        names the field, as ``counts.en.i2t.above``, and the first offending position.
        The file's path is left for the caller to prefix.
    """
    document = read_document(path)
    version = document.get("format")
    if version not in (FORMAT, FORMAT_2, FORMAT_RANKS_ONLY):
        raise _unknown_format(version)
    if version == FORMAT_2:
        version = FORMAT
    settings = dict(json_object(json_field(document, "settings", ""), "settings"))
    if "caption_reduce" in settings:  # the setting's name in reports of format 1
        settings["caption_reduction"] = settings.pop("caption_reduce")
    if "ks" not in settings:
        raise InputError("settings.ks: missing (the recall cut-offs)", argument="settings.ks")
    fields: dict[str, Any] = {
        "ks": _cutoffs(settings.pop("ks")),
        "settings": settings,
        "n_images": json_integer(json_field(document, "n_images", ""), "n_images"),
        "text_to_image": {
            lang: json_integers(v, f"text_to_image.{lang}")
            for lang, v in json_object(
                json_field(document, "text_to_image", ""), "text_to_image"
            ).items()
        },
        "intervals": _intervals(document, required=version == FORMAT),
    }
    if version == FORMAT:
        fields["counts"] = {
            lang: {
                d: _rank_counts(c, f"counts.{lang}.{d}")
                for d, c in json_object(dirs, f"counts.{lang}").items()
            }
            for lang, dirs in json_object(json_field(document, "counts", ""), "counts").items()
        }
        # Intervals are derived from interval_values; without those the field must be
        # absent. Format 2 did not hold mrv_images.
        derived = tuple(
            key
            for key in DERIVED
            if (key != "intervals" or fields["intervals"] is not None or key in document)
            and (key != "mrv_images" or document["format"] == FORMAT or key in document)
        )
    else:
        fields["ranks"] = {
            lang: {
                d: _ranks(r, f"ranks.{lang}.{d}")
                for d, r in json_object(dirs, f"ranks.{lang}").items()
            }
            for lang, dirs in json_object(json_field(document, "ranks", ""), "ranks").items()
        }
        # Format 1 is checked on the numbers it holds; it kept intervals' options only.
        derived = tuple(key for key in DERIVED if key in document and key != "intervals")
    fields["saved"] = {key: json_field(document, key, "") for key in derived}
    return fields


#: The fields of a saved report that are computed from the others: loading checks them
#: against what the counts (format 1: the ranks) give, and refuses a file where they differ.
DERIVED = (
    "languages",
    "recall",
    "mean_recall",
    "average",
    "mrv",
    "mrv_images",
    "mean_rank",
    "median_rank",
    "n_texts",
    "ranks",
    "intervals",
)


def check_saved(
    saved: Mapping[str, Any],
    summary: Mapping[str, Any],
    ranks: Mapping[str, Mapping[str, np.ndarray[Any, Any]]],
    source: str,
) -> None:
    """Refuse saved derived numbers that are not what the loaded report gives.

    ``summary`` is the loaded report's ``to_dict()``, ``ranks`` its ranks and
    ``source`` what they come from ("counts" or "ranks"), for the message.

    Raises
    ------
    InputError
        Naming the first field that differs, e.g. ``recall.en.i2t.1``.
    """
    for key, value in saved.items():
        if key == "ranks":
            found = _ranks_differ(value, ranks, source)
        else:
            found = _difference(value, summary.get(key), key, source)
        if found is not None:
            field, problem = found
            raise InputError(
                f"{field}: {problem} (a saved report's numbers are those its {source} give: "
                "the file was edited or is corrupt)",
                argument=field,
            )


def _ranks_differ(
    saved: Any, ranks: Mapping[str, Mapping[str, np.ndarray[Any, Any]]], source: str
) -> tuple[str, str] | None:
    """Where the saved ``ranks`` field differs from the report's ranks, compared as arrays."""
    names = {lang: list(dirs) for lang, dirs in ranks.items()}
    shape = _difference(
        {
            lang: dict.fromkeys(dirs) if isinstance(dirs, dict) else dirs
            for lang, dirs in json_object(saved, "ranks").items()
        },
        {lang: dict.fromkeys(dirs) for lang, dirs in names.items()},
        "ranks",
        source,
    )
    if shape is not None:
        return shape
    for lang, dirs in ranks.items():
        for d, expected in dirs.items():
            field = f"ranks.{lang}.{d}"
            given = _ranks(saved[lang][d], field)
            if len(given) != len(expected):
                length = "n_images" if d == "i2t" else f"the texts of text_to_image.{lang}"
                return field, f"{len(given)} values, expected {len(expected)} ({length})"
            differ = np.flatnonzero(
                ~np.isclose(given, expected, rtol=1e-9, atol=1e-12, equal_nan=True)
            )
            if differ.size:
                i = int(differ[0])
                return (
                    f"{field}[{i}]",
                    f"the file says {_show(given[i])}, its {source} give {_show(expected[i])}",
                )
    return None


def _difference(saved: Any, expected: Any, field: str, source: str) -> tuple[str, str] | None:
    """Return the first place where JSON ``saved`` differs from ``expected``: (field, problem)."""
    if isinstance(expected, Mapping):
        if not isinstance(saved, dict):
            return field, f"expected an object, got {_kind(saved)}"
        for key, value in expected.items():
            if str(key) not in saved:
                return f"{field}.{key}", "missing"
            found = _difference(saved[str(key)], value, f"{field}.{key}", source)
            if found is not None:
                return found
        extra = [key for key in saved if key not in {str(k) for k in expected}]
        if extra:
            return (
                f"{field}.{extra[0]}",
                f"in the file, but its {source} hold no such language, direction or cut-off",
            )
        return None
    if isinstance(expected, (list, tuple)):
        if not isinstance(saved, list):
            return field, f"expected an array, got {_kind(saved)}"
        if len(saved) != len(expected):
            return field, f"{len(saved)} values, expected {len(expected)}"
        for i, (s, e) in enumerate(zip(saved, expected, strict=True)):
            found = _difference(s, e, f"{field}[{i}]", source)
            if found is not None:
                return found
        return None
    if _is_number(expected) and _is_number(saved):
        if close(float(saved), float(expected)):
            return None
    elif saved == expected and type(saved) is type(expected):
        return None
    return field, f"the file says {_show(saved)}, its {source} give {_show(expected)}"


def read_document(path: str | Path) -> dict[str, Any]:
    """Return the JSON object a saved report (a Report's or a ListsReport's) holds.

    NaN and Infinity are refused: they are not JSON.
    """
    file = Path(path)
    # The words of the array loaders. Report.load puts the path before an InputError,
    # not before an OSError, so the missing file names itself here.
    if not file.exists():
        raise FileNotFoundError(f"{file}: no such file")
    if not file.is_file():
        raise InputError("not a file")
    text = file.read_bytes()
    try:
        document = json.loads(text.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError as exc:
        raise InputError(
            f"not a JSON report: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"not a JSON report: {exc}") from None
    except RecursionError:
        raise InputError("not a JSON report: nested too deeply") from None
    except ValueError as exc:  # an integer of more digits than Python converts
        raise InputError(f"not a JSON report: {exc}") from None
    if not isinstance(document, dict):
        raise InputError(f"not a ccr-metrics report: holds {_kind(document)}, not an object")
    return document


def _no_constant(name: str) -> float:
    raise InputError(f"not a JSON report: {name} is not JSON (an undefined number is null)")


def _unknown_format(version: Any) -> InputError:
    reads = f"{FORMAT!r}, {FORMAT_2!r} and {FORMAT_RANKS_ONLY!r}"
    if isinstance(version, str) and version.startswith(_FAMILY):
        return InputError(
            f"format {version!r} is not one this release of ccr-metrics reads ({reads}); "
            "it was written by another release: upgrade ccr-metrics to read it",
            argument="format",
        )
    found = "no 'format' field" if version is None else f"format {_show(version)}"
    return InputError(
        f"not a ccr-metrics report: {found}, expected {FORMAT!r} (what Report.save and "
        "--json write)",
        argument="format",
    )


_FAMILY = FORMAT.rpartition("/")[0] + "/"


def json_field(node: Mapping[str, Any], key: str, parent: str = "") -> Any:
    """``node[key]``, or an InputError naming the field ``parent.key`` as missing."""
    field = f"{parent}.{key}" if parent else key
    if key not in node:
        raise InputError(f"{field}: missing", argument=field)
    return node[key]


def json_object(value: Any, field: str) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an InputError naming ``field``."""
    if not isinstance(value, dict):
        raise InputError(f"{field}: expected an object {{...}}, got {_kind(value)}", argument=field)
    return value


def json_integer(value: Any, field: str) -> int:
    """``value`` if it is a JSON integer, else an InputError naming ``field``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{field}: expected an integer, got {_kind(value)}", argument=field)
    return value


def _cutoffs(value: Any) -> tuple[int, ...]:
    """Return ``settings.ks``: integers of any size, as a report holds (``k = 2**64`` too)."""
    if isinstance(value, list) and all(type(x) is int for x in value):
        return tuple(value)  # the report's checks refuse one below 1 or given twice
    return tuple(json_integers(value, "settings.ks").tolist())  # refused, naming the first


def json_integers(value: Any, field: str) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Return a JSON array of integers as int64, naming the first element that is not one."""
    if not isinstance(value, list):
        raise InputError(
            f"{field}: expected an array of integers, got {_kind(value)}", argument=field
        )
    # json gives exactly int for an integer (bool for true and false): a type test suffices.
    if not all(type(x) is int for x in value):
        i = next(i for i, x in enumerate(value) if type(x) is not int)
        raise InputError(
            f"{field}: {_show(value[i])} at position {i} is not an integer",
            argument=field,
            position=(i,),
        )
    try:
        return np.asarray(value, dtype=np.int64).reshape(len(value))
    except OverflowError:
        i = next(i for i, x in enumerate(value) if not _INT64[0] <= x <= _INT64[1])
        raise InputError(
            f"{field}: {_show(value[i])} at position {i} is too large",
            argument=field,
            position=(i,),
        ) from None


_INT64 = (-(2**63), 2**63 - 1)


def _ranks(value: Any, field: str) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Return a JSON array of ranks, null for no query, as float64 with NaN."""
    if not isinstance(value, list):
        raise InputError(f"{field}: expected an array of ranks, got {_kind(value)}", argument=field)
    if not all(x is None or type(x) is float or type(x) is int for x in value):
        i = next(i for i, x in enumerate(value) if not (x is None or _is_number(x)))
        raise InputError(
            f"{field}: {_show(value[i])} at position {i} is not a rank (a number, or null for "
            "no query)",
            argument=field,
            position=(i,),
        )
    try:
        return np.asarray([math.nan if x is None else x for x in value], dtype=np.float64).reshape(
            len(value)
        )
    except OverflowError:  # an integer beyond any float
        i = next(i for i, x in enumerate(value) if not (x is None or _is_number(x)))
        raise InputError(
            f"{field}: {_show(value[i])} at position {i} is too large for a rank",
            argument=field,
            position=(i,),
        ) from None


def _rank_counts(value: Any, field: str) -> RankCounts:
    node = json_object(value, field)
    arrays = [
        json_integers(json_field(node, name, field), f"{field}.{name}") for name in _COUNT_NAMES
    ]
    for name, array in zip(_COUNT_NAMES, arrays, strict=True):
        if len(array) != len(arrays[0]):
            raise InputError(
                f"{field}.{name}: {len(array)} values, expected {len(arrays[0])} as {field}.above",
                argument=f"{field}.{name}",
            )
        negative = np.flatnonzero(array < 0)
        if negative.size:
            i = int(negative[0])
            raise InputError(
                f"{field}.{name}: {int(array[i])} at position {i}; counts are >= 0",
                argument=f"{field}.{name}",
                position=(i,),
            )
    return RankCounts(*arrays)


_COUNT_NAMES = ("above", "tied_negatives", "tied_positives")


def _intervals(document: Mapping[str, Any], *, required: bool) -> Intervals | None:
    """Return the saved intervals as they were (never drawn again).

    Format 1 saved the options that drew its intervals but not their values; it is read
    without intervals (``required`` False).
    """
    has_options, has_values = "confidence" in document, "interval_values" in document
    if not required and not has_values:
        return None
    if has_options != has_values:
        present, absent = ("confidence", "interval_values")[:: 1 if has_options else -1]
        raise InputError(f"{absent}: missing (it goes with {present})", argument=absent)
    if not has_options:
        return None
    options = json_object(document["confidence"], "confidence")
    ci, method, n_resamples, seed = (
        json_field(options, name, "confidence") for name in ("ci", "method", "n_resamples", "seed")
    )
    values = {}
    for name, value in json_object(document["interval_values"], "interval_values").items():
        field = f"interval_values.{name}"
        try:
            key = MetricKey.parse(name)
        except InputError as exc:
            raise InputError(f"{field}: {exc}", argument=field) from None
        if (
            not isinstance(value, list)
            or len(value) != len(Interval._fields)
            or not all(v is None or _is_number(v) for v in value)
        ):
            raise InputError(
                f"{field}: expected [estimate, low, high] (numbers or null), got {_show(value)}",
                argument=field,
            )
        values[key] = Interval(*(math.nan if v is None else float(v) for v in value))
    try:
        return Intervals(ci=ci, method=method, n_resamples=n_resamples, seed=seed, values=values)
    except InputError as exc:
        # Intervals names its own options and intervals; say where they lie in the file.
        options_named = exc.argument in ("ci", "method", "n_resamples", "seed")
        field = f"confidence.{exc.argument}" if options_named else "interval_values"
        raise InputError(f"{field}: {exc}", argument=field) from None


def _is_number(value: Any) -> bool:
    """Whether ``value`` is a number a float holds (a JSON integer may be any size)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return False
    try:
        float(value)
    except OverflowError:
        return False
    return True


def _kind(value: Any) -> str:
    """Say what a JSON value is, in JSON's words."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _show(value: Any) -> str:
    """Write a value as the file writes it, cut short."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _number(value: float) -> float | None:
    return None if math.isnan(value) else float(value)
