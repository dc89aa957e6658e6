"""Connection flood benchmark: does the API still answer while many clients
hold connections open and send half a request line (slowloris)?

``run_connection_bench`` opens ``half_open`` TCP connections to the server,
sends each ``GET /devices HTT`` and stalls, then times ``requests`` normal
authenticated ``GET /devices`` calls (a fresh connection each, as a new
client would make) and reports how many were answered and their latency;
the same calls are timed first without the flood, for comparison.
Optionally it then waits for the server to close the stalled connections
(its idle timeout). Loopback addresses only; every phase is bounded in
count and in time, and every socket is closed at the end.

``ServeChild`` starts ``manage.py serve`` on a scratch database when no URL
is given (the benchmark then measures exactly what ``serve`` runs).
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import requests

from config.http_server import free_local_port

ROOT = Path(__file__).resolve().parents[1]
HALF_REQUEST = b"GET /devices HTT"
MAX_HALF_OPEN = 20_000
MAX_REQUESTS = 10_000
MAX_SECONDS = 900.0


class BenchError(Exception):
    pass


def loopback_target(url: str) -> tuple[str, int]:
    """``(host, port)`` of ``url`` if every address it names is loopback: this
    tool floods a server, so it only ever aims at this machine."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise BenchError(f"--url must be http://HOST:PORT on this machine, not {url!r}")
    port = parts.port or 80
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise BenchError(f"cannot resolve {parts.hostname!r}: {exc}") from None
    # An inet sockaddr starts with the address text (the stubs also allow other families' forms).
    addresses = {str(info[4][0]) for info in infos}
    if not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses):
        raise BenchError(f"{parts.hostname!r} is not a loopback address ({', '.join(sorted(addresses))})")
    return sorted(addresses)[0], port


@dataclass
class Timings:
    planned: int
    attempted: int = 0
    answered: int = 0
    failed: int = 0
    first_failure: str = ""
    latencies_ms: list[float] = field(default_factory=list)

    def summary(self) -> dict:
        lat = sorted(self.latencies_ms)
        pick = (lambda q: round(lat[min(len(lat) - 1, int(q * len(lat)))], 1)) if lat else (lambda q: None)
        return {
            "planned": self.planned,
            "attempted": self.attempted,
            "answered": self.answered,
            "failed": self.failed,
            "p50_ms": pick(0.50),
            "p99_ms": pick(0.99),
            "max_ms": round(lat[-1], 1) if lat else None,
            "first_failure": self.first_failure,
        }


def time_requests(*, base_url: str, token: str, count: int, timeout: float, until: float) -> Timings:
    """``count`` sequential ``GET /devices``, each on a new connection; a
    call counts as answered on a 200 within ``timeout`` seconds. Stops at
    the monotonic time ``until``."""
    timings = Timings(planned=count)
    headers = {"Authorization": f"Token {token}", "Connection": "close"}
    for _ in range(count):
        if time.monotonic() >= until:
            break
        timings.attempted += 1
        started = time.perf_counter()
        try:
            response = requests.get(base_url + "/devices", headers=headers, timeout=timeout)
            ok, why = response.status_code == 200, f"HTTP {response.status_code}"
        except requests.RequestException as exc:
            ok, why = False, type(exc).__name__
        if ok:
            timings.answered += 1
            timings.latencies_ms.append((time.perf_counter() - started) * 1000)
        else:
            timings.failed += 1
            timings.first_failure = timings.first_failure or why
    return timings


def open_half_open(*, host: str, port: int, count: int, until: float) -> list[socket.socket]:
    """Connections that each sent half a request line; stops early at
    ``until`` or when connecting keeps failing (the server's backlog full)."""
    held: list[socket.socket] = []
    failures_in_a_row = 0
    while len(held) < count and time.monotonic() < until and failures_in_a_row < 20:
        try:
            sock = socket.create_connection((host, port), timeout=2)
        except OSError:
            failures_in_a_row += 1
            continue
        failures_in_a_row = 0
        held.append(sock)
        try:
            sock.sendall(HALF_REQUEST)
        except OSError:
            pass  # closed already: counted by wait_closed
    return held


