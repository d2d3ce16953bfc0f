import os

from hypothesis import HealthCheck, settings

# CI runs a fixed, smaller budget; locally a few more examples. No deadline: the
# first call of a torch op can be slow for reasons unrelated to the code under test.
settings.register_profile(
    "ci",
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))
