"""Serve an in-process FakeProvider over HTTP, as a stand-in cloud provider.

    python manage.py run_mock_cloud --port 8001
    VM_PROVIDER_URL=http://127.0.0.1:8001 python manage.py schedule_vms

Routes: POST /start, POST /stop/<uuid>, GET /vms (snapshot and every VM).
"""

from __future__ import annotations

import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from core.stopping import install_stop_signals
from vms.clock import SystemClock
from vms.providers.fake import FakeProvider
from vms.providers.mock_server import MockCloudServer


class Command(BaseCommand):
    help = "Serve a fake cloud provider (start/stop with the brief's rate limits) over HTTP."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8001, help="TCP port (0 picks a free one). Default 8001.")
        parser.add_argument("--host", default="127.0.0.1", help="Interface to listen on. Default 127.0.0.1.")
        parser.add_argument(
            "--allocation-interval",
            type=float,
            default=None,
            help=f"Seconds to allocate one VM. Default VM_ALLOCATION_INTERVAL_SECONDS ({settings.VM_ALLOCATION_INTERVAL_SECONDS}).",
        )
        parser.add_argument(
            "--rps",
            type=int,
            default=None,
            help=f"Calls per endpoint per rolling second. Default VM_REQUESTS_PER_SECOND ({settings.VM_REQUESTS_PER_SECOND}).",
        )

    def handle(self, *args, port: int, host: str, allocation_interval: float | None, rps: int | None, **options):
        try:
            provider = FakeProvider(
                clock=SystemClock(), allocation_interval_s=allocation_interval, requests_per_second=rps
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        try:
            server = MockCloudServer((host, port), provider)
        except OSError as exc:
            raise CommandError(f"cannot listen on {host}:{port}: {exc}") from exc

        stop = threading.Event()
        if threading.current_thread() is threading.main_thread():
            # SIGINT/SIGTERM, or the supervisor's death when serve/runworkers run it as a role
            install_stop_signals(stop)
        # serve_forever runs in a thread: shutdown() waits for it to return, so
        # it cannot be called from the thread that serves.
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="mock-cloud", daemon=True
        )
        thread.start()
        self.stdout.write(
            f"Mock cloud listening on {server.url} "
            f"(allocation {provider.allocation_interval_s:g} s/VM, {provider.requests_per_second} calls/s per endpoint)"
        )
        self.stdout.flush()
        try:
            while not stop.wait(0.5):
                pass
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
        snapshot = provider.snapshot()
        self.stdout.write(
            f"Mock cloud stopped: {snapshot['total']} VMs started, {snapshot['stopped']} stopped, {snapshot['ready']} still ready"
        )
