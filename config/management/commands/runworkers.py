"""Run the background roles, no HTTP: the QPU workers and the task cluster
(which runs webhooks and the VM scheduler loop), each a supervised child
process restarted with backoff when it dies (config/supervisor.py)."""

from __future__ import annotations

import threading

from django.core.management.base import BaseCommand, CommandError

from config.supervisor import Supervisor, service_roles, supervisor_options
from core.secret_key import require_configured_secret_key
from core.stopping import install_stop_signals


class Command(BaseCommand):
    help = "Run the QPU workers and the django-q2 task cluster (webhooks, VM scheduler) until SIGINT/SIGTERM."

    def add_arguments(self, parser):
        parser.add_argument(
            "--once", action="store_true", help="Run every job devices can take now, in this process, then exit."
        )
        parser.add_argument("--no-qpu-workers", action="store_true", help="Leave out the qpu-workers role.")
        parser.add_argument(
            "--no-task-cluster", action="store_true", help="Leave out the task-cluster role (webhooks, VM loop)."
        )
        parser.add_argument(
            "--no-vm-scheduler",
            action="store_true",
            help="The task cluster does not start the VM loop (run `schedule_vms` instead).",
        )

    def handle(self, *args, once: bool, no_qpu_workers: bool, no_task_cluster: bool, no_vm_scheduler: bool, **options):
        if once:
            from jobs.runner import Worker

            done = Worker(listen=False).run_once()
            self.stdout.write(f"ran {done} job(s)")
            return
        require_configured_secret_key(stderr=self.stderr)  # the service; --once is a one-off
        roles = service_roles(
            qpu_workers=not no_qpu_workers, task_cluster=not no_task_cluster, vm_scheduler=not no_vm_scheduler
        )
        if not roles:
            raise CommandError("every role is left out: nothing to run")
        stop = threading.Event()
        install_stop_signals(stop)
        supervisor = Supervisor(roles, **supervisor_options())
        self.stdout.write(f"workers running ({', '.join(r.name for r in roles)}); Ctrl-C to stop")
        self.stdout.flush()
        supervisor.run(stop)
        self.stdout.write("workers stopped")
