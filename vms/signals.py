"""Wake-ups for the VM scheduler: an exam was created, changed or deleted.

``exam_changed`` is called by the exams app after every write. Within one
process a condition variable wakes the live loop at once; across processes
PostgreSQL's LISTEN/NOTIFY carries the same signal and ``Listener`` (a thread
of ``schedule_vms``) turns it into the local wake-up. The signal goes out only
after the transaction commits, so a woken scheduler always sees the new rows.
Changes that bypass the app (SQL, another tool) are caught by the loop's
periodic check of the exams table (count and latest ``updated_at``).
"""

from __future__ import annotations

from core.wakeups import Listener as _Listener
from core.wakeups import Wakeup

CHANNEL = "vm_scheduler"

_wakeup = Wakeup(CHANNEL)
wake_local = _wakeup.wake_local
generation = _wakeup.generation
wait_for_change = _wakeup.wait_for_change


def exam_changed(*, exam_id: int | None = None) -> None:
    """An exam was written: wake the schedulers once the transaction commits
    (at once when there is no transaction)."""
    _wakeup.send_on_commit("" if exam_id is None else str(exam_id))


class Listener(_Listener):
    """LISTENs on the scheduler channel and wakes the local loop."""

    def __init__(self, stop_event, *, poll_seconds: float = 1.0):
        super().__init__(_wakeup, stop_event, poll_seconds=poll_seconds)


def on_exam_changed(sender, *, exam_id: int | None = None, **kwargs) -> None:
    """``exams.signals.exam_changed`` receiver (connected in ``VmsConfig.ready()``)."""
    exam_changed(exam_id=exam_id)
