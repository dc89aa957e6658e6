"""The ``task-cluster`` role: a django-q2 cluster, with the schedules it needs.

It runs webhook deliveries, the task cluster's heartbeat and the live VM
loop (a chained task: vms/tasks.py). Unlike ``manage.py qcluster`` it

- installs (or repairs) its one-minute schedules at every start: the
  heartbeat that /readyz reads, and the VM loop's watchdog;
- queues one heartbeat and one VM loop run at once, so a fresh start is
  ready in seconds rather than after the scheduler's first minute;
- on SIGINT/SIGTERM ends the VM loop run in progress promptly (it would
  otherwise hold the cluster's stop for up to ``VM_TASK_RUN_SECONDS``);
- exits with status 1 when django-q2's sentinel process dies, so its
  supervisor restarts it.
"""

from __future__ import annotations

import logging
import threading

from django.core.management.base import BaseCommand
from django.db import connections

from core.heartbeats import ensure_heartbeat_schedule
from core.secret_key import require_configured_secret_key
from core.stopping import install_stop_signals

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Run the django-q2 task cluster (webhooks, heartbeat, the VM scheduler loop) until SIGINT/SIGTERM."

    def add_arguments(self, parser):
        parser.add_argument(
            "--no-vm-scheduler",
            action="store_true",
            help="Do not install or start the VM loop (run `schedule_vms` elsewhere); a watchdog schedule installed earlier stays.",
        )

    def handle(self, *args, no_vm_scheduler: bool, **options):
        require_configured_secret_key(stderr=self.stderr)
        from django_q.cluster import Cluster
        from django_q.tasks import async_task

        from vms import tasks as vm_tasks

        ensure_heartbeat_schedule()
        if not no_vm_scheduler:
            vm_tasks.ensure_schedule()
        stop_vm_runs = vm_tasks.arm_cluster_stop()  # before the fork: the workers inherit it
        connections.close_all()  # no socket shared with the forked processes
        cluster = Cluster()
        cluster.start()
        stop = threading.Event()
        # Cluster() installed its own SIGINT/SIGTERM handlers; ours replace
        # them, after the fork (the watcher thread must not exist at a fork).
        install_stop_signals(stop, on_stop=stop_vm_runs)
        async_task("core.heartbeats.task_cluster_beat", group="heartbeat")
        if not no_vm_scheduler:
            vm_tasks.queue_run()
        self.stdout.write("task cluster running; Ctrl-C to stop")
        self.stdout.flush()
        while not stop.wait(1.0):
            if not cluster.sentinel.is_alive():
                logger.error("the django-q2 sentinel died (exit code %s)", cluster.sentinel.exitcode)
                raise SystemExit(1)
        cluster.stop()
        self.stdout.write("task cluster stopped")
