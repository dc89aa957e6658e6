"""Instants of the provider model as integer microseconds since the epoch.

The model adds 6 s tens of thousands of times and compares instants for
equality (a VM ready at exactly 60 s counts "after 1 minute"): integers keep
that exact, floats would drift. Every module of the model (queue, rate
windows, fake) speaks these units, so they live here once.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

__all__ = ["NEG", "SECOND", "from_us", "seconds_to_us", "to_us"]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_US = timedelta(microseconds=1)

SECOND = 1_000_000
NEG = -(1 << 100)  # below any real instant: "never" / the identity of the queue algebra


def to_us(value: datetime) -> int:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"time must be timezone-aware, got naive {value.isoformat()}")
    return (value - _EPOCH) // _US


def from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def seconds_to_us(seconds: float, what: str) -> int:
    us = round(float(seconds) * SECOND)
    if us <= 0:
        raise ValueError(f"{what} must be positive, got {seconds!r}")
    return us
