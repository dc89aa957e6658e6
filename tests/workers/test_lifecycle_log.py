"""The job lifecycle log (issue 8, point 3): one line per event on
``jobs.lifecycle``, its facts as record fields (so LOG_FORMAT=json carries
them), one line per submission however many jobs it holds."""

from __future__ import annotations

import json
import logging

import pytest

from core import outbound
from core.logs import JsonFormatter
from devices.clients import DeviceError
from devices.services import device_remove
from jobs import claims, services
from jobs.models import Job, JobStatus
from jobs.runner import Worker
from jobs.services import JobSpec
from jobs.webhooks import callback_deliver

pytestmark = pytest.mark.django_db


@pytest.fixture
def lifecycle(caplog):
    """The lifecycle records (INFO and up) captured so far, as a callable."""
    caplog.set_level(logging.INFO, logger="jobs.lifecycle")

    def records(event: str | None = None) -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name == "jobs.lifecycle" and (event is None or r.event == event)]

    return records


def fields(record: logging.LogRecord) -> dict:
    """What the JSON log line of the record holds."""
    return json.loads(JsonFormatter().format(record))


class Failing:
    def __init__(self, error: Exception):
        self.error = error

    def __call__(self, device, stop_event=None):
        error = self.error

        class Client:
            def run(self, *, device, job):
                raise error

        return Client()


def test_a_program_of_many_jobs_logs_one_submission_line(user, lifecycle):
    created = services.program_create(owner=user, priority=3, device_type="analog", jobs=[JobSpec()] * 2000)
    (line,) = lifecycle()
    entry = fields(line)
    assert entry["event"] == "submitted" and entry["level"] == "INFO"
    assert entry["program"] == created.program.key and entry["count"] == 2000
    assert created.job_keys[0] in entry["message"] and created.job_keys[-1] in entry["message"]


def test_a_single_job_submission_names_the_job(api, lifecycle):
    answer = api.post(
        "/jobs",
        {"id": "solo-1", "priority": 1, "user_id": "u1", "program_id": "prog-1", "device_type": "analog"},
        format="json",
    )
    assert answer.status_code == 201, answer.content
    (line,) = lifecycle("submitted")
    entry = fields(line)
    assert entry["job"] == "solo-1" and entry["program"] == "prog-1" and entry["count"] == 1


def test_a_run_logs_started_and_finished_with_device_status_and_ms(make_device, make_program, recording, lifecycle):
    _, factory = recording
    program = make_program(jobs=1)
    make_device("qpu-a")
    Worker(client_factory=factory, listen=False).run_once()
    (started,) = lifecycle("started")
    (finished,) = lifecycle("finished")
    key = f"{program.key}-j0"
    s = fields(started)
    assert s["job"] == key and s["device"] == "qpu-a" and s["attempt"] == 1 and s["level"] == "INFO"
    f = fields(finished)
    assert f["job"] == key and f["device"] == "qpu-a" and f["status"] == "done" and f["level"] == "INFO"
    assert isinstance(f["ms"], float) and f["ms"] >= 0


def test_a_failed_attempt_then_a_failed_job_log_fixed_reasons(make_device, make_program, lifecycle, settings):
    settings.JOB_MAX_ATTEMPTS = 2
    settings.DEVICE_QUARANTINE_FAILURES = 0
    program = make_program(jobs=1)
    make_device("qpu-a")
    Worker(client_factory=Failing(DeviceError("device qpu-a answered HTTP 500")), listen=False).run_once()
    key = f"{program.key}-j0"
    first, second = lifecycle("attempt_failed")
    assert fields(first)["attempt"] == 1 and fields(second)["attempt"] == 2
    entry = fields(first)
    assert entry["job"] == key and entry["device"] == "qpu-a" and entry["reason"] == "device qpu-a answered HTTP 500"
    (requeued,) = lifecycle("requeued")
    assert fields(requeued)["job"] == key and "attempt 1 failed on qpu-a" in fields(requeued)["reason"]
    (failed,) = lifecycle("failed")
    assert fields(failed)["job"] == key and fields(failed)["status"] == "failed"
    assert Job.objects.get().status == JobStatus.FAILED


def test_an_unexpected_error_is_logged_by_its_type_only(make_device, make_program, lifecycle, settings):
    settings.JOB_MAX_ATTEMPTS = 1
    make_program(jobs=1)
    make_device("qpu-a")
    Worker(client_factory=Failing(RuntimeError("<html>device secret page</html>")), listen=False).run_once()
    (line,) = lifecycle("attempt_failed")
    assert fields(line)["reason"] == "unexpected RuntimeError from the device client"
    assert "secret" not in line.getMessage()


