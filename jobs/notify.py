"""Wake-ups for the QPU workers: a job was queued, a device appeared or changed.

See ``core.wakeups``: in-process at once, across processes through
PostgreSQL LISTEN/NOTIFY, always after the transaction commits.
"""

from __future__ import annotations

from core.wakeups import Wakeup

CHANNEL = "qpu_scheduler"

_wakeup = Wakeup(CHANNEL)
wake_local = _wakeup.wake_local
generation = _wakeup.generation
wait_for_change = _wakeup.wait_for_change


def notify_changed(payload: str = "") -> None:
    """Signal the workers after the current transaction commits."""
    _wakeup.send_on_commit(payload)


def job_queued() -> None:
    """Signal the workers after the current transaction commits, for the
    single-job submissions that many clients send at once: their NOTIFYs are
    coalesced (``core.wakeups.Wakeup.broadcast``)."""
    _wakeup.broadcast_on_commit()


def listener(stop_event):
    """A thread turning other processes' notifications into local wake-ups."""
    from core.wakeups import Listener

    return Listener(_wakeup, stop_event)
