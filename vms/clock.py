"""Clocks: the scheduler and the fake provider never read the time themselves.

The live service runs on ``SystemClock``; tests and ``schedule_vms --simulate``
run the very same code on a ``VirtualClock`` whose ``sleep`` returns at once
after moving simulated time forward, so three simulated days take seconds.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    def sleep(self, seconds: float) -> None: ...


def _require_aware(value: datetime, what: str) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"{what} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware (got naive {value.isoformat()})")
    return value.astimezone(timezone.utc)


class SystemClock:
    """Real time. ``sleep`` returns early when ``stop_event`` is set.

    The live loop passes an event that shutdown (SIGTERM) or an exam change
    sets, so a long sleep until the next due call never delays either.
    """

    def __init__(self, stop_event: threading.Event | None = None):
        self.stop_event = stop_event

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        if self.stop_event is not None:
            self.stop_event.wait(seconds)
        else:
            time.sleep(seconds)


class VirtualClock:
    """Simulated time: only ``sleep`` and ``advance_to`` move it, instantly."""

    def __init__(self, start: datetime):
        self._now = _require_aware(start, "start")
        self._lock = threading.Lock()

    def now(self) -> datetime:
        return self._now

    def sleep(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"cannot sleep a negative time ({seconds} s)")
        with self._lock:
            self._now = self._now + timedelta(seconds=seconds)

    def advance_to(self, t: datetime) -> None:
        """Move to ``t``; a ``t`` in the past leaves the clock where it is.

        Time never goes backwards, so "advance to the next due moment" is safe
        even when that moment has already passed.
        """
        t = _require_aware(t, "t")
        with self._lock:
            if t > self._now:
                self._now = t

    def __repr__(self) -> str:
        return f"VirtualClock({self._now.isoformat()})"
