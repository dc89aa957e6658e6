"""Helpers for end-to-end tests that run the real service as a subprocess.

``ServeProcess`` starts ``manage.py serve`` on a free port in its own session
(so a stray signal to pytest never reaches it, and so the test can check that
every process of the session, the supervised roles and django-q2's forked
cluster included, is gone after a stop), waits until HTTP answers, and always cleans up: a service still alive
at teardown is killed, with every process of its session.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.helpers import ROOT


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def service_env(database_url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": database_url,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "PYTHONUNBUFFERED": "1",
            "DEBUG": "false",
            # serve refuses to start without a configured key (as in production).
            "SECRET_KEY": secrets.token_urlsafe(50),
        }
    )
    env.update(extra)
    return env


def manage(env: dict[str, str], *args: str, timeout: float = 60) -> str:
    """Run ``manage.py ARGS`` to completion; returns stdout, fails loudly."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise AssertionError(f"manage.py {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def create_user_tokens(env: dict[str, str], *users: tuple[str, bool]) -> dict[str, str]:
    """Create users ``(username, is_staff)`` and their DRF tokens; returns
    ``{username: token}``."""
    code = (
        "from django.contrib.auth.models import User\n"
        "from rest_framework.authtoken.models import Token\n"
        f"for name, staff in {list(users)!r}:\n"
        "    u, _ = User.objects.get_or_create(username=name, defaults={'is_staff': staff})\n"
        "    t, _ = Token.objects.get_or_create(user=u)\n"
        "    print('TOKEN', name, t.key)\n"
    )
    out = manage(env, "shell", "-c", code)
    tokens = {}
    for line in out.splitlines():
        if line.startswith("TOKEN "):
            _, name, key = line.split()
            tokens[name] = key
    assert set(tokens) == {u for u, _ in users}, out
    return tokens


class ServeProcess:
    def __init__(self, env: dict[str, str], log_path: Path, *, port: int | None = None):
        self.env = env
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self, ready_timeout: float = 20.0) -> None:
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited early ({self.proc.returncode}):\n{self.log()}")
            try:
                if requests.get(self.base + "/", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise AssertionError(f"serve did not answer within {ready_timeout}s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def interrupt(self, timeout: float) -> tuple[int, float]:
        """Ctrl-C the service (SIGINT to the serve process); returns its exit
        code and how long it took to exit."""
        assert self.proc is not None
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=timeout)
        return code, time.monotonic() - t0

    def group_alive(self) -> bool:
        """Whether any process of the service still runs: its session (serve
        runs each supervised role in a process group of its own, all in the
        session serve was started in). Zombies count as gone."""
        assert self.proc is not None
        return bool(session_pids(self.proc.pid))

    def kill(self) -> None:
        """Teardown: kill whatever is left of the session we started."""
        if self.proc is None:
            return
        for pid in session_pids(self.proc.pid):  # serve itself included
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()


def session_pids(sid: int) -> list[int]:
    """Running (not zombie) processes of session ``sid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            if os.getsid(pid) != sid:
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            found.append(pid)
    return found
