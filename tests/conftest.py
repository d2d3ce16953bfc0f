import os

import pytest
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
