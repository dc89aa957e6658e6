"""Planner time: integer milliseconds since the epoch, and the conversions.

The model adds 6 s tens of thousands of times and compares instants for
equality (a VM ready exactly at the exam's start counts), which floats would
get wrong; so everything inside the planner is an ``int`` of milliseconds.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

SECOND_MS = 1_000
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def to_ms(value: datetime) -> int:
    """Aware datetime -> integer ms since the epoch (sub-ms parts rounded up,
    so an instant is never taken to be earlier than it is)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"time must be timezone-aware, got naive {value.isoformat()}")
    delta = value - _EPOCH
    us = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return -(-us // 1_000)


def to_ms_floor(value: datetime) -> int:
    """Aware datetime -> integer ms since the epoch, sub-ms parts rounded *down*.

    For deadlines (an exam's start): a VM planned ready at the rounded-down
    instant is ready by the true one, so no VM is ever late by rounding
    (10:00:00.0005 plans for 10:00:00.000, not .001). "Now" and exam ends
    round up (``to_ms``): an instant is never taken to be earlier than it is,
    so nothing is stopped before an exam ends."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"time must be timezone-aware, got naive {value.isoformat()}")
    delta = value - _EPOCH
    us = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return us // 1_000


def from_ms(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def iso_ms(ms: int) -> str:
    """ms -> ISO 8601 UTC with a Z, to the millisecond (log lines, API)."""
    return from_ms(ms).isoformat(timespec="milliseconds").replace("+00:00", "Z")
