"""The fast job output (``job_detail_data``) says exactly what the schema's
serializer (``JobDetailSerializer``) says, for jobs in every state."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import selectors
from jobs.exceptions import JobNotFound
from jobs.models import CallbackStatus, Job, JobStatus
from jobs.serializers import JobDetailSerializer, job_detail_data
from tests.factories import make_device, make_job, make_program, make_user

pytestmark = pytest.mark.django_db


def test_the_fast_output_equals_the_serializer_for_every_kind_of_job(user):
    now = timezone.now()
    device = make_device("d1", size=2)
    program = make_program(user, priority=4, client_user_id="client-9", callback_url="https://client.example/r")
    make_job(
        program,
        status=JobStatus.DONE,
        device=device,
        started_at=now - timedelta(seconds=3),
        finished_at=now,
        result=["01", "10"],
        shots=2,
        callback_status=CallbackStatus.DELIVERED,
        callback_attempts=1,
        callback_delivered_at=now,
    )
    jobs = [
        make_job(program, instructions=[{"op": "h", "q": 0}], min_size=2),
        make_job(program, min_size=64),
        make_job(program, status=JobStatus.RUNNING, device=device),
        make_job(program, status=JobStatus.FAILED, error="device d1 timed out", attempts=3),
        make_job(make_program(user, device_type="nowhere")),
    ]
    for job in jobs:
        expected = JobDetailSerializer(job).data
        job.__dict__.pop("_queue_info", None)
        assert job_detail_data(job) == expected
    assert set(JobDetailSerializer.Meta.fields) == set(job_detail_data(jobs[0]))


def test_the_api_answers_with_it(api, user):
    job = make_job(make_program(user))
    assert api.get(f"/jobs/{job.key}").json() == JobDetailSerializer(job).data


def test_the_one_statement_read_equals_the_orm_read_for_every_kind_of_job(user, staff_user):
    """``job_get_detail`` (one prepared statement on PostgreSQL: job, program,
    exact position, the type's devices) answers what ``job_get`` followed by
    ``job_queue_info`` answers, estimate included."""
    now = timezone.now()
    busy = make_device("busy", size=4)
    make_device("idle", size=8)
    make_device("off", size=16, status="offline")
    program = make_program(user, priority=2, client_user_id="client-1", jobs=3)
    make_program(user, priority=7, jobs=2)  # ahead of the first program's jobs
    started = now - timedelta(seconds=1, microseconds=123_456)
    make_job(program, status=JobStatus.RUNNING, device=busy, started_at=started)
    make_job(
        program,
        status=JobStatus.DONE,
        device=busy,
        started_at=now - timedelta(seconds=9),
        finished_at=now,
        result=["1"],
    )
    jobs = [
        *Job.objects.filter(program=program).order_by("id"),
        make_job(program, min_size=8),
        make_job(program, min_size=32),  # too large for every device: a warning
        make_job(make_program(user, device_type="nowhere")),
    ]
    for job in jobs:
        reference = selectors.job_get(user=user, key=job.key)
        selectors.job_queue_info(reference, now=now)
        fast = selectors.job_get_detail(user=user, key=job.key, now=now)
        assert job_detail_data(fast) == job_detail_data(reference), job.key
        assert fast.program.key == program.key or job.device_type == "nowhere"
    queued = selectors.job_get_detail(user=user, key=jobs[0].key, now=now)
    assert job_detail_data(queued)["queue_position"] == 3  # two jobs of priority 7 ahead
    assert job_detail_data(queued)["estimated_start"] is not None


def test_the_one_statement_read_keeps_the_visibility_rule(user, staff_user):
    other = make_user()
    job = make_job(make_program(other))
    with pytest.raises(JobNotFound):
        selectors.job_get_detail(user=user, key=job.key)
    with pytest.raises(JobNotFound):
        selectors.job_get_detail(user=user, key="no\x00such")
    assert selectors.job_get_detail(user=other, key=job.key).pk == job.pk
    assert selectors.job_get_detail(user=staff_user, key=job.key).pk == job.pk
