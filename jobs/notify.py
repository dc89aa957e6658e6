"""Wake-ups for the workers: a job was queued, a device appeared or changed.

Within one process (``manage.py serve``, tests) a condition variable wakes the
runners at once. Across processes PostgreSQL's LISTEN/NOTIFY carries the same
signal; the worker's listener thread turns it into the local wake-up. Either
way the signal is only sent after the transaction commits, so a woken runner
always sees the new rows.
"""

from __future__ import annotations

import threading

from django.db import connection, transaction

CHANNEL = "qpu_scheduler"

_cond = threading.Condition()
_generation = 0


def wake_local() -> None:
    global _generation
    with _cond:
        _generation += 1
        _cond.notify_all()


def generation() -> int:
    with _cond:
        return _generation


def wait_for_change(seen: int, timeout: float) -> int:
    """Block until the generation moves past ``seen`` or ``timeout`` passes."""
    with _cond:
        _cond.wait_for(lambda: _generation != seen, timeout=timeout)
        return _generation


def _send(payload: str) -> None:
    wake_local()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, payload])


def notify_changed(payload: str = "") -> None:
    """Signal the workers after the current transaction commits."""
    transaction.on_commit(lambda: _send(payload))
