"""End to end on PostgreSQL: ``runworkers`` supervises its roles as real
processes. kill -9 of the qpu-workers child: a new one appears (new pid, in
the log), and the work goes on; the task cluster runs the VM loop, so every
role /readyz expects beats; SIGTERM stops everything, nothing left behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from core import health
from core.dburl import current_database_url
from jobs.models import Job, JobStatus
from tests.e2e_helpers import session_pids
from tests.helpers import wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
STARTED = re.compile(r"role qpu-workers (?:started|restarted) \(pid (\d+)")


def _qpu_pids(log: Path) -> list[int]:
    return [int(pid) for pid in STARTED.findall(log.read_text(errors="replace"))]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _kill_session(sid: int) -> None:
    for pid in session_pids(sid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_a_killed_qpu_workers_child_is_restarted_and_the_work_goes_on(make_device, make_program, tmp_path):
    from core.models import Heartbeat

    Heartbeat.objects.all().delete()
    make_device("qpu-sup", address="sim")
    env = {
        **os.environ,
        "DATABASE_URL": current_database_url(),
        "JOB_LEASE_SECONDS": "2",
        "DEVICE_SIM_SECONDS": "0.1",
        "VM_PROVIDER_URL": "",
        "PYTHONUNBUFFERED": "1",
        "WORKER_SHUTDOWN_GRACE_SECONDS": "1",
    }
    log = tmp_path / "runworkers.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "runworkers"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        assert wait_until(lambda: len(_qpu_pids(log)) == 1, timeout=30), log.read_text()
        first = _qpu_pids(log)[0]
        # The roles beat: the QPU worker, the task cluster, and the VM loop inside it.
        assert wait_until(lambda: all(c.ok for c in health.readiness()), timeout=60), health.readiness()
        make_program(jobs=2)
        assert wait_until(lambda: Job.objects.filter(status=JobStatus.DONE).count() == 2, timeout=30)

        os.kill(first, signal.SIGKILL)
        assert wait_until(lambda: len(_qpu_pids(log)) == 2, timeout=30), log.read_text()
        second = _qpu_pids(log)[1]
        assert second != first and _alive(second) and not _alive(first)
        text = log.read_text()
        assert f"role qpu-workers (pid {first}) died (killed by SIGKILL)" in text and "restarting in 1.0 s" in text

        # The new worker takes the device over once the dead one's lease ran out, and runs new work.
        make_program(jobs=3)
        assert wait_until(lambda: Job.objects.filter(status=JobStatus.DONE).count() == 5, timeout=60), log.read_text()
        assert set(Job.objects.values_list("device_id", flat=True)) == {"qpu-sup"}

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()
        text = log.read_text()
        assert (
            "QPU workers stopped" in text
            and "task cluster stopped" in text
            and text.rstrip().endswith("workers stopped")
        )
        assert "Traceback" not in text, text
        assert wait_until(lambda: not session_pids(proc.pid), timeout=10), session_pids(proc.pid)
    finally:
        if proc.poll() is None or session_pids(proc.pid):
            _kill_session(proc.pid)
            proc.wait(timeout=10)
