"""Run a simulated HTTP QPU that joins the scheduler's pool."""

from __future__ import annotations

import os
import threading

import requests
from django.core.management.base import BaseCommand, CommandError

from core.stopping import install_stop_signals
from devices.simulator import SchedulerLink, SimulatedDeviceServer


class Command(BaseCommand):
    help = "Serve a simulated QPU over HTTP, register it with the scheduler, heartbeat, unregister on exit."

    def add_arguments(self, parser):
        parser.add_argument("--id", required=True, dest="device_id")
        parser.add_argument("--type", required=True, dest="device_type")
        parser.add_argument("--size", required=True, type=int)
        parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--scheduler", default=os.environ.get("SCHEDULER_URL", "http://127.0.0.1:8000"))
        parser.add_argument(
            "--token",
            default=os.environ.get("SCHEDULER_TOKEN", ""),
            help="API token of the device account (manage.py create_device_account NAME) or of a staff user (or SCHEDULER_TOKEN)",
        )
        parser.add_argument("--seconds", type=float, default=None, help="time per job (default DEVICE_SIM_SECONDS)")
        parser.add_argument("--heartbeat", type=float, default=10.0, help="seconds between heartbeats")
        parser.add_argument("--fail-rate", type=float, default=0.0, help="fraction of jobs that fail with HTTP 500")

    def handle(
        self,
        *args,
        device_id,
        device_type,
        size,
        port,
        host,
        scheduler,
        token,
        seconds,
        heartbeat,
        fail_rate,
        **options,
    ):
        from django.conf import settings

        if size < 1:
            raise CommandError("--size must be a positive number of qubits")
        if not token:
            raise CommandError("--token (or SCHEDULER_TOKEN) is required: the device account's API token")
        device = SimulatedDeviceServer(
            device_id=device_id,
            size=size,
            host=host,
            port=port,
            fail_rate=fail_rate,
            seconds=settings.DEVICE_SIM_SECONDS if seconds is None else seconds,
        )
        device.serve_in_thread()
        link = SchedulerLink(scheduler_url=scheduler, token=token)
        stop = threading.Event()
        install_stop_signals(stop)
        try:
            response = link.register(device_id=device_id, address=device.address, type=device_type, size=size)
        except requests.RequestException as exc:
            device.close()
            raise CommandError(f"cannot reach the scheduler at {scheduler}: {exc}") from exc
        if response.status_code not in (200, 201):
            device.close()
            raise CommandError(f"registration refused: HTTP {response.status_code} {response.text[:300]}")
        self.stdout.write(
            f"QPU {device_id} ({device_type}, {size} qubits) serving on {device.address}, registered with {scheduler}"
        )
        self.stdout.flush()
        try:
            while not stop.wait(heartbeat):
                try:
                    reply = link.heartbeat(device_id=device_id)
                    if reply.status_code == 404:  # the scheduler forgot us (removed): join again
                        reply = link.register(device_id=device_id, address=device.address, type=device_type, size=size)
                    if reply.status_code not in (200, 201):
                        self.stderr.write(f"scheduler refused: HTTP {reply.status_code} {reply.text[:300]}")
                except requests.RequestException as exc:
                    self.stderr.write(f"heartbeat failed: {exc}")
        finally:
            try:
                link.unregister(device_id=device_id)
            except requests.RequestException:
                pass
            device.close()
            self.stdout.write(f"QPU {device_id} stopped after {device.jobs_run} job(s)")
