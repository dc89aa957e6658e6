"""Concurrency and durability on real PostgreSQL: several processes claiming
at once never take the same job, and a worker killed with kill -9 loses nothing."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys

import pytest
from django.db import connections

from core.dburl import current_database_url
from devices.models import Device
from jobs.models import Job, JobStatus
from jobs.runner import Worker
from tests.helpers import ROOT, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _claim_all(device_id: str, out) -> None:
    from django.db import connection as conn

    from jobs import claims

    conn.close()  # never share the parent's socket
    Device.objects.filter(pk=device_id).update(runner=f"proc-{device_id}")
    device = Device.objects.get(pk=device_id)
    taken = []
    while True:
        job = claims.job_claim(
            device_id=device.id,
            device_type=device.type,
            device_size=device.size,
            runner=f"proc-{device_id}",
            lease_seconds=60,
        )
        if job is None:
            break
        row = Job.objects.values_list("priority", "id").get(pk=job.id)
        taken.append(row)
        claims.job_finish(job_id=job.id, token=job.token, result=["0" * device.size])
    conn.close()
    out.put((device_id, taken))


def test_concurrent_processes_never_take_the_same_job_and_keep_priority_order(make_device, make_program):
    for priority in (1, 7, 3, 7, 5, 2):
        make_program(priority=priority, jobs=60)
    total = Job.objects.count()
    devices = [make_device(f"proc-dev-{i}") for i in range(4)]
    connections.close_all()
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_claim_all, args=(d.id, out)) for d in devices]
    for p in procs:
        p.start()
    results = dict(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    claimed = [job_id for taken in results.values() for _, job_id in taken]
    assert len(claimed) == total and len(set(claimed)) == total  # every job exactly once
    assert all(len(taken) > 0 for taken in results.values())  # they really ran concurrently
    for taken in results.values():
        # Each process saw the queue in strict order: priority desc, then submission order.
        assert taken == sorted(taken, key=lambda row: (-row[0], row[1]))
    assert Job.objects.filter(status=JobStatus.DONE).count() == total


def test_worker_killed_with_sigkill_mid_job_loses_nothing(make_device, make_program):
    make_device("qpu-k", address="sim")
    make_program(jobs=1)
    env = {
        **os.environ,
        "DATABASE_URL": current_database_url(),
        "JOB_LEASE_SECONDS": "2",
        "DEVICE_SIM_SECONDS": "60",  # the job is still running when we kill the worker
        "LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(  # the qpu-workers role itself (runworkers would restart it)
        [sys.executable, str(ROOT / "manage.py"), "qpu_workers"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        assert wait_until(lambda: Job.objects.get().status == JobStatus.RUNNING, timeout=30), (
            proc.stderr.read1() if proc.poll() else ""
        )
        first = Job.objects.get()
        assert first.device_id == "qpu-k" and first.attempts == 1
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    # Nothing cleans up after kill -9: the job is still marked running.
    assert Job.objects.get().status == JobStatus.RUNNING

    from devices.clients import SimulatedQPU

    worker = Worker(
        client_factory=lambda d, stop_event=None: SimulatedQPU(seconds=0, stop_event=stop_event),
        lease_seconds=2,
        listen=False,
    )
    # The dead worker's leases run out after 2 s; then its device and job are taken over.
    assert wait_until(lambda: worker.run_once() == 1, timeout=20)
    job = Job.objects.get()
    # The dead worker's run is refunded: a requeue (JOB_MAX_REQUEUES), not an attempt.
    assert job.status == JobStatus.DONE and job.attempts == 1 and job.requeues == 1
    assert len(job.result) == 1 and job.id == first.id


def test_sigterm_stops_runworkers_cleanly_and_hands_the_job_back(make_device, make_program):
    make_device("qpu-t", address="sim")
    make_program(jobs=1)
    env = {
        **os.environ,
        "DATABASE_URL": current_database_url(),
        "DEVICE_SIM_SECONDS": "60",
        "LOG_LEVEL": "WARNING",
        "WORKER_SHUTDOWN_GRACE_SECONDS": "0.5",
    }
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "runworkers", "--no-task-cluster", "--no-vm-scheduler"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert wait_until(lambda: Job.objects.get().status == JobStatus.RUNNING, timeout=30)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert b"workers stopped" in out
    job = Job.objects.get()
    assert job.status == JobStatus.QUEUED and job.attempts == 0
    assert Device.objects.get().runner == ""
