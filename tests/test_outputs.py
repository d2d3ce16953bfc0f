"""Output paths (ccr_metrics._outputs): checked before any work, never opened to block.

Only a regular file, or a new file in an existing folder, takes an output. A FIFO would
block the writer until a reader came (forever, if none does); a device or a socket is
no place to keep a report. Each check must answer at once: the calls that could block
run under an alarm that fails them instead of hanging the suite.
"""

from __future__ import annotations

import errno
import io
import os
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from waiting import bounded

import ccr_metrics as cm
from ccr_metrics import _outputs
from ccr_metrics._outputs import check_output, open_output

X = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)


def fifo(tmp_path: Path) -> Path:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    os.mkfifo(tmp_path / "out")
    return tmp_path / "out"


def unix_socket(tmp_path: Path) -> Path:
    if not hasattr(socket, "AF_UNIX"):
        pytest.skip("no Unix sockets on this platform")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tmp_path / "sock"))
    server.close()  # the socket file stays behind
    return tmp_path / "sock"


def device() -> Path:
    if not Path("/dev/null").exists():
        pytest.skip("no /dev/null on this platform")
    return Path("/dev/null")


def test_a_new_file_is_accepted_and_not_left_behind(tmp_path):
    assert check_output(tmp_path / "r.json", argument="path") == tmp_path / "r.json"
    assert list(tmp_path.iterdir()) == []


def test_an_existing_file_is_accepted_untouched(tmp_path):
    target = tmp_path / "r.json"
    target.write_text("kept")
    before = os.stat(target)
    check_output(target, argument="path")
    after = os.stat(target)
    assert target.read_text() == "kept"
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


REFUSED = {
    "a folder": (lambda p: p, "is a directory"),
    "a FIFO": (fifo, "is a FIFO"),
    "a socket": (unix_socket, "is a socket"),
    "a device": (lambda p: device(), "is a character device"),
    "in a missing folder": (lambda p: p / "no" / "r.json", "does not exist"),
    "under a file": (lambda p: (p / "f").write_text("x") and p / "f" / "r.json", "Not a directory"),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_refused_at_once_naming_argument_and_path(name, tmp_path):
    make, words = REFUSED[name]
    path = make(tmp_path)
    listed = sorted(tmp_path.iterdir())
    with pytest.raises(cm.InputError) as caught:
        bounded(lambda: check_output(path, argument="--json"))
    message = str(caught.value)
    assert f"--json {str(path)!r}" in message and words in message, message
    assert sorted(tmp_path.iterdir()) == listed  # nothing created


def test_a_file_that_takes_no_append_is_refused():
    """/proc files are regular but cannot be positioned for appending, as open(.., "a") does."""
    if not Path("/proc/version").is_file():
        pytest.skip("needs Linux's /proc")
    with pytest.raises(cm.InputError, match="cannot write '/proc/version'"):
        check_output("/proc/version")


def test_the_argument_left_out_leaves_the_path_first(tmp_path):
    """The CLI leaves the flag to argparse, which puts it before the message."""
    with pytest.raises(cm.InputError) as caught:
        check_output(tmp_path)
    assert str(caught.value) == f"{str(tmp_path)!r} is a directory, not a file"


def test_open_output_names_the_path_when_writing_fails(tmp_path):
    target = tmp_path / "r.json"
    with pytest.raises(OSError) as caught, open_output(target, argument="path"):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert caught.value.errno == errno.ENOSPC
    assert caught.value.filename == str(target)
    assert str(target) in str(caught.value)


class _FullDisk(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_report_save_names_the_path_when_the_disk_is_full(tmp_path, monkeypatch):
    report = cm.evaluate(X, {"en": X}, device="cpu", progress=False)
    target = tmp_path / "r.json"

    def full_disk(fd: int, mode: str) -> io.BufferedWriter:
        os.close(fd)
        return io.BufferedWriter(_FullDisk())

    monkeypatch.setattr(_outputs.os, "fdopen", full_disk)
    with pytest.raises(OSError) as caught:
        report.save(target)
    assert caught.value.errno == errno.ENOSPC and str(target) in str(caught.value)


def test_report_save_writes_what_load_reads(tmp_path):
    report = cm.evaluate(X, {"en": X, "de": X[::-1].copy()}, device="cpu", progress=False)
    (tmp_path / "r.json").write_text("x" * 100_000)  # an older, longer file: replaced whole
    report.save(tmp_path / "r.json")
    assert cm.Report.load(tmp_path / "r.json").recall() == report.recall()


def test_report_save_refuses_a_fifo_before_anything_is_written(tmp_path):
    report = cm.evaluate(X, {"en": X}, device="cpu", progress=False)
    target = fifo(tmp_path)
    with pytest.raises(cm.InputError, match="FIFO"):
        bounded(lambda: report.save(target))
