"""The VM scheduler as a django-q2 task, so ``runworkers`` / ``serve`` run it
without a separate ``schedule_vms`` process.

django-q2 schedules fire at most once a minute, and only every ~30 s are they
checked, while VM requests are due every 6 s. So the task *is* the live loop,
run for a bounded time (``VM_TASK_RUN_SECONDS``, default 100 s, under the
cluster's 120 s task timeout), after which it queues its own successor; the
successor waits briefly for the scheduler lock, so the hand-over costs well
under a second. A one-minute ``Schedule`` (``ensure_schedule``) is the
watchdog that restarts the chain if a worker died: a run that finds the lock
held by a live scheduler (the chain, or a ``schedule_vms`` process) returns
at once, so running both is safe - exactly one of them acts.
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings

from vms import signals
from vms.scheduler import live_scheduler

logger = logging.getLogger(__name__)

TASK = "vms.tasks.schedule_vms_pass"
SCHEDULE_NAME = "VM scheduler (watchdog)"


def schedule_vms_pass(*, run_seconds: float | None = None, chain: bool = True, lock_wait_seconds: float = 0.0) -> str:
    """Run the live scheduler loop for up to ``run_seconds``; with ``chain``,
    queue the next run before returning. Returns a one-line summary."""
    run_seconds = float(getattr(settings, "VM_TASK_RUN_SECONDS", 100) if run_seconds is None else run_seconds)
    scheduler = live_scheduler()
    deadline = time.monotonic() + lock_wait_seconds
    while True:
        held, _fresh = scheduler.lock.acquire()
        if held or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    if not scheduler.lock.held:
        return "another VM scheduler holds the lock; nothing to do"
    stop_event = threading.Event()
    listener = signals.Listener(stop_event)
    listener.start()
    try:
        until = scheduler.now_ms() + int(run_seconds * 1000)
        scheduler.run_forever(stop_event=stop_event, until=until)
    finally:
        stop_event.set()
        if chain:
            # queued while we still hold the lock: the successor waits for it
            _queue_successor(run_seconds)
        scheduler.close()
    s = scheduler.stats
    return f"{s.starts} starts, {s.stops} stops, {s.assigns} assigns, {s.rate_limited} rate-limited, {s.errors} errors"


def _queue_successor(run_seconds: float) -> None:
    try:
        from django_q.tasks import async_task

        async_task(TASK, run_seconds=run_seconds, chain=True, lock_wait_seconds=10.0, group="vm-scheduler")
    except Exception:  # the watchdog schedule restarts the chain within a minute
        logger.exception("could not queue the next VM scheduler run")


def ensure_schedule() -> bool:
    """Create (or repair) the one-minute watchdog schedule; idempotent.
    Returns True when it created or changed the row. Call it from ``serve`` /
    ``runworkers`` at start-up."""
    from django_q.models import Schedule

    wanted = {"func": TASK, "schedule_type": Schedule.MINUTES, "minutes": 1, "repeats": -1}
    schedule = Schedule.objects.filter(name=SCHEDULE_NAME).first()
    if schedule is None:
        Schedule.objects.create(name=SCHEDULE_NAME, **wanted)
        return True
    changed = False
    for field, value in wanted.items():
        if getattr(schedule, field) != value:
            setattr(schedule, field, value)
            changed = True
    if changed:
        schedule.save()
    return changed
