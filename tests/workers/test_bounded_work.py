"""Issue 6, bounded work in the scheduler: no device is handed a job whose
result it could not store, a refused store is a failed attempt, a device that
keeps answering busy is drained (reason shown, cleared by resume), and
requeues that are not the job's fault are refunded and bounded by
JOB_MAX_REQUEUES."""

from __future__ import annotations

import queue
from datetime import timedelta

import pytest
from django.db import DataError, OperationalError
from django.utils import timezone

from devices.clients import DeviceBusy, DeviceError
from devices.models import Device
from devices.services import device_register, device_remove
from jobs import claims, runner
from jobs.models import Job, JobStatus
from jobs.runner import Worker
from tests.helpers import wait_until
from tests.workers.test_runner import live_worker  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db


def claim(device: Device, runner_name: str = "w1"):
    Device.objects.filter(pk=device.pk).update(runner=runner_name)
    return claims.job_claim(
        device_id=device.id, device_type=device.type, device_size=device.size, runner=runner_name, lease_seconds=30
    )


# --- the claim never hands out a result a device could not store ---------------------------


def test_claim_refuses_a_job_too_big_for_the_device_but_a_smaller_one_takes_it(make_device, make_program, settings):
    settings.RESULT_MAX_BITS = 100
    big_job = make_program(priority=9, shots=20)  # 20 shots: 160 bits on 8 qubits, 80 on 4
    small_job = make_program(priority=1, shots=10)  # 80 bits on 8 qubits
    large, small = make_device("large", size=8), make_device("small", size=4)
    got = claim(large)
    assert got.key == f"{small_job.key}-j0"  # skips the higher-priority job it could not store
    assert claim(large) is None
    got = claim(small)
    assert got.key == f"{big_job.key}-j0" and got.shots == 20


def test_a_runner_with_a_stale_size_claims_nothing(make_device, make_program, settings):
    # The device re-registered bigger; its runner has not caught up yet.
    settings.RESULT_MAX_BITS = 100
    make_program(shots=20)  # fits 4 qubits (80 bits), not 8
    dev = make_device("grown", size=8)
    Device.objects.filter(pk=dev.pk).update(runner="w1")
    assert (
        claims.job_claim(device_id=dev.id, device_type=dev.type, device_size=4, runner="w1", lease_seconds=30) is None
    )
    assert Job.objects.get().status == JobStatus.QUEUED


def test_finish_and_claim_applies_the_same_bound(make_device, make_program, settings):
    settings.RESULT_MAX_BITS = 100
    make_program(priority=5, jobs=1, shots=10)
    too_big = make_program(priority=1, jobs=1, shots=20)
    dev = make_device("large", size=8)
    first = claim(dev)
    callback, nxt = claims.job_finish_and_claim(
        job_id=first.id,
        token=first.token,
        result=["1" * 8] * 10,
        device_id=dev.id,
        device_type=dev.type,
        device_size=dev.size,
        runner="w1",
        lease_seconds=30,
    )
    assert callback == "" and nxt is None
    assert Job.objects.get(key=f"{too_big.key}-j0").status == JobStatus.QUEUED


# --- a result the database refuses is a failed attempt ----------------------------------------


def test_a_store_the_database_refuses_is_a_failed_attempt_then_the_job_fails(
    make_device, make_program, recording, monkeypatch, settings
):
    settings.JOB_MAX_ATTEMPTS = 2

    def refuse(**kwargs):
        raise DataError("total size of jsonb array elements exceeds the maximum of 268435455 bytes")

    monkeypatch.setattr(claims, "job_finish_and_claim", refuse)
    monkeypatch.setattr(claims, "job_finish", refuse)
    log, factory = recording
    make_program()
    make_device("qpu-a")
    Worker(client_factory=factory, listen=False).run_once()
    job = Job.objects.get()
    assert len(log) == 2  # tried JOB_MAX_ATTEMPTS times, not handed back forever
    assert job.status == JobStatus.FAILED and job.attempts == 2 and job.finished_at is not None
    assert job.error == (
        "result could not be stored: DataError: total size of jsonb array elements exceeds "
        "the maximum of 268435455 bytes"
    )


