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

import logging
import select
import threading

from django.db import connection, connections, transaction

logger = logging.getLogger(__name__)

CHANNEL = "vm_scheduler"

_cond = threading.Condition()
_generation = 0


def wake_local() -> None:
    """Wake every scheduler loop of this process."""
    global _generation
    with _cond:
        _generation += 1
        _cond.notify_all()


def generation() -> int:
    with _cond:
        return _generation


def wait_for_change(seen: int, timeout: float) -> int:
    """Block until the generation moves past ``seen`` or ``timeout`` seconds pass."""
    with _cond:
        _cond.wait_for(lambda: _generation != seen, timeout=max(0.0, timeout))
        return _generation


def _send(exam_id: int | None) -> None:
    wake_local()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, "" if exam_id is None else str(exam_id)])


def exam_changed(*, exam_id: int | None = None) -> None:
    """An exam was written: wake the schedulers once the transaction commits
    (at once when there is no transaction)."""
    transaction.on_commit(lambda: _send(exam_id))


class Listener(threading.Thread):
    """LISTENs on the scheduler channel on its own connection and wakes the
    local loop on every notification (PostgreSQL only; a no-op elsewhere)."""

    def __init__(self, stop_event: threading.Event, *, poll_seconds: float = 1.0):
        super().__init__(name="vm-scheduler-listener", daemon=True)
        self.stop_event = stop_event
        self.poll_seconds = poll_seconds
        self.listening = threading.Event()

    def run(self) -> None:
        if connections["default"].vendor != "postgresql":
            return
        while not self.stop_event.is_set():
            try:
                self._listen()
            except Exception:  # a dropped connection must not end the wake-ups
                logger.exception("vm scheduler listener failed; reconnecting")
                self.stop_event.wait(2.0)
            finally:
                connections["default"].close()

    def _listen(self) -> None:
        conn = connections["default"]
        conn.ensure_connection()
        raw = conn.connection
        with raw.cursor() as cursor:
            cursor.execute(f"LISTEN {CHANNEL}")
        if not raw.autocommit:
            raw.commit()
        self.listening.set()
        # Anything may have changed while we were not listening.
        wake_local()
        while not self.stop_event.is_set():
            ready, _, _ = select.select([raw], [], [], self.poll_seconds)
            if not ready:
                continue
            raw.poll()
            if raw.notifies:
                raw.notifies.clear()
                wake_local()
