"""Run the background roles as child processes and keep them running.

``runworkers`` and ``serve`` run the same roles (``ROLES``): each one is a
``manage.py <command>`` subprocess, so a crash, a leak or a stuck C call in one
role never takes another down, and each can also be run alone (one process per
role in production, see the README's *Production layout*).

- A role that exits while we are not stopping is restarted after a delay that
  doubles with each quick death (``Backoff``: 1 s, 2 s, 4 s ... capped at 60 s)
  and starts again from 1 s once a run lasted ``reset_after`` seconds. Every
  death is a WARNING line (role, pid, exit code, delay), every start an INFO line.
- Each child runs in its own process group: a Ctrl-C in the terminal reaches
  the supervisor only, which asks every child to stop exactly once (SIGTERM),
  waits up to ``grace`` seconds, then kills what is left, with the processes
  the child started itself (django-q2's cluster forks its own). Leftovers of a
  child that died are killed the same way before it is restarted.
- A child learns that its supervisor died (``kill -9``) from
  ``SUPERVISOR_PID`` (``core.stopping``) and stops by itself.

The clock is injected (``clock``) and ``poll(now)`` does one round of
bookkeeping, so the backoff is tested without waiting for it.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from config.http_server import free_local_port
from core.stopping import SUPERVISOR_PID_ENV

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Role:
    """One kind of child process: a name for the logs, its command line, and
    environment variables it gets on top of the supervisor's."""

    name: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Backoff:
    initial: float = 1.0
    factor: float = 2.0
    cap: float = 60.0
    # A run this long counts as healthy: the next death starts from `initial`.
    reset_after: float = 60.0

    def delay(self, quick_deaths: int) -> float:
        """The wait before the next start after ``quick_deaths`` (>= 1) deaths in a row."""
        return min(self.cap, self.initial * self.factor ** max(0, quick_deaths - 1))


def manage_py_role(name: str, command: str, *args: str, env: dict[str, str] | None = None) -> Role:
    from django.conf import settings

    argv = (sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), command, *args)
    return Role(name, argv, tuple(sorted((env or {}).items())))


def service_roles(*, qpu_workers: bool = True, task_cluster: bool = True, vm_scheduler: bool = True) -> list[Role]:
    """The roles of ``runworkers`` and ``serve``. The VM loop is no role of its
    own: it is a django-q2 task of the task cluster (``vms.tasks``).

    Without ``VM_PROVIDER_URL`` (the embedded default: no real cloud) a
    ``mock-cloud`` role serves the stand-in provider on a free loopback port
    and the cluster is pointed at it: the VM loop runs in whichever cluster
    worker takes the task, so the fake's VMs must live in one process of
    their own, not in each worker (a restarted mock cloud starts empty, as a
    real provider's outage would look).
    """
    from django.conf import settings

    roles = []
    if qpu_workers:
        roles.append(manage_py_role("qpu-workers", "qpu_workers"))
    if task_cluster:
        env: dict[str, str] = {}
        if vm_scheduler and not settings.VM_PROVIDER_URL:
            port = free_local_port()
            roles.append(manage_py_role("mock-cloud", "run_mock_cloud", "--port", str(port)))
            env["VM_PROVIDER_URL"] = f"http://127.0.0.1:{port}"
        args = [] if vm_scheduler else ["--no-vm-scheduler"]
        roles.append(manage_py_role("task-cluster", "task_cluster", *args, env=env))
    return roles


def supervisor_options() -> dict:
    """What ``runworkers`` and ``serve`` give their supervisor: the children
    share this process's SECRET_KEY (with DEBUG and no key each process would
    draw its own, and django-q2 signs its tasks with it) and get the QPU
    worker's shutdown grace plus time to hand back its jobs."""
    from django.conf import settings

    return {
        "env": {**os.environ, "SECRET_KEY": settings.SECRET_KEY},
        "cwd": settings.BASE_DIR,
        "grace": settings.WORKER_SHUTDOWN_GRACE_SECONDS + 15,
    }


class _Child:
    def __init__(self, role: Role):
        self.role = role
        self.proc: subprocess.Popen | None = None
        self.started_at = 0.0
        self.quick_deaths = 0
        self.restart_at: float | None = None  # due time of the next start while dead
        self.starts = 0