def test_a_lost_connection_while_storing_hands_the_job_back_as_a_requeue(
    make_device,
    make_program,
    recording,
    live_worker,  # noqa: F811
    monkeypatch,
):
    real = claims.job_finish_and_claim
    state = {"raised": False, "lost": False}

    def flaky(**kwargs):
        if not state["raised"]:
            state["raised"] = state["lost"] = True
            raise OperationalError("server closed the connection unexpectedly")
        return real(**kwargs)

    def connection_lost():  # the connection is "back" once the failure was seen
        was, state["lost"] = state["lost"], False
        return was

    monkeypatch.setattr(claims, "job_finish_and_claim", flaky)
    monkeypatch.setattr(runner, "_connection_lost", connection_lost)
    log, factory = recording
    make_device("qpu-f")
    make_program(jobs=1)
    live_worker(client_factory=factory, idle_wait=0.5, tick_seconds=0.1)
    assert wait_until(lambda: Job.objects.get().status == JobStatus.DONE)
    job = Job.objects.get()
    assert len(log) == 2 and job.attempts == 1 and job.requeues == 1


# --- a device answering busy is drained after a run of busy answers ---------------------------


class BusyThen:
    """Answers busy ``times`` times (over all runs), then real results."""

    def __init__(self, calls: list, times: int):
        self.calls, self.times = calls, times

    def run(self, *, device, job):
        self.calls.append(job.key)
        if len(self.calls) <= self.times:
            raise DeviceBusy(f"device {device.id} is busy")
        return ["0" * device.size] * job.shots


def test_a_device_answering_busy_in_a_row_is_drained_with_the_reason_shown(
    make_device, make_program, staff_api, settings
):
    settings.DEVICE_MAX_BUSY_ANSWERS = 3
    calls: list = []
    make_device("qpu-b", address="http://127.0.0.1:9/qpu")
    make_program(jobs=1)
    worker = Worker(client_factory=lambda d, stop_event=None: BusyThen(calls, times=100), listen=False)
    for _ in range(5):
        worker.run_once()  # one busy answer per pass; a drained device gets nothing
    assert len(calls) == 3
    device = Device.objects.get(pk="qpu-b")
    reason = "drained by the scheduler: answered busy (HTTP 409) 3 times in a row"
    assert device.status == "draining" and device.busy_streak == 3 and device.status_reason == reason
    body = staff_api.get("/devices/qpu-b").json()
    assert body["status"] == "draining" and body["status_reason"] == reason
    job = Job.objects.get()  # handed back each time: not its fault
    assert job.status == JobStatus.QUEUED and job.attempts == 0 and job.requeues == 3

    assert staff_api.post("/devices/qpu-b/resume").status_code == 200
    body = staff_api.get("/devices/qpu-b").json()
    assert body["status"] == "online" and body["status_reason"] == ""
    assert Device.objects.get(pk="qpu-b").busy_streak == 0


def test_a_real_answer_resets_the_busy_streak(make_device, make_program, settings):
    settings.DEVICE_MAX_BUSY_ANSWERS = 3
    calls: list = []
    make_device("qpu-b", address="http://127.0.0.1:9/qpu")
    make_program(jobs=3)
    client = BusyThen(calls, times=2)
    worker = Worker(client_factory=lambda d, stop_event=None: client, listen=False)
    worker.run_once()
    worker.run_once()
    assert Device.objects.get(pk="qpu-b").busy_streak == 2
    worker.run_once()  # answers now: all three jobs run
    device = Device.objects.get(pk="qpu-b")
    assert device.busy_streak == 0 and device.status == "online" and device.status_reason == ""
    assert Job.objects.filter(status=JobStatus.DONE).count() == 3


# --- requeues are refunded and bounded ---------------------------------------------------------


def test_reregistering_a_device_repeatedly_fails_the_job_after_the_requeue_limit(make_device, make_program, settings):
    settings.JOB_MAX_REQUEUES = 3
    make_program(jobs=1, callback_url="http://127.0.0.1:9/hook")
    dev = make_device("qpu-r", size=4)
    for n in range(1, 4):
        assert claim(dev).attempts == 1
        device_register(device_id="qpu-r", address="sim", type="analog", size=4)  # the device restarted
        job = Job.objects.get()
        assert job.status == JobStatus.QUEUED and job.requeues == n and job.attempts == 0
    claim(dev)
    device_remove(device_id="qpu-r")
    job = Job.objects.get()
    assert job.status == JobStatus.FAILED and job.requeues == 3 and job.attempts == 0
    assert "JOB_MAX_REQUEUES" in job.error and "requeued 3 times" in job.error and "qpu-r" in job.error
    assert job.finished_at is not None and job.callback_status == "pending"


