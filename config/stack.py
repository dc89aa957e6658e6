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
        for thread in self.threads:
            thread.join(timeout=15)
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
    if qpu_workers:
        from jobs.runner import Worker

        worker = Worker()
        thread = threading.Thread(target=worker.run, name="qpu-worker", daemon=True)
        thread.start()
        stack.threads.append(thread)
        stack.stoppers.append(worker.stop)
    if vm_scheduler:
        try:
            from vms.scheduler import start_in_thread
        except ImportError:
            start_in_thread = None
        if start_in_thread is not None:
            thread, stop = start_in_thread()
            stack.threads.append(thread)
            stack.stoppers.append(stop)
    return stack


def install_stop_signals(stop_event: threading.Event) -> None:
    """SIGINT and SIGTERM both ask for a clean stop."""
    import signal

    def handler(signum, frame):
        logger.info("signal %s: stopping", signal.Signals(signum).name)
        stop_event.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
