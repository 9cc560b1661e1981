"""Polling with a deadline: the one way e2e tests wait for something to become true."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeoutError(AssertionError):
    """The condition did not hold in time (an assertion failure, so pytest shows it as one)."""


def wait_for(
    probe: Callable[[], T | None],
    *,
    timeout: float = 15.0,
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    """Call ``probe`` until it returns something truthy and return that; else raise.

    Exceptions from ``probe`` count as "not yet" until the deadline, then the last one is
    chained to the :class:`WaitTimeoutError`.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    last_value: T | None = None
    while True:
        try:
            last_value = probe()
            if last_value:
                return last_value
        except Exception as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            message = f"{what} not met within {timeout:.1f} s (last value: {last_value!r})"
            raise WaitTimeoutError(message) from last_error
        time.sleep(interval)
