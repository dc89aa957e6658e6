"""The background parts of the service, started and stopped as one.

``serve`` runs them next to the HTTP server, ``runworkers`` alone. Order
matters: django-q2 forks its cluster processes, so it starts before any of our
threads exist, and database connections are closed before the fork so parent
and children never share a socket.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from django.db import connections

from core.heartbeats import ensure_heartbeat_schedule

logger = logging.getLogger(__name__)


@dataclass
class Stack:
    cluster: object | None = None
    threads: list[threading.Thread] = field(default_factory=list)
    stoppers: list = field(default_factory=list)

    def stop(self) -> None:
        for stop in self.stoppers:
            try:
                stop()
            except Exception:
                logger.exception("error while stopping")
        from django.conf import settings

        # The worker may take its grace period, then a few seconds to hand
        # back jobs and release its devices: wait for all of it.
        for thread in self.threads:
            thread.join(timeout=settings.WORKER_SHUTDOWN_GRACE_SECONDS + 15)
        if self.cluster is not None:
            try:
                self.cluster.stop()
            except Exception:
                logger.exception("error while stopping the django-q2 cluster")


def start_stack(*, qpu_workers: bool = True, vm_scheduler: bool = True, task_cluster: bool = True) -> Stack:
    import signal

    stack = Stack()
    if task_cluster:
        from django_q.cluster import Cluster

        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        connections.close_all()
        cluster = Cluster()
        # Cluster() installs its own SIGINT/SIGTERM handlers; the command that
        # owns this process keeps its own, and stops the cluster itself.
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        cluster.start()
        stack.cluster = cluster
        try:
            ensure_heartbeat_schedule()
        except Exception:
            logger.exception("could not install the task cluster's heartbeat schedule")
    if qpu_workers:
        from jobs.runner import Worker

        worker = Worker()
        thread = threading.Thread(target=worker.run, name="qpu-worker", daemon=True)
        thread.start()
        stack.threads.append(thread)
        stack.stoppers.append(worker.stop)
    if vm_scheduler:
        thread, stop = start_vm_scheduler()
        stack.threads.append(thread)
        stack.stoppers.append(stop)
    return stack


def start_vm_scheduler() -> tuple[threading.Thread, object]:
    """The live VM scheduler loop in a thread of this process.

    Only one scheduler acts at a time (advisory lock); a second one waits as a
    standby. The django-q2 watchdog schedule is installed too: it runs the
    loop from the task cluster whenever no scheduler holds the lock.
    """
    from vms import signals as vm_signals
    from vms.scheduler import live_scheduler
    from vms.tasks import ensure_schedule

    stop_event = threading.Event()

    def loop() -> None:
        vm_signals.Listener(stop_event).start()
        scheduler = live_scheduler()
        try:
            scheduler.run_forever(stop_event=stop_event)
        finally:
            scheduler.close()
            connections.close_all()

    try:
        ensure_schedule()
    except Exception:
        logger.exception("could not install the VM scheduler's django-q2 watchdog schedule")
    thread = threading.Thread(target=loop, name="vm-scheduler", daemon=True)
    thread.start()

    def stop() -> None:
        stop_event.set()
        vm_signals.wake_local()

    return thread, stop


def install_stop_signals(stop_event: threading.Event) -> None:
    """SIGINT and SIGTERM both ask for a clean stop."""
    import signal

    def handler(signum, frame):
        logger.info("signal %s: stopping", signal.Signals(signum).name)
        stop_event.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
