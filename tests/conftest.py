import functools
import os
import subprocess
import sys
from pathlib import Path

import early
import pytest
import torch
from gloo import ProcessPool
from hypothesis import HealthCheck, settings

# The same budget everywhere, so that the suite takes the time the README says: CI
# draws fixed examples (a failure there reproduces), a local run fresh ones each time.
# No deadline: the first call of a torch op can be slow for reasons unrelated to the
# code under test.
settings.register_profile(
    "ci",
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=40, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def pytest_collection_modifyitems(items):
    # The tests that read work started early (the early_work fixture) run after all the
    # others, in their order, so that the work has the session to get done.
    items.sort(key=lambda item: "early_work" in getattr(item, "fixturenames", ()))


_WARMING: list[subprocess.Popen] = []


def pytest_configure(config):
    """Compile the numba loops into numba's cache in the background (see warm_kernels.py),
    from the start: collection leaves the second core idle for seconds."""
    if not config.option.collectonly:
        here = Path(__file__).parent
        paths = [str(here.parent), os.environ.get("PYTHONPATH", "")]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
        _WARMING.append(
            subprocess.Popen(
                [sys.executable, str(here / "warm_kernels.py")],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )


def pytest_collection_finish(session):
    """Start the slow work that the modules of the selected tests registered (see early.py)."""
    if not session.config.option.collectonly:
        early.start(session.items)


def pytest_sessionfinish(session):
    early.stop()
    for process in _WARMING:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def early_work(request):
    """``with early_work(starter) as handle``: take the work a module started early (early.py)."""
    return functools.partial(early.started, items=request.session.items)


@pytest.fixture(scope="session")
def gloo_pool():
    """Processes for the multi-process tests, spawned once per session (see gloo.py)."""
    pool = ProcessPool()
    yield pool
    pool.close()


@pytest.fixture
def one_thread():
    """torch on one thread for the duration of the test, then as many as before.

    For a serial code path, or for a loop of thousands of calls on a few dozen numbers:
    there a second thread costs more than the work, and on a busy machine each call can
    wait milliseconds for it.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
