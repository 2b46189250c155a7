"""Rate limiting of Kubernetes Events, so that a failing loop cannot flood the API server."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

# An identical event (same object, type, reason and message) is posted at most once per window.
REPEAT_WINDOW_SECONDS = 300.0
# Each object gets at most this many events per minute, whatever their content.
EVENTS_PER_MINUTE = 10


@dataclass
class EventLimiter:
    """Decides whether an event may be posted now; it counts what it drops."""

    clock: Callable[[], float] = time.monotonic
    repeat_window: float = REPEAT_WINDOW_SECONDS
    per_minute: int = EVENTS_PER_MINUTE
    last_posted: dict[tuple[str, str, str, str], float] = field(default_factory=dict)
    recent: dict[str, list[float]] = field(default_factory=dict)
    dropped: int = 0

    def allow(self, uid: str, type: str, reason: str, message: str) -> bool:
        """Tell whether to post this event, and record it as posted when so."""
        now = self.clock()
        key = (uid, type, reason, message)
        last = self.last_posted.get(key)
        times = [t for t in self.recent.get(uid, []) if now - t < 60.0]
        if (last is not None and now - last < self.repeat_window) or len(times) >= self.per_minute:
            self.dropped += 1
            self.recent[uid] = times
            return False
        self.last_posted[key] = now
        self.recent[uid] = [*times, now]
        return True

    def forget(self, uid: str) -> None:
        """Drop the history of a deleted object."""
        self.recent.pop(uid, None)
        for key in [key for key in self.last_posted if key[0] == uid]:
            del self.last_posted[key]
