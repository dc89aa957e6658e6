"""queue_position stays exact: the one-statement count against a brute-force
ranking of the queued jobs, over mixed priorities, types, sizes and states.
Runs on SQLite and, with DATABASE_URL, on PostgreSQL (CI)."""

from __future__ import annotations

import random

import pytest

from jobs.models import Job, JobStatus
from jobs.selectors import job_queue_position
from tests.factories import make_job, make_program

pytestmark = pytest.mark.django_db


def brute_force_position(job: Job, queued: list[Job]) -> int:
    """Its place in claim order (priority desc, then id) among the queued
    jobs of its device type, whatever their size requirements."""
    same = sorted((j for j in queued if j.device_type == job.device_type), key=lambda j: (-j.priority, j.pk))
    return [j.pk for j in same].index(job.pk) + 1


def test_queue_position_matches_a_brute_force_count_over_a_mixed_queue(user):
    rng = random.Random(8)
    programs = [
        make_program(user, priority=priority, device_type=device_type)
        for priority in (-5, 0, 3, 3, 7, 2_000_000_000)
        for device_type in ("analog", "gate", "photonic")
    ]
    statuses = [JobStatus.QUEUED] * 6 + [JobStatus.RUNNING, JobStatus.DONE, JobStatus.CANCELLED, JobStatus.FAILED]
    for _ in range(300):
        make_job(rng.choice(programs), status=rng.choice(statuses), min_size=rng.choice([None, 1, 4, 16]))
    # A few requeued jobs go back to their original place (their id), not the end.
    for job in Job.objects.filter(status=JobStatus.RUNNING)[:5]:
        Job.objects.filter(pk=job.pk).update(status=JobStatus.QUEUED)
    jobs = list(Job.objects.all())
    queued = [j for j in jobs if j.status == JobStatus.QUEUED]
    assert len(queued) > 150
    for job in jobs:
        expected = brute_force_position(job, queued) if job.status == JobStatus.QUEUED else None
        assert job_queue_position(job) == expected, (job.key, job.device_type, job.priority, job.status)


def test_the_api_shows_the_same_exact_position(api, user):
    low = make_program(user, priority=1)
    high = make_program(user, priority=9)
    jobs = [make_job(low), make_job(high), make_job(low, min_size=64), make_job(high)]
    make_job(make_program(user, priority=50, device_type="gate"))  # another type: never ahead
    positions = [api.get(f"/jobs/{j.key}").json()["queue_position"] for j in jobs]
    assert positions == [3, 1, 4, 2]
