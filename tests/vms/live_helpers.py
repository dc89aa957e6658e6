"""The live VM scheduler loop in a thread of the test, started and stopped as
one (tests of the live loop and of its heartbeat)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connections

from vms import signals
from vms.clock import SystemClock
from vms.providers.fake import FakeProvider
from vms.scheduler import Scheduler, live_scheduler


@contextmanager
def running_live_scheduler(*, max_sleep_s: float = 30) -> Iterator[dict[str, Scheduler]]:
    """Yields ``{"scheduler": ...}``, filled once the thread has built it; on
    leaving, stops the loop, wakes it and joins the thread (which closes its
    database connections)."""
    stop = threading.Event()
    clock = SystemClock()
    holder: dict[str, Scheduler] = {}

    def run() -> None:
        try:
            scheduler = live_scheduler(clock=clock, provider=FakeProvider(clock=clock))
            holder["scheduler"] = scheduler
            try:
                scheduler.run_forever(stop_event=stop, max_sleep_s=max_sleep_s)
            finally:
                scheduler.close()
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, name="test-vm-scheduler")
    thread.start()
    try:
        yield holder
    finally:
        stop.set()
        signals.wake_local()
        thread.join(timeout=10)
    assert not thread.is_alive(), "the live scheduler did not stop"