class Supervisor:
    def __init__(
        self,
        roles: Sequence[Role],
        *,
        backoff: Backoff = Backoff(),
        grace: float = 25.0,
        clock: Callable[[], float] = time.monotonic,
        env: dict[str, str] | None = None,
        cwd: str | Path | None = None,
        poll_seconds: float = 0.2,
    ):
        self.children = {role.name: _Child(role) for role in roles}
        if len(self.children) != len(roles):
            raise ValueError("role names must be unique")
        self.backoff = backoff
        self.grace = grace
        self.clock = clock
        self.env = dict(os.environ if env is None else env)
        self.cwd = cwd
        self.poll_seconds = poll_seconds
        self.stopping = False

    # --- public ---------------------------------------------------------------

    def pids(self) -> dict[str, int | None]:
        """The pid of each role's running child (None while it is down)."""
        return {name: c.proc.pid if c.proc and c.proc.poll() is None else None for name, c in self.children.items()}

    def start(self) -> None:
        now = self.clock()
        for child in self.children.values():
            self._spawn(child, now)

    def run(self, stop_event: threading.Event) -> None:
        """Start every role, keep them running until ``stop_event``, stop them."""
        self.start()
        try:
            while not stop_event.wait(self.poll_seconds):
                self.poll(self.clock())
        finally:
            self.stop()

    def poll(self, now: float) -> None:
        """One round: notice deaths, schedule restarts, make the due ones."""
        for child in self.children.values():
            if self.stopping:
                return
            if child.proc is not None and child.restart_at is None:
                code = child.proc.poll()
                if code is not None:
                    self._died(child, child.proc.pid, code, now)
            if child.restart_at is not None and now >= child.restart_at:
                self._spawn(child, now)

    def stop(self) -> None:
        """SIGTERM to every child, up to ``grace`` seconds for all of them to
        exit, then SIGKILL to what is left (with its process group)."""
        self.stopping = True
        running = [(c, c.proc) for c in self.children.values() if c.proc is not None and c.proc.poll() is None]
        for child, proc in running:
            logger.info("stopping role %s (pid %s)", child.role.name, proc.pid)
            _signal(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        for child, proc in running:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning(
                    "role %s (pid %s) did not stop within %.0f s: killed", child.role.name, proc.pid, self.grace
                )
        for child in self.children.values():
            if child.proc is not None:
                _kill_group(child.proc.pid)
                child.proc.wait()
                child.restart_at = None

    # --- internals ------------------------------------------------------------

    def _spawn(self, child: _Child, now: float) -> None:
        env = {**self.env, **dict(child.role.env), SUPERVISOR_PID_ENV: str(os.getpid())}
        try:
            # No preexec_fn: it is unsafe with threads (serve runs waitress next to us).
            child.proc = subprocess.Popen(child.role.argv, env=env, cwd=self.cwd, process_group=0)
        except OSError as exc:
            child.quick_deaths += 1
            delay = self.backoff.delay(child.quick_deaths)
            logger.error("role %s could not start (%s); retrying in %.1f s", child.role.name, exc, delay)
            child.proc, child.restart_at = None, now + delay
            return
        child.started_at, child.restart_at = now, None
        child.starts += 1
        if child.starts == 1:
            logger.info("role %s started (pid %s)", child.role.name, child.proc.pid)
        else:
            logger.info("role %s restarted (pid %s, start %s)", child.role.name, child.proc.pid, child.starts)

    def _died(self, child: _Child, pid: int, code: int, now: float) -> None:
        _kill_group(pid)  # what it started itself must not outlive it
        if now - child.started_at >= self.backoff.reset_after:
            child.quick_deaths = 0
        child.quick_deaths += 1
        delay = self.backoff.delay(child.quick_deaths)
        child.restart_at = now + delay
        how = (
            f"killed by {signal.Signals(-code).name}"
            if code < 0 and -code in signal.valid_signals()
            else f"exit code {code}"
        )
        logger.warning(
            "role %s (pid %s) died (%s) after %.1f s; restarting in %.1f s",
            child.role.name,
            pid,
            how,
            now - child.started_at,
            delay,
            extra={"role": child.role.name, "exit_code": code, "delay_seconds": delay},
        )


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