def test_a_removed_device_requeues_its_job_with_the_why(make_device, make_program, lifecycle):
    program = make_program(jobs=1)
    make_device("qpu-a", status="online")
    from devices.models import Device

    Device.objects.filter(pk="qpu-a").update(runner="w1")
    job = claims.job_claim(device_id="qpu-a", device_type="analog", device_size=4, runner="w1", lease_seconds=30)
    assert job is not None
    device_remove(device_id="qpu-a")
    (line,) = lifecycle("requeued")
    entry = fields(line)
    assert entry["job"] == f"{program.key}-j0" and "qpu-a" in entry["reason"]


def test_a_job_requeued_too_often_logs_failed(make_device, make_program, lifecycle):
    program = make_program(jobs=1)
    make_device("qpu-a")
    from devices.models import Device

    Device.objects.filter(pk="qpu-a").update(runner="w1")
    claims.job_claim(device_id="qpu-a", device_type="analog", device_size=4, runner="w1", lease_seconds=30)
    claims.jobs_requeue_for_device(device_id="qpu-a", reason="device qpu-a went silent", max_requeues=0)
    (line,) = lifecycle("failed")
    entry = fields(line)
    assert entry["job"] == f"{program.key}-j0" and "JOB_MAX_REQUEUES" in entry["reason"] and entry["level"] == "WARNING"


def test_cancels_log_one_line_each(user, lifecycle):
    one = services.program_create(owner=user, priority=0, device_type="analog", jobs=[JobSpec()])
    many = services.program_create(owner=user, priority=0, device_type="analog", jobs=[JobSpec()] * 50)
    services.job_cancel(job_id=Job.objects.get(key=one.job_keys[0]).pk)
    services.program_cancel(program_id=many.program.pk)
    job_line, program_line = lifecycle("cancelled")
    assert fields(job_line)["job"] == one.job_keys[0] and fields(job_line)["count"] == 1
    assert fields(program_line)["program"] == many.program.key and fields(program_line)["count"] == 50


@pytest.fixture
def finished_job(make_device, make_program, recording, settings):
    settings.CALLBACK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    _, factory = recording
    make_program(jobs=1, callback_url="http://127.0.0.1:9/hook")
    make_device("qpu-a")
    Worker(client_factory=factory, listen=False).run_once()
    job = Job.objects.get()
    assert job.callback_status == "pending"
    return job


def answering(status: int):
    def post(url, *, body, headers, timeout, allowed, max_body=0):
        return outbound.Answer(status=status, body=b"")

    return post


def test_callback_delivered_is_logged(finished_job, lifecycle):
    assert callback_deliver(job_id=finished_job.pk, post=answering(204)) == "delivered"
    (line,) = lifecycle("callback_delivered")
    assert fields(line)["job"] == finished_job.key and fields(line)["attempt"] == 1


def test_callback_failed_then_gave_up_are_logged(finished_job, lifecycle, settings):
    settings.CALLBACK_MAX_ATTEMPTS = 2
    assert callback_deliver(job_id=finished_job.pk, post=answering(500)) == "pending"
    assert callback_deliver(job_id=finished_job.pk, post=answering(500)) == "failed"
    (failed,) = lifecycle("callback_failed")
    (gave_up,) = lifecycle("callback_gave_up")
    assert fields(failed)["reason"] == "receiver answered HTTP 500" and fields(failed)["attempt"] == 1
    assert fields(gave_up)["job"] == finished_job.key and fields(gave_up)["attempt"] == 2
    assert gave_up.levelno == logging.WARNING


def _sample(name: str, **labels) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_runs_and_deliveries_feed_the_event_metrics(make_device, make_program, recording, settings):
    settings.CALLBACK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.JOB_MAX_ATTEMPTS = 1
    _, factory = recording
    done_before = _sample("qpu_jobs_finished_total", device_type="metrics-run", status="done")
    failed_before = _sample("qpu_jobs_finished_total", device_type="metrics-run", status="failed")
    waits_before = _sample("qpu_job_claim_to_start_seconds_count", device_type="metrics-run")
    runs_before = _sample("qpu_job_run_seconds_count", device_type="metrics-run")
    delivered_before = _sample("qpu_webhook_deliveries_total", outcome="delivered")
    make_program(jobs=2, device_type="metrics-run", callback_url="http://127.0.0.1:9/hook")
    make_device("qpu-m", type="metrics-run")
    Worker(client_factory=factory, listen=False).run_once()
    assert _sample("qpu_jobs_finished_total", device_type="metrics-run", status="done") == done_before + 2
    assert _sample("qpu_job_claim_to_start_seconds_count", device_type="metrics-run") == waits_before + 2
    assert _sample("qpu_job_run_seconds_count", device_type="metrics-run") == runs_before + 2
    callback_deliver(job_id=Job.objects.first().pk, post=answering(204))
    assert _sample("qpu_webhook_deliveries_total", outcome="delivered") == delivered_before + 1
    make_program(jobs=1, device_type="metrics-run")
    Worker(client_factory=Failing(DeviceError("device qpu-m answered HTTP 500")), listen=False).run_once()
    assert _sample("qpu_jobs_finished_total", device_type="metrics-run", status="failed") == failed_before + 1
