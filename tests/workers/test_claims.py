"""The durable queue: claim order, filters, fencing, requeues (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from devices.models import Device
from jobs import claims
from jobs.models import Job, JobStatus

pytestmark = pytest.mark.django_db


def claim(device: Device, runner: str = "w1"):
    Device.objects.filter(pk=device.pk).update(runner=runner)
    return claims.job_claim(
        device_id=device.id, device_type=device.type, device_size=device.size, runner=runner, lease_seconds=30
    )


def test_claims_follow_priority_then_submission_order_across_programs(make_device, make_program):
    low = make_program(priority=1, jobs=2)
    high = make_program(priority=5, jobs=2)
    mid = make_program(priority=3, jobs=1)
    dev = make_device()
    keys = []
    while (job := claim(dev)) is not None:
        keys.append(job.key)
        Job.objects.filter(pk=job.id).update(status=JobStatus.DONE)
    expected = [f"{high.key}-j0", f"{high.key}-j1", f"{mid.key}-j0", f"{low.key}-j0", f"{low.key}-j1"]
    assert keys == expected


def test_claim_matches_device_type_and_minimum_size(make_device, make_program):
    make_program(device_type="digital", priority=9)
    big = make_program(device_type="analog", priority=8, min_size=10)
    small = make_program(device_type="analog", priority=1)
    dev = make_device(type="analog", size=4)
    job = claim(dev)
    assert job.key == f"{small.key}-j0"  # the other type and the too-big job are skipped
    big_dev = make_device(type="analog", size=16)
    assert claim(big_dev, runner="w2").key == f"{big.key}-j0"


def test_claim_marks_job_running_on_the_device(make_device, make_program):
    program = make_program()
    dev = make_device()
    job = claim(dev)
    row = Job.objects.get(pk=job.id)
    assert row.status == JobStatus.RUNNING and row.device_id == dev.id and row.attempts == 1
    assert row.started_at is not None and row.lease_expires_at > timezone.now()
    assert row.program_id == program.id


@pytest.mark.parametrize("status", ["draining", "offline"])
def test_no_claim_for_a_device_that_is_not_online(make_device, make_program, status):
    make_program()
    dev = make_device(status=status)
    assert claim(dev) is None
    assert Job.objects.get().status == JobStatus.QUEUED


def test_no_claim_by_a_runner_that_does_not_hold_the_device(make_device, make_program):
    make_program()
    dev = make_device()
    Device.objects.filter(pk=dev.pk).update(runner="someone-else")
    assert (
        claims.job_claim(device_id=dev.id, device_type=dev.type, device_size=dev.size, runner="me", lease_seconds=30)
        is None
    )


def test_result_is_stored_exactly_once_and_stale_runs_are_rejected(make_device, make_program):
    make_program()
    dev = make_device()
    first = claim(dev)
    assert claims.jobs_requeue_for_device(device_id=dev.id).count == 1  # e.g. device removed mid-run
    second = claim(dev)
    assert second.id == first.id and second.token != first.token
    assert claims.job_finish(job_id=first.id, token=first.token, result=["0000"]) is None
    assert claims.job_finish(job_id=second.id, token=second.token, result=["1111"]) == ""
    assert claims.job_finish(job_id=second.id, token=second.token, result=["0101"]) is None
    job = Job.objects.get()
    # The interrupted run was refunded (not the job's fault): one attempt, one requeue.
    assert job.status == JobStatus.DONE and job.result == ["1111"] and job.attempts == 1 and job.requeues == 1


def test_failed_attempts_requeue_in_place_then_fail_with_the_error(make_device, make_program):
    first = make_program(priority=5)
    later = make_program(priority=5)
    dev = make_device()
    for attempt in (1, 2):
        job = claim(dev)
        # Requeued in its original place: it comes back before the later job of equal priority.
        assert job.key == f"{first.key}-j0" and job.attempts == attempt
        assert claims.job_fail_attempt(job_id=job.id, token=job.token, error="timeout", max_attempts=3) == (
            "queued",
            "",
        )
        row = Job.objects.get(pk=job.id)
        assert row.status == JobStatus.QUEUED and row.error == "timeout" and row.device_id is None
    job = claim(dev)
    assert job.key == f"{first.key}-j0" and job.attempts == 3
    assert claims.job_fail_attempt(job_id=job.id, token=job.token, error="device exploded", max_attempts=3) == (
        "failed",
        "",
    )
    row = Job.objects.get(pk=job.id)
    assert row.status == JobStatus.FAILED and row.error == "device exploded" and row.finished_at is not None
    assert row.device_id == dev.id
    assert claim(dev).key == f"{later.key}-j0"


def test_finishing_a_job_with_a_callback_url_marks_delivery_pending(make_device, make_program):
    make_program(callback_url="http://127.0.0.1:9/hook")
    dev = make_device()
    job = claim(dev)
    assert claims.job_finish(job_id=job.id, token=job.token, result=["0000"]) == "pending"
    assert Job.objects.get().callback_status == "pending"


def test_release_hands_the_job_back_without_counting_an_attempt(make_device, make_program):
    make_program()
    dev = make_device()
    job = claim(dev)
    assert claims.job_release(job_id=job.id, token=job.token)
    row = Job.objects.get()
    assert row.status == JobStatus.QUEUED and row.attempts == 0 and row.lease_token == ""


def test_expired_leases_are_requeued_and_live_ones_are_not(make_device, make_program):
    make_program(jobs=2)
    a, b = make_device(), make_device()
    ja, jb = claim(a), claim(b, runner="w2")
    Job.objects.filter(pk=ja.id).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert claims.jobs_requeue_expired().queued == [ja.id]
    assert Job.objects.get(pk=ja.id).status == JobStatus.QUEUED
    assert Job.objects.get(pk=jb.id).status == JobStatus.RUNNING
