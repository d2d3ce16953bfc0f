"""numba's decorator for the package's compiled loops, with their cache in a user folder.

``numba.njit(cache=True)`` keeps what it compiled beside the source, in the package's
own ``__pycache__``. For an installed package that is inside site-packages, where pip
never recorded those files: an uninstall or a reinstall (``pip install .`` and then
``pip install -e .``) leaves a ``ccr_metrics`` folder behind holding only them, and
Python then imports that folder, an empty namespace package, in place of ccr-metrics.

So the loops are cached in a user cache folder instead: ``NUMBA_CACHE_DIR`` where the
user set it (numba's own setting, respected as it is), else ``ccr-metrics/numba`` under
the platform's user cache folder (``$XDG_CACHE_HOME`` or ``~/.cache`` on Linux,
``~/Library/Caches`` on macOS, ``%LOCALAPPDATA%`` on Windows). Where that folder cannot
be written, nothing is cached and each process compiles the loops again; they are never
cached inside the package. The user's own numba functions keep numba's defaults.

Imported only with numba installed.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numba


def jit(**options: Any) -> Any:
    """Return a decorator: ``numba.njit(**options)``, cached in :func:`cache_folder`."""

    def decorate(function: Any) -> Any:
        folder = cache_folder()
        if folder is None:
            return numba.njit(**options)(function)
        # numba picks a function's cache folder when the function is decorated, from
        # numba.config.CACHE_DIR: set for this one decoration and put back at once.
        saved = numba.config.CACHE_DIR
        numba.config.CACHE_DIR = str(folder)
        try:
            return numba.njit(cache=True, **options)(function)
        finally:
            numba.config.CACHE_DIR = saved

    return decorate


def cache_folder() -> Path | None:
    """Return the folder the compiled loops are cached in; None where none can be written."""
    try:
        folder = Path(numba.config.CACHE_DIR) if numba.config.CACHE_DIR else _user_folder()
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except (OSError, RuntimeError):  # RuntimeError: no home folder to be found
        return None
    return folder


def _user_folder() -> Path:
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        # The XDG spec ignores a relative XDG_CACHE_HOME.
        xdg = os.environ.get("XDG_CACHE_HOME", "")
        base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "ccr-metrics" / "numba"
