"""Reading benchmark files line by line, refusing what cannot be read by file and line.

Every refusal names the file and the 1-based line (or, in a one-document JSON file, the
path of the field) and what was expected there.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..core._validation import InputError

__all__ = [
    "field",
    "json_document",
    "json_lines",
    "refuse",
    "require_dir",
    "string_list",
    "text_lines",
]


def refuse(file: Path, line: int | None, message: str) -> InputError:
    """Make the InputError for ``file`` at ``line`` (1-based; None when it is not known)."""
    where = f"{file}, line {line}" if line is not None else str(file)
    return InputError(f"{where}: {message}", argument=str(file), position=(line,) if line else None)


def require_dir(folder: Path, what: str) -> Path:
    """``folder`` if it is a directory, else FileNotFoundError naming it and ``what`` it is."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such directory ({what})")
    return folder


def _raw(file: Path) -> bytes:
    if not file.is_file():
        raise FileNotFoundError(f"{file}: no such file")
    if file.suffix != ".gz":
        return file.read_bytes()
    try:
        return gzip.decompress(file.read_bytes())
    except (OSError, EOFError, zlib.error) as exc:
        raise refuse(file, None, f"not a readable gzip file ({exc})") from None


def text_lines(file: Path) -> list[str]:
    r"""Read the lines of a UTF-8 text file (``.gz``: decompressed), without their ends.

    ``\n`` and ``\r\n`` both end a line; a last line without an end counts, an end at
    the end of the file starts no empty line. A UTF-8 byte-order mark is dropped.
    """
    data = _raw(file).removeprefix(b"\xef\xbb\xbf")
    pieces = data.split(b"\n")
    if pieces[-1] == b"":
        pieces.pop()
    lines = []
    for number, piece in enumerate(pieces, start=1):
        try:
            lines.append(piece.removesuffix(b"\r").decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise refuse(file, number, f"not UTF-8 text ({exc.reason})") from None
    return lines


def json_lines(file: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for each line of a JSON-lines file; each must be an object."""
    for number, line in enumerate(text_lines(file), start=1):
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise refuse(file, number, f"not a JSON object ({exc.msg})") from None
        if not isinstance(value, dict):
            raise refuse(file, number, f"expected a JSON object, got {type(value).__name__}")
        yield number, value


def json_document(file: Path) -> Any:
    """Read the one JSON value of ``file``; a syntax error is refused naming its line."""
    text = _raw(file).removeprefix(b"\xef\xbb\xbf")
    try:
        return json.loads(text.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise refuse(file, None, f"not UTF-8 text ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise refuse(file, exc.lineno, f"not valid JSON ({exc.msg})") from None


def field(
    record: dict[str, Any],
    key: str,
    kind: type | tuple[type, ...],
    file: Path,
    line: int | None,
    at: str = "",
) -> Any:
    """``record[key]``, refused (by file, line and ``at``) when missing or not a ``kind``.

    ``at`` names the record inside the line or document (``images[3]``); a bool is not
    accepted as an int.
    """
    prefix = f"{at}: " if at else ""
    if key not in record:
        raise refuse(file, line, f"{prefix}no field {key!r}")
    value = record[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        names = " or ".join(k.__name__ for k in kinds)
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        raise refuse(
            file, line, f"{prefix}field {key!r} must be {names}, got {type(value).__name__} {shown}"
        )
    return value


def string_list(value: Any, name: str, file: Path, line: int | None) -> list[str]:
    """``value`` if it is a list of strings, else refused naming ``name`` and the first item."""
    if not isinstance(value, list):
        raise refuse(file, line, f"{name} must be a list of strings, got {type(value).__name__}")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise refuse(
                file, line, f"{name}[{i}] must be a string, got {type(item).__name__} {item!r}"
            )
    return value
