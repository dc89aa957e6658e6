"""Run the workers alone: QPU job dispatch, django-q2 tasks, VM scheduler."""

from __future__ import annotations

import threading

from django.core.management.base import BaseCommand

from core.secret_key import require_configured_secret_key
from config.stack import install_stop_signals, start_stack


class Command(BaseCommand):
    help = "Run the QPU workers, the django-q2 cluster (webhooks) and the VM scheduler until SIGINT/SIGTERM."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Run every job devices can take now, then exit.")
        parser.add_argument("--no-vm-scheduler", action="store_true")
        parser.add_argument("--no-task-cluster", action="store_true")

    def handle(self, *args, once: bool, no_vm_scheduler: bool, no_task_cluster: bool, **options):
        if once:
            from jobs.runner import Worker

            done = Worker(listen=False).run_once()
            self.stdout.write(f"ran {done} job(s)")
            return
        require_configured_secret_key(stderr=self.stderr)  # the service; --once is a one-off
        stop = threading.Event()
        install_stop_signals(stop)
        stack = start_stack(vm_scheduler=not no_vm_scheduler, task_cluster=not no_task_cluster)
        self.stdout.write("workers running; Ctrl-C to stop")
        try:
            while not stop.wait(0.5):
                if any(not t.is_alive() for t in stack.threads):
                    self.stderr.write("a worker thread died; stopping")
                    break
        finally:
            stack.stop()
        self.stdout.write("workers stopped")
