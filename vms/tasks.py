"""The live VM loop: one implementation (``vm_loop_run``), two ways in.

1. **Inside the task cluster** (the default: ``runworkers`` and ``serve`` run
   it through their ``task-cluster`` role). django-q2 schedules fire at most
   once a minute and are checked about every 30 s, while VM requests are due
   every 6 s, so the task *is* the loop, run for a bounded time
   (``VM_TASK_RUN_SECONDS``, 100 s, under the cluster's 120 s task timeout):

   - **Hand-over.** When its time is up, a run that acted releases the
     scheduler lock and queues its successor, which waits up to 10 s for the
     lock: the hand-over costs well under a second.
     A run that did not get the lock queues nothing: there is never more than
     one chain.
   - **Watchdog.** A one-minute ``Schedule`` (``ensure_schedule``) runs the
     same task. When the chain broke (its worker was killed, the queue lost
     the successor) the watchdog's run gets the lock and starts a new chain;
     otherwise it finds the lock held and returns at once.
   - **Start and stop.** The ``task_cluster`` command queues one run when it
     starts (no wait for the watchdog) and, when it stops, asks the run in
     progress to end now (``arm_cluster_stop``) instead of after up to 100 s;
     that run still queues its successor, which another cluster (or this one
     when it starts again) picks up.

2. **Alone**, ``manage.py schedule_vms``: the same loop without a time bound,
   as a standby while another scheduler holds the lock.

Running both is safe: the scheduler lock (``vms.scheduler.SchedulerLock``)
lets exactly one loop act.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time

from django.conf import settings

from vms import signals
from vms.scheduler import Scheduler, live_scheduler

logger = logging.getLogger(__name__)

TASK = "vms.tasks.schedule_vms_pass"
SCHEDULE_NAME = "VM scheduler (watchdog)"
SUCCESSOR_LOCK_WAIT_SECONDS = 10.0

# Set by the task cluster's main process when it stops; created there before
# django-q2 forks its worker processes, which inherit it (``arm_cluster_stop``).
_cluster_stopping = None


def vm_loop_run(
    *,
    stop_event: threading.Event,
    run_seconds: float | None = None,
    lock_wait_seconds: float | None = None,
    scheduler: Scheduler | None = None,
) -> Scheduler | None:
    """Run the live VM loop in this process until ``stop_event`` is set (or
    ``run_seconds`` passed). ``lock_wait_seconds=None``: wait as a standby for
    as long as it takes; a number: return None at once if the scheduler lock
    is not ours within that time. Returns the scheduler (its ``stats``)."""
    scheduler = scheduler or live_scheduler()
    try:
        if lock_wait_seconds is not None and not _take_lock(scheduler, lock_wait_seconds, stop_event):
            return None
        signals.Listener(stop_event).start()  # NOTIFY from other processes -> wake-up; ends with stop_event
        until = None if run_seconds is None else scheduler.now_ms() + int(run_seconds * 1000)
        scheduler.run_forever(stop_event=stop_event, until=until)
    finally:
        stop_event.set()
        scheduler.close()
    return scheduler


def _take_lock(scheduler: Scheduler, wait_seconds: float, stop_event: threading.Event) -> bool:
    deadline = time.monotonic() + wait_seconds
    while True:
        held, _fresh = scheduler.lock.acquire()
        if held or time.monotonic() >= deadline or stop_event.is_set():
            return held
        time.sleep(0.05)


def schedule_vms_pass(*, run_seconds: float | None = None, chain: bool = True, lock_wait_seconds: float = 0.0) -> str:
    """The django-q2 task: ``vm_loop_run`` for up to ``run_seconds``; with
    ``chain``, a run that acted queues the next one. Returns a one-line summary."""
    run_seconds = float(getattr(settings, "VM_TASK_RUN_SECONDS", 100) if run_seconds is None else run_seconds)
    stop_event = threading.Event()
    _stop_with_the_cluster(stop_event)
    scheduler = vm_loop_run(stop_event=stop_event, run_seconds=run_seconds, lock_wait_seconds=lock_wait_seconds)
    if scheduler is None:
        return "another VM scheduler holds the lock; nothing to do"
    if chain:
        _queue_successor(run_seconds)
    s = scheduler.stats
    return f"{s.starts} starts, {s.stops} stops, {s.assigns} assigns, {s.rate_limited} rate-limited, {s.errors} errors"


def queue_run(*, run_seconds: float | None = None, lock_wait_seconds: float = 0.0) -> None:
    """Queue one run of the loop now (the task cluster does at start-up)."""
    from django_q.tasks import async_task

    # No ``chain=`` here: it is one of django-q2's own options (a list of
    # follow-up tasks), not our keyword; the task chains by default.
    async_task(TASK, run_seconds=run_seconds, lock_wait_seconds=lock_wait_seconds, group="vm-scheduler")


def _queue_successor(run_seconds: float) -> None:
    try:
        queue_run(run_seconds=run_seconds, lock_wait_seconds=SUCCESSOR_LOCK_WAIT_SECONDS)
    except Exception:  # the watchdog schedule restarts the chain within a minute
        logger.exception("could not queue the next VM scheduler run")


def arm_cluster_stop():
    """Call in the task cluster's main process *before* it forks (django-q2
    ``Cluster.start``); returns the function that, called when the cluster
    stops, ends the VM loop runs in progress in its worker processes."""
    global _cluster_stopping
    _cluster_stopping = multiprocessing.get_context("fork").Event()
    return _cluster_stopping.set


def _stop_with_the_cluster(stop_event: threading.Event) -> None:
    stopping = _cluster_stopping
    if stopping is None:  # not under our task_cluster command (e.g. Q_SYNC, a test)
        return

    def watch() -> None:
        while not stop_event.is_set():
            if stopping.wait(0.5):
                logger.info("the task cluster is stopping: ending this VM scheduler run")
                stop_event.set()
                signals.wake_local()
                return

    threading.Thread(target=watch, name="vm-task-stop", daemon=True).start()


def ensure_schedule() -> bool:
    """Create (or repair) the one-minute watchdog schedule; idempotent.
    Returns True when it created or changed the row. The task cluster calls
    it at start-up."""
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
