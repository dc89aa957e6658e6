"""Wake-ups for long loops: "something changed, look again now".

One ``Wakeup`` per loop kind (the QPU workers, the VM scheduler). Within one
process a condition variable wakes the loops at once; across processes a
PostgreSQL ``NOTIFY`` on the wake-up's channel carries the same signal, and a
``Listener`` thread (its own connection, ``LISTEN``, ``select()`` on the
socket) turns it back into the local wake-up. Signals go out only after the
sending transaction commits, so a woken loop always sees the new rows.

A loop reads ``generation()`` before looking for work and, finding none,
waits with ``wait_for_change(seen, timeout)``: a signal sent in between is
never lost.
"""

from __future__ import annotations

import logging
import select
import threading

from django.db import DatabaseError, connection, connections, transaction

logger = logging.getLogger(__name__)


class Wakeup:
    def __init__(self, channel: str):
        self.channel = channel
        self._cond = threading.Condition()
        self._generation = 0
        self._send_lock = threading.Lock()
        self._sending = False  # a thread of this process is sending a NOTIFY
        self._again = False  # ... and must send one more when it is done

    def wake_local(self) -> None:
        with self._cond:
            self._generation += 1
            self._cond.notify_all()

    def generation(self) -> int:
        with self._cond:
            return self._generation

    def wait_for_change(self, seen: int, timeout: float) -> int:
        """Block until the generation moves past ``seen`` or ``timeout`` passes."""
        with self._cond:
            self._cond.wait_for(lambda: self._generation != seen, timeout=max(0.0, timeout))
            return self._generation

    def send(self, payload: str = "") -> None:
        """Wake this process's loops and, on PostgreSQL, every other process's."""
        self.wake_local()
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_notify(%s, %s)", [self.channel, payload])

    def broadcast(self) -> None:
        """``send`` for many threads at once: this process's loops wake at
        once, and one NOTIFY is sure to start after this call - sent by this
        thread, or by the thread already sending, which then sends once more
        for all who asked meanwhile. A burst of submissions sends a few
        NOTIFYs instead of one each, each in a transaction of its own that
        writes nothing (so it waits for no WAL flush while it holds
        PostgreSQL's notification-queue lock). Failing, it logs: a loop
        not woken looks again within its idle wait."""
        self.wake_local()
        if connection.vendor != "postgresql":
            return
        with self._send_lock:
            if self._sending:
                self._again = True
                return
            self._sending = True
        try:
            while True:
                self._notify()
                with self._send_lock:
                    if not self._again:
                        self._sending = False
                        return
                    self._again = False
        except DatabaseError:
            with self._send_lock:
                self._sending = False
            logger.warning("NOTIFY on %s failed; the loops look again within their idle wait", self.channel)

    def _notify(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, '')", [self.channel])

    def broadcast_on_commit(self) -> None:
        """``broadcast`` once the current transaction commits (at once outside
        one; never if it rolls back)."""
        transaction.on_commit(self.broadcast)

    def send_on_commit(self, payload: str = "") -> None:
        """``send`` once the current transaction commits (at once outside one;
        never if it rolls back)."""
        transaction.on_commit(lambda: self.send(payload))


class Listener(threading.Thread):
    """Turns NOTIFYs on a wake-up's channel from other processes into local
    wake-ups (PostgreSQL only; returns at once elsewhere)."""

    def __init__(self, wakeup: Wakeup, stop_event: threading.Event, *, poll_seconds: float = 1.0):
        super().__init__(name=f"listen-{wakeup.channel}", daemon=True)
        self.wakeup = wakeup
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
                logger.exception("listener on %s failed; reconnecting", self.wakeup.channel)
                self.stop_event.wait(2.0)
            finally:
                connections["default"].close()

    def _listen(self) -> None:
        conn = connections["default"]
        conn.ensure_connection()
        raw = conn.connection
        with raw.cursor() as cursor:
            cursor.execute(f"LISTEN {self.wakeup.channel}")
        if not raw.autocommit:
            raw.commit()
        self.listening.set()
        # Anything may have changed while we were not listening.
        self.wakeup.wake_local()
        while not self.stop_event.is_set():
            if not select.select([raw], [], [], self.poll_seconds)[0]:
                continue
            raw.poll()
            if raw.notifies:
                raw.notifies.clear()
                self.wakeup.wake_local()
