"""A small HTTP QPU for demos and tests (``manage.py simulate_qpu``).

It serves ``POST /run`` the way ``devices.clients.HttpQPU`` calls it, one job
at a time like a real QPU (a second concurrent job gets 409), registers itself
with the scheduler, heartbeats, and unregisters when it stops.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

from devices.clients import random_bitstrings

logger = logging.getLogger(__name__)


class SimulatedDeviceServer:
    def __init__(
        self,
        *,
        device_id: str,
        size: int,
        seconds: float,
        host: str = "127.0.0.1",
        port: int = 0,
        fail_rate: float = 0.0,
        seed: int | None = None,
    ):
        self.device_id = device_id
        self.size = size
        self.seconds = seconds
        self.fail_rate = fail_rate
        self.rng = random.Random(seed)
        self.busy = threading.Lock()
        self.stop_event = threading.Event()
        self.jobs_run = 0
        self.httpd = ThreadingHTTPServer((host, port), self._handler())
        self.httpd.daemon_threads = True

    @property
    def address(self) -> str:
        # An AF_INET server's host is text (the stubs also allow AF_UNIX's bytes).
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt, *args):
                logger.debug("%s " + fmt, server.device_id, *args)

            def _reply(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path == "/health":
                    self._reply(
                        200, {"id": server.device_id, "busy": server.busy.locked(), "jobs_run": server.jobs_run}
                    )
                else:
                    self._reply(404, {"detail": "not found"})

            def do_POST(self):
                if self.path != "/run":
                    return self._reply(404, {"detail": "not found"})
                try:
                    body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                    shots = int(body.get("shots", 1))
                except (ValueError, TypeError):
                    return self._reply(400, {"detail": "body must be JSON with an integer 'shots'"})
                if not server.busy.acquire(blocking=False):
                    return self._reply(409, {"detail": "device busy: it runs one job at a time"})
                try:
                    if server.stop_event.wait(server.seconds):
                        return self._reply(503, {"detail": "device shutting down"})
                    if server.rng.random() < server.fail_rate:
                        return self._reply(500, {"detail": "simulated device fault"})
                    server.jobs_run += 1
                    return self._reply(
                        200, {"result": random_bitstrings(size=server.size, shots=shots, rng=server.rng)}
                    )
                finally:
                    server.busy.release()

        return Handler

    def serve_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        self.stop_event.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class SchedulerLink:
    """The device's side of the pool protocol: register, heartbeat, leave."""

    def __init__(self, *, scheduler_url: str, token: str, timeout: float = 5.0):
        self.base = scheduler_url.rstrip("/")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {token}"
        self.timeout = timeout

    def register(self, *, device_id: str, address: str, type: str, size: int) -> requests.Response:
        return self.session.post(
            f"{self.base}/devices",
            json={"id": device_id, "address": address, "type": type, "size": size},
            timeout=self.timeout,
        )

    def heartbeat(self, *, device_id: str) -> requests.Response:
        return self.session.post(f"{self.base}/devices/{device_id}/heartbeat", timeout=self.timeout)

    def unregister(self, *, device_id: str) -> requests.Response:
        return self.session.delete(f"{self.base}/devices/{device_id}", timeout=self.timeout)
