import os

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
