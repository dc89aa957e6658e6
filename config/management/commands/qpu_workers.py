"""The ``qpu-workers`` role: one ``jobs.runner.Worker`` until SIGINT/SIGTERM.

``runworkers`` and ``serve`` run it as a supervised child process; in
production it may run alone, on as many machines as needed (devices are leased,
jobs fenced: see jobs/runner.py).
"""

from __future__ import annotations

import threading

from django.core.management.base import BaseCommand

from core.secret_key import require_configured_secret_key
from core.stopping import install_stop_signals


class Command(BaseCommand):
    help = "Run the QPU workers (dispatch queued jobs to devices) until SIGINT/SIGTERM."

    def handle(self, *args, **options):
        require_configured_secret_key(stderr=self.stderr)
        from django.conf import settings

        from jobs.runner import Worker

        stop = threading.Event()
        worker = Worker(stop_event=stop)
        install_stop_signals(stop, on_stop=worker.stop)
        # The worker runs in a thread so that the main thread only waits: the
        # stop arrives through core.stopping's watcher, never inside the loop.
        thread = threading.Thread(target=worker.run, name="qpu-worker")
        thread.start()
        self.stdout.write("QPU workers running; Ctrl-C to stop")
        self.stdout.flush()
        stop.wait()
        thread.join(timeout=settings.WORKER_SHUTDOWN_GRACE_SECONDS + 15)
        if thread.is_alive():
            self.stderr.write("the QPU worker did not stop in time")
            raise SystemExit(1)
        self.stdout.write("QPU workers stopped")
