"""The paths outputs are written to: checked before any work, opened without blocking.

Every writer of a user's path (``Report.save``, the plots, the CLI's ``--json``,
``--csv`` and ``--plot``) checks it here first, so that a path that cannot take the
output is refused before a long evaluation rather than after it. Only a regular file,
or a new file in an existing folder, is an output: a FIFO would block the writer until
some reader opened it (forever, if none does), and a device or a socket is not a file a
report can be kept in. Nothing here opens a special file; a file is opened with
``O_NONBLOCK`` and checked again once open, so that one swapped in meanwhile fails at
once instead of waiting.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from .core._validation import InputError

# os.O_NONBLOCK is POSIX; elsewhere there are no FIFOs to wait on.
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_KINDS = (
    (stat.S_ISFIFO, "a FIFO (a named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def check_output(path: str | os.PathLike[str], *, argument: str | None = None) -> Path:
    """Refuse ``path`` as an output unless a regular file can be written there.

    A file that does not exist yet is fine when its folder exists and takes a new file
    (one is created and removed again to know). Nothing is written and nothing blocks.

    Parameters
    ----------
    path : str or os.PathLike
        Where the output is to go.
    argument : str, optional
        The argument or flag that gave the path, put before it in a refusal; leave it out
        where the caller names it (argparse puts the flag before its type's errors).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    InputError
        If ``path`` is a directory, a FIFO, a device or a socket, its folder does not
        exist, or it cannot be opened for writing (the reason, e.g. permission denied).

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     check_output(f"{tmp}/report.json").name
    ...     try:
    ...         check_output(tmp, argument="path")
    ...     except ValueError as exc:
    ...         print(str(exc).replace(tmp, "TMP"))
    'report.json'
    path 'TMP' is a directory, not a file
    """
    file = Path(path)
    shown = f"{argument} {str(file)!r}" if argument else repr(str(file))
    named = argument or str(file)
    try:
        mode: int | None = os.stat(file).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise InputError(f"cannot write {shown}: {exc.strerror or exc}", argument=named) from None
    if mode is None and not file.parent.is_dir():
        raise InputError(f"{shown}: directory {str(file.parent)!r} does not exist", argument=named)
    if mode is not None:
        _check_regular(mode, shown, named)
    # Opened for appending (or created) to know that it can be: that writes nothing.
    flags = os.O_WRONLY | os.O_APPEND | _NONBLOCK | (os.O_CREAT | os.O_EXCL if mode is None else 0)
    try:
        fd = os.open(file, flags, 0o666)
    except OSError as exc:
        raise InputError(f"cannot write {shown}: {exc.strerror or exc}", argument=named) from None
    try:
        _check_regular(os.fstat(fd).st_mode, shown, named)
        os.lseek(fd, 0, os.SEEK_END)  # as appending does; the files of /proc refuse it
    except OSError as exc:
        raise InputError(f"cannot write {shown}: {exc.strerror or exc}", argument=named) from None
    finally:
        os.close(fd)
        if mode is None:
            file.unlink(missing_ok=True)
    return file


@contextmanager
def open_output(path: str | os.PathLike[str], *, argument: str) -> Iterator[BinaryIO]:
    """Open ``path`` to be written (truncated), once :func:`check_output` accepts it.

    An OSError while the file is written (a full disk) is raised again with the path
    as its ``filename``, which its message then names.
    """
    file = check_output(path, argument=argument)
    try:
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _NONBLOCK, 0o666)
        try:
            _check_regular(os.fstat(fd).st_mode, f"{argument} {str(file)!r}", argument)
        except InputError:
            os.close(fd)
            raise
        with os.fdopen(fd, "wb") as handle:
            yield handle
    except OSError as exc:
        if exc.filename is not None:
            raise
        raise OSError(exc.errno or errno.EIO, exc.strerror or str(exc), str(file)) from None


def _check_regular(mode: int, shown: str, argument: str) -> None:
    if stat.S_ISDIR(mode):
        raise InputError(f"{shown} is a directory, not a file", argument=argument)
    if not stat.S_ISREG(mode):
        kind = next((kind for test, kind in _KINDS if test(mode)), "a special file")
        raise InputError(
            f"{shown} is {kind}, not a regular file: an output written there could wait "
            "for a reader forever or be lost",
            argument=argument,
        )
