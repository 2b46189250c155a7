"""Rate limiting of the Events that the operator posts about ApiServices."""

from __future__ import annotations

import pytest

from apiservice_operator.observability.events import (
    EVENTS_PER_MINUTE,
    REPEAT_WINDOW_SECONDS,
    EventLimiter,
)


class FakeClock:
    """A monotonic clock that advances only when a test changes `now`."""

    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def limiter(clock: FakeClock) -> EventLimiter:
    return EventLimiter(clock=clock)


def allow_created(limiter: EventLimiter, uid: str = "uid-1", message: str = "Created x.") -> bool:
    return limiter.allow(uid, "Normal", "Created", message)


def test_first_event_is_posted(limiter: EventLimiter) -> None:
    assert allow_created(limiter)
    assert limiter.dropped == 0


def test_repeat_is_dropped_within_window(limiter: EventLimiter, clock: FakeClock) -> None:
    assert allow_created(limiter)
    clock.now += REPEAT_WINDOW_SECONDS - 1

    assert not allow_created(limiter)
    assert limiter.dropped == 1


def test_repeat_is_posted_after_window(limiter: EventLimiter, clock: FakeClock) -> None:
    assert allow_created(limiter)
    clock.now += REPEAT_WINDOW_SECONDS

    assert allow_created(limiter)
    assert limiter.dropped == 0


def test_repeat_key_includes_every_part(limiter: EventLimiter) -> None:
    assert limiter.allow("uid-1", "Warning", "MissingReference", "Secret a is not found.")

    assert limiter.allow("uid-2", "Warning", "MissingReference", "Secret a is not found.")
    assert limiter.allow("uid-1", "Normal", "MissingReference", "Secret a is not found.")
    assert limiter.allow("uid-1", "Warning", "TransientError", "Secret a is not found.")
    assert limiter.allow("uid-1", "Warning", "MissingReference", "Secret b is not found.")
    assert limiter.dropped == 0


def test_per_minute_cap_per_object(limiter: EventLimiter, clock: FakeClock) -> None:
    for index in range(EVENTS_PER_MINUTE):
        assert allow_created(limiter, message=f"Created {index}."), index
        clock.now += 1

    assert not allow_created(limiter, message="Created one too many.")
    assert allow_created(limiter, uid="uid-2", message="Created one too many.")
    assert limiter.dropped == 1


def test_per_minute_cap_slides(limiter: EventLimiter, clock: FakeClock) -> None:
    for index in range(EVENTS_PER_MINUTE):
        assert allow_created(limiter, message=f"Created {index}.")
    clock.now += 59
    assert not allow_created(limiter, message="Created late.")

    clock.now += 1

    assert allow_created(limiter, message="Created later.")


def test_forget_clears_history(limiter: EventLimiter) -> None:
    for index in range(EVENTS_PER_MINUTE):
        assert allow_created(limiter, message=f"Created {index}.")

    limiter.forget("uid-1")

    assert allow_created(limiter, message="Created 0.")
    assert "uid-1" in limiter.recent
    assert all(key[0] == "uid-1" for key in limiter.last_posted)
    assert len(limiter.last_posted) == 1