def wait_closed(socks: list[socket.socket], *, timeout: float) -> tuple[int, float | None]:
    """How many of ``socks`` the server closed within ``timeout`` seconds,
    and after how long the last one was (None if not all were)."""
    started = time.monotonic()
    deadline = started + timeout
    poller = select.poll()
    by_fd = {s.fileno(): s for s in socks}
    for fd in by_fd:
        poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    open_fds = set(by_fd)
    while open_fds:  # polls at least once, so timeout=0 is a snapshot
        for fd, _ in poller.poll(max(0, min(200, int((deadline - time.monotonic()) * 1000)))):
            try:
                data = by_fd[fd].recv(4096, socket.MSG_DONTWAIT)
            except BlockingIOError:
                continue
            except OSError:
                data = b""  # reset: closed too
            if not data:
                poller.unregister(fd)
                open_fds.discard(fd)
        if time.monotonic() >= deadline:
            break
    closed = len(by_fd) - len(open_fds)
    return closed, (round(time.monotonic() - started, 1) if not open_fds else None)


def run_connection_bench(
    *,
    base_url: str,
    token: str,
    half_open: int,
    requests_count: int,
    request_timeout: float,
    max_seconds: float,
    close_wait: float,
    say=print,
) -> dict:
    host, port = loopback_target(base_url)
    half_open = min(half_open, MAX_HALF_OPEN)
    requests_count = min(requests_count, MAX_REQUESTS)
    until = time.monotonic() + min(max_seconds, MAX_SECONDS)
    from config.http_server import raise_fd_limit

    raise_fd_limit(wanted=half_open + 256)  # this process holds them all
    figures = {"url": base_url, "half_open_requested": half_open}
    say(f"quiet: {requests_count} x GET /devices ...")
    figures["quiet"] = time_requests(
        base_url=base_url, token=token, count=requests_count, timeout=request_timeout, until=until
    ).summary()
    say(f"  {figures['quiet']}")
    socks: list[socket.socket] = []
    try:
        say(f"flood: opening {half_open} half-open connections ...")
        socks = open_half_open(host=host, port=port, count=half_open, until=until)
        figures["half_open_held"] = len(socks)
        say(f"  holding {len(socks)}; {requests_count} x GET /devices ...")
        figures["flood"] = time_requests(
            base_url=base_url, token=token, count=requests_count, timeout=request_timeout, until=until
        ).summary()
        say(f"  {figures['flood']}")
        if close_wait > 0:
            wait = max(0.0, min(close_wait, until - time.monotonic()))
            say(f"waiting up to {wait:.0f}s for the server to close the half-open connections ...")
            figures["closed_by_server"], figures["all_closed_after_s"] = wait_closed(socks, timeout=wait)
            say(f"  closed {figures['closed_by_server']} of {len(socks)}")
    finally:
        for sock in socks:
            sock.close()
    return figures


class ServeChild:
    """``manage.py serve`` on a scratch SQLite file (or ``database_url``) on a
    free loopback port, with a user and token to call it with."""

    def __init__(self, *, database_url: str | None = None, no_workers: bool = False, extra_env: dict | None = None):
        self.tmp = tempfile.TemporaryDirectory(prefix="bench-connections-")
        self.env = dict(os.environ)
        self.env.update(
            {
                "DATABASE_URL": database_url or f"sqlite:///{self.tmp.name}/bench.sqlite3",
                "DJANGO_SETTINGS_MODULE": "config.settings",
                "PYTHONUNBUFFERED": "1",
            }
        )
        self.env.setdefault("SECRET_KEY", secrets.token_urlsafe(40))
        self.env.update(extra_env or {})
        self.no_workers = no_workers
        self.proc: subprocess.Popen | None = None
        self.log_path = Path(self.tmp.name) / "serve.log"

    def _manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            raise BenchError(f"manage.py {args[0]} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def prepare(self) -> str:
        """Migrates and returns a token of a staff user ``bench-connections``."""
        self._manage("migrate", "--noinput", "-v", "0")
        out = self._manage(
            "shell",
            "-c",
            (
                "from django.contrib.auth.models import User\n"
                "from rest_framework.authtoken.models import Token\n"
                "u, _ = User.objects.get_or_create(username='bench-connections', defaults={'is_staff': True})\n"
                "print('TOKEN', Token.objects.get_or_create(user=u)[0].key)\n"
            ),
        )
        return next(line.split()[1] for line in out.splitlines() if line.startswith("TOKEN "))

    def start(self, *, ready_timeout: float = 60) -> str:
        port = free_local_port()
        args = [sys.executable, str(ROOT / "manage.py"), "serve", "--host", "127.0.0.1", "--port", str(port)]
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            args + (["--no-workers"] if self.no_workers else []),
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if requests.get(base + "/", timeout=1).status_code == 200:
                    return base
            except requests.RequestException:
                time.sleep(0.1)
        raise BenchError(f"serve did not start:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        """Ctrl-C, then kill the whole process group if it lingers."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGINT)
                try:
                    self.proc.wait(timeout=40)
                except subprocess.TimeoutExpired:
                    pass
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)
            self._log.close()
        self.tmp.cleanup()
