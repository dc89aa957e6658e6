"""The fast job output (``job_detail_data``) says exactly what the schema's
serializer (``JobDetailSerializer``) says, for jobs in every state."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.models import CallbackStatus, JobStatus
from jobs.serializers import JobDetailSerializer, job_detail_data
from tests.factories import make_device, make_job, make_program

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
