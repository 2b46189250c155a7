"""Bounded waits: every wait in the tests has a deadline and names what it waited for."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

DEFAULT_INTERVAL = 0.25


class WaitTimeoutError(AssertionError):
    """A condition did not hold before its deadline; the message names it and the last value."""


def wait_for(
    probe: Callable[[], T],
    *,
    timeout: float,
    description: str,
    interval: float = DEFAULT_INTERVAL,
) -> T:
    """Call `probe` until it returns a truthy value and return that value.

    Exceptions from `probe` count as "not yet", so a probe may read an object that does not
    exist yet. The last value or exception is part of the timeout message.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = probe()
        except Exception as error:  # Any failure means "not yet".
            last = error
        else:
            if value:
                return value
            last = value
        if time.monotonic() >= deadline:
            raise WaitTimeoutError(
                f"timed out after {timeout}s waiting for {description}; last: {last!r}"
            )
        time.sleep(interval)


async def async_wait_for(
    probe: Callable[[], Awaitable[T]],
    *,
    timeout: float,  # noqa: ASYNC109 - a deadline per call is what this helper offers
    description: str,
    interval: float = DEFAULT_INTERVAL,
) -> T:
    """Await `probe` until it returns a truthy value, as `wait_for` does, without blocking."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = await probe()
        except Exception as error:  # Any failure means "not yet".
            last = error
        else:
            if value:
                return value
            last = value
        if time.monotonic() >= deadline:
            raise WaitTimeoutError(
                f"timed out after {timeout}s waiting for {description}; last: {last!r}"
            )
        await asyncio.sleep(interval)
