"""config.supervisor with tiny Python children: restarts with backoff, logs,
a clean stop that reaches every child, a kill after the grace.

The backoff runs on an injected clock (``poll(now)``); only the children are
real processes, and every wait is on a process exit or a file the child
writes, with a deadline."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from config.supervisor import Backoff, Role, Supervisor
from tests.helpers import wait_until

ROOT = Path(__file__).resolve().parents[2]


def py(code: str) -> tuple[str, ...]:
    return (sys.executable, "-c", code)


def exits(code: int) -> tuple[str, ...]:
    return py(f"import sys; sys.exit({code})")


def waits_for_term(ready: Path, got: Path, *, ignore: bool = False, grandchild: Path | None = None) -> tuple[str, ...]:
    """A child that says it is ready (a file), then waits for SIGTERM and
    records it (or ignores it); optionally with a child of its own."""
    return py(
        "import pathlib, signal, subprocess, sys, time\n"
        f"got = pathlib.Path({str(got)!r})\n"
        + (
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            if ignore
            else "signal.signal(signal.SIGTERM, lambda s, f: (got.write_text('TERM'), sys.exit(0)))\n"
        )
        + (
            f"p = subprocess.Popen(['sleep', '120']); pathlib.Path({str(grandchild)!r}).write_text(str(p.pid))\n"
            if grandchild
            else ""
        )
        + f"pathlib.Path({str(ready)!r}).write_text('ready')\n"
        "time.sleep(120)\n"
    )


def gone(pid: int) -> bool:
    """The process no longer runs (missing, or a zombie nobody reaped yet)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def supervisors():
    made: list[Supervisor] = []
    yield made
    for s in made:  # never leave a child behind, whatever the test did
        s.stop()


def test_backoff_doubles_up_to_the_cap():
    b = Backoff(initial=1, factor=2, cap=5)
    assert [b.delay(n) for n in range(1, 6)] == [1, 2, 4, 5, 5]


def test_a_child_that_dies_is_restarted_with_backoff_and_each_death_is_logged(supervisors, caplog):
    clock = FakeClock()
    sup = Supervisor(
        [Role("flaky", exits(3))], backoff=Backoff(initial=1, factor=2, cap=5, reset_after=10), clock=clock
    )
    supervisors.append(sup)
    child = sup.children["flaky"]
    caplog.set_level(logging.INFO, logger="config.supervisor")
    sup.start()
    delays = []
    for _ in range(4):
        pid = child.proc.pid
        child.proc.wait(timeout=30)
        clock.now += 0.5
        sup.poll(clock.now)  # notices the death
        delay = child.restart_at - clock.now
        delays.append(delay)
        clock.now += delay - 0.01
        sup.poll(clock.now)
        assert child.proc.pid == pid, "restarted before its delay was up"
        clock.now += 0.01
        sup.poll(clock.now)
        assert child.proc.pid != pid and child.restart_at is None
    assert delays == [1.0, 2.0, 4.0, 5.0]
    deaths = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(deaths) == 4
    assert all("role flaky" in r.getMessage() and "exit code 3" in r.getMessage() for r in deaths)
    assert [r.delay_seconds for r in deaths] == delays and all(r.exit_code == 3 for r in deaths)
    assert "restarting in 4.0 s" in deaths[2].getMessage()
    restarts = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO and "restarted" in r.getMessage()]
    assert len(restarts) == 4 and all(m.startswith("role flaky restarted (pid ") for m in restarts)

    # A run that lasted reset_after counts as healthy: the next delay is the first one again.
    child.proc.wait(timeout=30)
    clock.now += 10
    sup.poll(clock.now)
    assert child.restart_at - clock.now == 1.0


def test_a_killed_child_comes_back_under_run(supervisors, tmp_path):
    ready = tmp_path / "ready"
    sup = Supervisor(
        [Role("sleeper", waits_for_term(ready, tmp_path / "got"))], backoff=Backoff(initial=0.05), poll_seconds=0.02
    )
    supervisors.append(sup)
    stop = threading.Event()
    thread = threading.Thread(target=sup.run, args=(stop,))
    thread.start()
    try:
        assert wait_until(lambda: sup.pids()["sleeper"] is not None and ready.exists(), timeout=20)
        first = sup.pids()["sleeper"]
        os.kill(first, signal.SIGKILL)
        assert wait_until(lambda: sup.pids()["sleeper"] not in (None, first), timeout=20)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert sup.children["sleeper"].starts == 2


