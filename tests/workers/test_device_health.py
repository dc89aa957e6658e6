"""Device health (issue 8, point 5): a device on which several jobs in a row
fail is quarantined (drained, reason kept) until resume, and a job that
failed on a device goes to another device first."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from devices.clients import DeviceBusy, DeviceError
from devices.models import Device
from devices.services import (
    device_heartbeat,
    device_record_failure,
    device_register,
    device_resume,
    quarantine_reason,
)
from jobs import claims
from jobs.models import Job, JobStatus
from jobs.runner import Worker

pytestmark = pytest.mark.django_db

HTTP_500 = "device qpu-bad answered HTTP 500"


class ScriptedClients:
    """Device clients by device id: ``fail`` maps a device id to the error it
    raises on every run (others answer at once); ``ran`` records (device, job)."""

    def __init__(self, fail: dict[str, Exception] | None = None):
        self.fail = fail or {}
        self.ran: list[tuple[str, str]] = []

    def __call__(self, device, stop_event=None):
        outer = self

        class Client:
            def run(self, *, device, job):
                outer.ran.append((device.id, job.key))
                if device.id in outer.fail:
                    raise outer.fail[device.id]
                return ["1" * device.size for _ in range(job.shots)]

        return Client()


def _live(device_id: str, runner: str = "w1") -> None:
    """The device is driven by a live runner (as a worker's lease makes it)."""
    Device.objects.filter(pk=device_id).update(runner=runner, runner_expires_at=timezone.now() + timedelta(seconds=60))


def _claim(device: Device, runner: str = "w1"):
    _live(device.id, runner)
    return claims.job_claim(
        device_id=device.id, device_type=device.type, device_size=device.size, runner=runner, lease_seconds=30
    )


def _fail(job, error: str = "device timed out") -> tuple[str, str]:
    return claims.job_fail_attempt(job_id=job.id, token=job.token, error=error, max_attempts=3)


# --- quarantine ---------------------------------------------------------------


def test_three_jobs_failing_in_a_row_quarantine_the_device_with_the_reason(
    make_device, make_program, settings, staff_api
):
    settings.JOB_MAX_ATTEMPTS = 1
    settings.DEVICE_QUARANTINE_FAILURES = 3
    program = make_program(jobs=5)
    make_device("qpu-bad")
    clients = ScriptedClients(fail={"qpu-bad": DeviceError(HTTP_500)})
    Worker(client_factory=clients, listen=False).run_once()
    device = Device.objects.get(pk="qpu-bad")
    reason = f"quarantined: 3 jobs failed in a row (last: {HTTP_500})"
    assert device.status == "draining" and device.status_reason == reason and device.failure_streak == 3
    # It took no job after the third failure: the rest wait for a healthy device.
    assert [key for _, key in clients.ran] == [f"{program.key}-j{i}" for i in range(3)]
    assert Job.objects.filter(status=JobStatus.QUEUED).count() == 2
    shown = staff_api.get("/devices/qpu-bad").json()
    assert shown["status"] == "draining" and shown["status_reason"] == reason


def test_the_same_job_failing_again_is_not_another_job_in_the_row(make_device, make_program, settings):
    # One bad job alone uses up its own attempts; it cannot quarantine a good device.
    settings.JOB_MAX_ATTEMPTS = 3
    settings.DEVICE_QUARANTINE_FAILURES = 2
    make_program(jobs=1)
    make_device("qpu-a")
    clients = ScriptedClients(fail={"qpu-a": DeviceError("device qpu-a answered HTTP 500")})
    Worker(client_factory=clients, listen=False).run_once()
    assert len(clients.ran) == 3 and Job.objects.get().status == JobStatus.FAILED
    device = Device.objects.get(pk="qpu-a")
    assert device.status == "online" and device.failure_streak == 1 and device.status_reason == ""


def test_a_stored_result_resets_the_count(make_device, make_program, settings):
    settings.DEVICE_QUARANTINE_FAILURES = 3
    make_device("qpu-a")
    jobs = list(make_program(jobs=4).jobs.order_by("id"))
    for job in jobs[:2]:
        assert device_record_failure(device_id="qpu-a", job_id=job.id, error="e", max_failures=3).status == "online"
    assert Device.objects.get(pk="qpu-a").failure_streak == 2
    clients = ScriptedClients()
    Worker(client_factory=clients, listen=False).run_once()  # the device runs jobs successfully
    assert Device.objects.get(pk="qpu-a").failure_streak == 0
    record = device_record_failure(device_id="qpu-a", job_id=jobs[2].id, error="e", max_failures=3)
    assert record.failure_streak == 1 and record.status == "online" and not record.quarantined_now


def test_busy_answers_are_not_failures(make_device, make_program, settings):
    settings.DEVICE_QUARANTINE_FAILURES = 1
    settings.DEVICE_MAX_BUSY_ANSWERS = 100
    make_program(jobs=1)
    make_device("qpu-b")
    clients = ScriptedClients(fail={"qpu-b": DeviceBusy("device qpu-b is busy (HTTP 409)")})
    Worker(client_factory=clients, listen=False).run_once()
    device = Device.objects.get(pk="qpu-b")
    assert device.busy_streak == 1 and device.failure_streak == 0 and device.status == "online"


def test_zero_turns_quarantine_off(make_device, make_program, settings):
    make_device("qpu-a")
    jobs = list(make_program(jobs=5).jobs.all())
    for job in jobs:
        record = device_record_failure(device_id="qpu-a", job_id=job.id, error="e", max_failures=0)
    assert record.failure_streak == 5 and record.status == "online"


def test_an_operator_drain_is_left_as_it_is(make_device, make_program):
    make_device("qpu-a", status="draining")
    jobs = list(make_program(jobs=3).jobs.all())
    for job in jobs:
        record = device_record_failure(device_id="qpu-a", job_id=job.id, error="e", max_failures=2)
    assert record.status == "draining" and record.status_reason == "" and not record.quarantined_now


def test_the_reason_is_cut_to_the_field_and_a_gone_device_is_none(make_device, make_program):
    make_device("qpu-a")
    job = make_program(jobs=1).jobs.get()
    record = device_record_failure(device_id="qpu-a", job_id=job.id, error="x" * 2000, max_failures=1)
    assert record.quarantined_now and len(record.status_reason) == 500
    assert record.status_reason == quarantine_reason(failures=1, last_error="x" * 2000)
    assert device_record_failure(device_id="nope", job_id=job.id, error="e", max_failures=1) is None


def _quarantine(device_id: str, make_program) -> Device:
    for job in make_program(jobs=2).jobs.all():
        device_record_failure(device_id=device_id, job_id=job.id, error=HTTP_500, max_failures=2)
    device = Device.objects.get(pk=device_id)
    assert device.status == "draining" and device.status_reason.startswith("quarantined: 2 jobs")
    return device


def test_resume_clears_the_quarantine(make_device, make_program):
    make_device("qpu-a")
    _quarantine("qpu-a", make_program)
    device_resume(device_id="qpu-a")
    device = Device.objects.get(pk="qpu-a")
    assert device.status == "online" and device.status_reason == ""
    assert device.failure_streak == 0 and device.failure_last_job is None


def test_resume_through_the_api_clears_it(make_device, make_program, staff_api):
    make_device("qpu-a")
    _quarantine("qpu-a", make_program)
    answer = staff_api.post("/devices/qpu-a/resume")
    assert answer.status_code == 200, answer.content
    assert answer.json()["status"] == "online" and answer.json()["status_reason"] == ""
    assert Device.objects.get(pk="qpu-a").failure_streak == 0


def test_a_restart_or_a_silence_does_not_lift_a_quarantine(make_device, make_program):
    make_device("qpu-a", address="http://127.0.0.1:9101")
    reason = _quarantine("qpu-a", make_program).status_reason
    device, created = device_register(device_id="qpu-a", address="http://127.0.0.1:9101", type="analog", size=4)
    assert not created and device.status == "draining" and device.status_reason == reason
    Device.objects.filter(pk="qpu-a").update(status="offline")
    device = device_heartbeat(device_id="qpu-a")
    assert device.status == "draining" and device.status_reason == reason


def test_a_restart_still_clears_a_busy_drain(make_device):
    make_device("qpu-a", status="draining")
    Device.objects.filter(pk="qpu-a").update(status_reason="drained by the scheduler: answered busy", busy_streak=5)
    device, _ = device_register(device_id="qpu-a", address="sim", type="analog", size=4)
    assert device.status == "online" and device.status_reason == "" and device.busy_streak == 0


# --- another device first ------------------------------------------------------


def test_a_failed_job_goes_to_another_device_first(make_device, make_program):
    first = make_program(priority=5, jobs=1)
    later = make_program(priority=1, jobs=1)
    bad, good = make_device("qpu-bad"), make_device("qpu-good")
    _live("qpu-good", runner="w2")
    job = _claim(bad)
    assert job.key == f"{first.key}-j0"
    assert _fail(job) == ("queued", "")
    assert Job.objects.get(pk=job.id).last_failed_device == "qpu-bad"
    # The bad device passes over it (to the next job), the other device takes it.
    assert _claim(bad).key == f"{later.key}-j0"
    again = _claim(good, runner="w2")
    assert again.key == job.key and again.attempts == 2


@pytest.mark.parametrize("other", ["draining", "offline", "no runner", "runner dead", "too small", "other type"])
def test_without_another_device_that_could_run_it_the_same_device_takes_it_again(make_device, make_program, other):
    make_program(jobs=1, min_size=4)
    bad = make_device("qpu-bad", size=4)
    make_device(
        "qpu-other",
        size=2 if other == "too small" else 4,
        type="digital" if other == "other type" else "analog",
        status=other if other in ("draining", "offline") else "online",
    )
    if other == "runner dead":
        Device.objects.filter(pk="qpu-other").update(
            runner="w2", runner_expires_at=timezone.now() - timedelta(seconds=1)
        )
    elif other != "no runner":
        _live("qpu-other", runner="w2")
    job = _claim(bad)
    _fail(job)
    again = _claim(bad)
    assert again is not None and again.id == job.id and again.attempts == 2


def test_another_device_whose_results_would_be_too_large_does_not_count(make_device, make_program, settings):
    settings.RESULT_MAX_BITS = 100
    make_program(jobs=1, shots=20)  # 4 x 20 = 80 bits fit, 8 x 20 = 160 do not
    bad = make_device("qpu-bad", size=4)
    make_device("qpu-big", size=8)
    _live("qpu-big", runner="w2")
    job = _claim(bad)
    _fail(job)
    assert _claim(bad).id == job.id


def test_end_to_end_the_failed_jobs_run_elsewhere_and_the_bad_device_is_quarantined(
    make_device, make_program, settings
):
    settings.JOB_MAX_ATTEMPTS = 3
    settings.DEVICE_QUARANTINE_FAILURES = 3
    program = make_program(jobs=6)
    make_device("qpu-a")
    make_device("qpu-b")
    _live("qpu-b", runner="another-worker")  # driven elsewhere: the first worker gets qpu-a only
    clients = ScriptedClients(fail={"qpu-a": DeviceError("device qpu-a answered HTTP 502")})
    Worker(client_factory=clients, listen=False).run_once()
    Device.objects.filter(pk="qpu-b").update(runner="", runner_expires_at=None)  # that worker stops
    Worker(client_factory=clients, listen=False).run_once()
    bad_runs = [key for device, key in clients.ran if device == "qpu-a"]
    # Each failed job was passed over by qpu-a (never retried there), and
    # qpu-a stopped after three different jobs.
    assert bad_runs == [f"{program.key}-j{i}" for i in range(3)]
    assert set(Job.objects.values_list("status", flat=True)) == {JobStatus.DONE}
    assert set(Job.objects.values_list("device_id", flat=True)) == {"qpu-b"}
    assert Device.objects.get(pk="qpu-a").status_reason.startswith("quarantined: 3 jobs failed in a row")


@pytest.mark.postgres
def test_the_claim_still_walks_the_partial_index_on_postgres(make_device, make_program, user):
    program = make_program(jobs=1)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO jobs_job (key, program_id, owner_id, priority, device_type, instructions, shots, status,
                                  attempts, requeues, created_at, error, lease_token, callback_status,
                                  callback_attempts, callback_error, last_failed_device)
            SELECT 'bulk-' || g, %s, %s, g %% 7, CASE WHEN g %% 2 = 0 THEN 'analog' ELSE 'digital' END, '[]'::jsonb,
                   1, CASE WHEN g %% 3 = 0 THEN 'done' ELSE 'queued' END, 0, 0, now(), '', '', '', 0, '',
                   CASE WHEN g %% 50 = 0 THEN 'qpu-a' END
              FROM generate_series(1, 30000) AS g
            """,
            [program.pk, user.pk],
        )
        cursor.execute("ANALYZE jobs_job")
    dev = make_device("qpu-a")
    _live(dev.id)
    sql, params = claims._claim_sql(
        device_id=dev.id,
        device_type=dev.type,
        device_size=dev.size,
        runner="w1",
        token="t",
        now=timezone.now(),
        lease_seconds=30,
    )
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Index Scan using job_queue_idx" in plan, plan
    assert "Sort" not in plan, plan