def test_expiring_leases_repeatedly_fails_the_job_after_the_requeue_limit(make_device, make_program, settings):
    settings.JOB_MAX_REQUEUES = 2
    make_program(jobs=1)
    dev = make_device()
    for expected in ([1], [1], []):
        job = claim(dev)
        Job.objects.filter(pk=job.id).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
        requeued = claims.jobs_requeue_expired()
        assert requeued.queued == [job.id for _ in expected]
    assert requeued.failed == [job.id] and requeued.callbacks == []
    row = Job.objects.get()
    assert row.status == JobStatus.FAILED and row.requeues == 2 and row.attempts == 0
    assert "worker stopped renewing" in row.error


def test_an_operator_requeue_gives_a_fresh_requeue_budget(make_device, make_program, settings):
    from jobs.services import jobs_requeue_failed

    settings.JOB_MAX_REQUEUES = 0
    make_program(jobs=1)
    dev = make_device()
    claim(dev)
    claims.jobs_requeue_for_device(device_id=dev.id)
    job = Job.objects.get()
    assert job.status == JobStatus.FAILED and job.requeues == 0 and "requeued 0 times" in job.error
    Job.objects.filter(pk=job.pk).update(requeues=5)
    assert jobs_requeue_failed(job_ids=[job.pk]) == 1
    job = Job.objects.get()
    assert job.status == JobStatus.QUEUED and job.requeues == 0 and job.attempts == 0


def test_failed_attempts_and_requeues_are_counted_apart(make_device, make_program, settings):
    make_program(jobs=1)
    dev = make_device()
    job = claim(dev)
    assert claims.job_fail_attempt(job_id=job.id, token=job.token, error="timeout", max_attempts=3) == ("queued", "")
    claim(dev)
    claims.jobs_requeue_for_device(device_id=dev.id)
    row = Job.objects.get()
    assert row.attempts == 1 and row.requeues == 1 and row.status == JobStatus.QUEUED


@pytest.mark.postgres
def test_a_device_removed_mid_job_again_and_again_ends_the_job(
    make_device,
    make_program,
    live_worker,  # noqa: F811
    settings,
):
    """The real runner and device removals racing it on PostgreSQL: every
    removal requeues the job (refunded), and the one after JOB_MAX_REQUEUES
    fails it; the job does not bounce forever."""
    settings.JOB_MAX_REQUEUES = 2
    started: queue.Queue = queue.Queue()

    class Blocking:
        def __init__(self, stop_event):
            self.stop_event = stop_event

        def run(self, *, device, job):
            started.put(job.key)
            self.stop_event.wait(30)  # until the runner is stopped (its device is gone)
            raise DeviceError("interrupted")

    make_device("qpu-x", address="sim")
    make_program(jobs=1)
    live_worker(client_factory=lambda d, stop_event=None: Blocking(stop_event), idle_wait=0.5, tick_seconds=0.05)
    for _ in range(3):
        started.get(timeout=20)
        device_remove(device_id="qpu-x")
        device_register(device_id="qpu-x", address="sim", type="analog", size=4)
    assert wait_until(lambda: Job.objects.get().status == JobStatus.FAILED)
    job = Job.objects.get()
    assert job.requeues == 2 and job.attempts == 0 and "JOB_MAX_REQUEUES" in job.error
    assert started.empty()


def test_the_admin_shows_why_the_scheduler_drained_a_device(make_device, admin_client):
    from devices.services import busy_drain_reason

    make_device("qpu-b", status="draining")
    Device.objects.filter(pk="qpu-b").update(status_reason=busy_drain_reason(5), busy_streak=5)
    page = admin_client.get("/admin/devices/device/").content.decode()
    assert "draining (drained by the scheduler: answered busy (HTTP 409) 5 times in a row)" in page
    page = admin_client.get("/admin/devices/device/qpu-b/change/").content.decode()
    assert "answered busy (HTTP 409) 5 times in a row" in page