def test_stop_asks_every_child_once_and_waits_for_them(supervisors, tmp_path):
    roles = [
        Role(name, waits_for_term(tmp_path / f"{name}.ready", tmp_path / f"{name}.got")) for name in ("a", "b", "c")
    ]
    sup = Supervisor(roles, grace=30)
    supervisors.append(sup)
    sup.start()
    assert wait_until(lambda: all((tmp_path / f"{n}.ready").exists() for n in "abc"), timeout=20)
    procs = [c.proc for c in sup.children.values()]
    t0 = time.monotonic()
    sup.stop()
    assert time.monotonic() - t0 < 20  # nobody waited for the grace
    assert [p.returncode for p in procs] == [0, 0, 0]
    assert all((tmp_path / f"{n}.got").read_text() == "TERM" for n in "abc")
    assert sup.pids() == {"a": None, "b": None, "c": None}
    sup.poll(time.monotonic() + 3600)  # stopped: nothing is restarted
    assert sup.pids() == {"a": None, "b": None, "c": None}


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace_with_its_own_children(supervisors, tmp_path, caplog):
    ready, grandchild = tmp_path / "ready", tmp_path / "grandchild"
    sup = Supervisor(
        [Role("stubborn", waits_for_term(ready, tmp_path / "got", ignore=True, grandchild=grandchild))], grace=0.5
    )
    supervisors.append(sup)
    sup.start()
    assert wait_until(ready.exists, timeout=20)
    grandchild_pid = int(grandchild.read_text())
    proc = sup.children["stubborn"].proc
    caplog.set_level(logging.WARNING, logger="config.supervisor")
    sup.stop()
    assert proc.returncode == -signal.SIGKILL
    assert any("stubborn" in r.getMessage() and "did not stop within" in r.getMessage() for r in caplog.records)
    assert not (tmp_path / "got").exists()
    assert wait_until(lambda: gone(grandchild_pid), timeout=10)


def test_a_child_stops_by_itself_when_its_supervisor_is_killed(tmp_path):
    """core.stopping: SUPERVISOR_PID no longer the parent -> a clean stop."""
    stopped = tmp_path / "stopped"
    child = (
        "import os, subprocess, sys, threading\n"
        "from core.stopping import install_stop_signals\n"
        "stop = threading.Event()\n"
        "install_stop_signals(stop, poll_seconds=0.05)\n"
        "print('READY', flush=True)\n"
        "stop.wait(60)\n"
        f"open({str(stopped)!r}, 'w').write('clean' if stop.is_set() else 'timeout')\n"
    )
    middle = (
        "import os, subprocess, sys\n"
        f"env = {{**os.environ, 'SUPERVISOR_PID': str(os.getpid()), 'PYTHONPATH': {str(ROOT)!r}}}\n"
        f"p = subprocess.Popen([sys.executable, '-c', {child!r}], env=env, stdout=subprocess.PIPE, text=True)\n"
        "print(p.stdout.readline().strip(), p.pid, flush=True)\n"
        "p.wait()\n"
    )
    sup = subprocess.Popen([sys.executable, "-c", middle], stdout=subprocess.PIPE, text=True)
    try:
        word, pid = sup.stdout.readline().split()
        assert word == "READY"
        sup.send_signal(signal.SIGKILL)
        sup.wait(timeout=10)
        assert wait_until(lambda: stopped.exists() and stopped.read_text() == "clean", timeout=20)
        assert wait_until(lambda: gone(int(pid)), timeout=10)
    finally:
        if sup.poll() is None:
            sup.kill()


def test_a_role_gets_its_own_environment_on_top_of_the_supervisors(supervisors, tmp_path):
    out = tmp_path / "env"
    role = Role(
        "env",
        py(f"import os, pathlib; pathlib.Path({str(out)!r}).write_text(os.environ['ROLE_ONLY'])"),
        env=(("ROLE_ONLY", "yes"),),
    )
    sup = Supervisor([role])
    supervisors.append(sup)
    sup.start()
    assert wait_until(lambda: out.exists() and out.read_text() == "yes", timeout=20)


def test_without_a_provider_url_the_cluster_talks_to_one_mock_cloud_role(settings):
    """The VM loop runs in whichever cluster worker takes the task: the fake's
    VMs live in one process (the mock-cloud role) that the cluster is pointed at."""
    from config.supervisor import service_roles

    settings.VM_PROVIDER_URL = ""
    roles = {role.name: role for role in service_roles()}
    assert set(roles) == {"qpu-workers", "mock-cloud", "task-cluster"}
    port = roles["mock-cloud"].argv[roles["mock-cloud"].argv.index("--port") + 1]
    assert dict(roles["task-cluster"].env) == {"VM_PROVIDER_URL": f"http://127.0.0.1:{port}"}
    assert {role.name for role in service_roles(vm_scheduler=False)} == {"qpu-workers", "task-cluster"}

    settings.VM_PROVIDER_URL = "https://cloud.example"
    roles = {role.name: role for role in service_roles()}
    assert set(roles) == {"qpu-workers", "task-cluster"}
    assert roles["task-cluster"].env == ()
