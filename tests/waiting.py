"""A bound on calls that could block, shared by the test files that probe special files."""

import signal
from collections.abc import Callable
from typing import Any


def bounded(call: Callable[[], Any], seconds: int = 20) -> Any:
    """Run ``call``; a call that blocks fails with TimeoutError instead of hanging the suite."""

    def expire(signum: int, frame: Any) -> None:
        raise TimeoutError(f"still waiting after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        return call()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
