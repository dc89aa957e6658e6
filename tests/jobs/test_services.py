from __future__ import annotations

import threading

import pytest
from django.db import connection

from core.exceptions import DomainError
from jobs import claims, services
from jobs.exceptions import DuplicateId, JobNotCancellable, ProgramMismatch
from jobs.models import Job, JobStatus, Program
from jobs.selectors import job_queue_position
from jobs.services import JobSpec
from tests.factories import make_device, make_job, make_program, make_user

pytestmark = pytest.mark.django_db


def claim(device):
    """Claim the next job for ``device`` the way a worker does: as the runner holding it."""
    type(device).objects.filter(pk=device.pk).update(runner="test-runner")
    return claims.job_claim(
        device_id=device.pk, device_type=device.type, device_size=device.size, runner="test-runner", lease_seconds=30
    )


def test_program_create_copies_program_fields_onto_jobs_in_order(user):
    specs = [JobSpec(key="a", instructions={"x": 1}, shots=3, min_size=2), JobSpec(), JobSpec(key="c")]
    created = services.program_create(
        owner=user,
        priority=7,
        device_type="analog",
        jobs=specs,
        callback_url="http://cb.example/x",
        client_user_id="u1",
    )
    assert created.job_keys[0] == "a" and created.job_keys[2] == "c" and len(created.job_keys[1]) == 32
    jobs = list(Job.objects.order_by("id"))
    assert [j.key for j in jobs] == created.job_keys
    assert {(j.priority, j.device_type, j.owner_id, j.program_id) for j in jobs} == {
        (7, "analog", user.pk, created.program.pk)
    }
    assert (jobs[0].instructions, jobs[0].shots, jobs[0].min_size) == ({"x": 1}, 3, 2)
    assert created.program.callback_url == "http://cb.example/x" and created.program.client_user_id == "u1"


def test_program_create_refuses_empty_and_oversized_programs(user, settings):
    settings.PROGRAM_MAX_JOBS = 3
    with pytest.raises(DomainError) as exc:
        services.program_create(owner=user, priority=0, device_type="analog", jobs=[])
    assert exc.value.field == "jobs"
    with pytest.raises(DomainError):
        services.program_create(owner=user, priority=0, device_type="analog", jobs=[JobSpec()] * 4)
    assert Program.objects.count() == 0


def test_program_create_duplicate_ids_change_nothing(user):
    make_job(make_program(user, key="old"), key="taken")
    with pytest.raises(DuplicateId) as exc:
        services.program_create(owner=user, priority=0, device_type="a", jobs=[JobSpec(key="ok"), JobSpec(key="taken")])
    assert exc.value.field == "jobs[1].id"
    with pytest.raises(DomainError) as exc:
        services.program_create(owner=user, priority=0, device_type="a", jobs=[JobSpec(key="z"), JobSpec(key="z")])
    assert exc.value.field == "jobs[1].id" and not isinstance(exc.value, DuplicateId)
    assert Program.objects.count() == 1 and Job.objects.count() == 1


def test_job_submit_joins_and_checks_the_program(user, other_user):
    first = services.job_submit(owner=user, priority=2, device_type="analog", key="j1", program_key="p")
    second = services.job_submit(owner=user, priority=2, device_type="analog", key="j2", program_key="p")
    assert first.program_id == second.program_id
    with pytest.raises(ProgramMismatch) as exc:
        services.job_submit(owner=other_user, priority=2, device_type="analog", key="j3", program_key="p")
    assert exc.value.field == "program_id"
    with pytest.raises(ProgramMismatch) as exc:
        services.job_submit(owner=user, priority=3, device_type="analog", key="j3", program_key="p")
    assert exc.value.field == "priority"
    assert Job.objects.count() == 2


def test_job_cancel_is_refused_once_a_worker_claimed_it(user):
    job = make_job(make_program(user))
    device = make_device(type=job.device_type)
    claimed = claim(device)
    assert claimed.id == job.pk
    with pytest.raises(JobNotCancellable) as exc:
        services.job_cancel(job_id=job.pk)
    assert exc.value.field == "status"
    assert Job.objects.get(pk=job.pk).status == JobStatus.RUNNING


def test_a_cancelled_job_is_never_claimed(user):
    program = make_program(user)
    first = make_job(program)
    second = make_job(program)
    services.job_cancel(job_id=first.pk)
    device = make_device(type=program.device_type)
    claimed = claim(device)
    assert claimed.id == second.pk
    assert claim(device) is None


def test_requeued_failed_job_is_claimed_again_before_later_jobs(user, django_capture_on_commit_callbacks):
    program = make_program(user)
    failed = make_job(program, status=JobStatus.FAILED, attempts=3, error="boom")
    later = make_job(program)
    with django_capture_on_commit_callbacks() as callbacks:
        assert services.jobs_requeue_failed(job_ids=[failed.pk, later.pk]) == 1
    assert len(callbacks) == 1  # the workers of that device type are woken
    assert job_queue_position(Job.objects.get(pk=failed.pk)) == 1
    assert job_queue_position(Job.objects.get(pk=later.pk)) == 2
    device = make_device(type=program.device_type)
    claimed = claim(device)
    assert claimed.id == failed.pk and claimed.attempts == 1


def test_jobs_cancel_only_touches_queued_jobs(user):
    program = make_program(user)
    queued = make_job(program)
    running = make_job(program, status=JobStatus.RUNNING, device=make_device())
    assert services.jobs_cancel(job_ids=[queued.pk, running.pk]) == 1
    assert Job.objects.get(pk=running.pk).status == JobStatus.RUNNING


# --- PostgreSQL: concurrent submissions -------------------------------------------------


def _run_threads(target, n):
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def run(i):
        try:
            barrier.wait()
            results[i] = target(i)
        except Exception as exc:  # noqa: BLE001 - collected for the assertions
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_first_jobs_of_one_program_all_join_it():
    owner = make_user("racer")
    results = _run_threads(
        lambda i: services.job_submit(owner=owner, priority=1, device_type="analog", key=f"r{i}", program_key="shared"),
        6,
    )
    assert all(isinstance(r, Job) for r in results), results
    assert Program.objects.filter(key="shared").count() == 1
    assert Program.objects.get(key="shared").jobs.count() == 6


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_programs_claiming_the_same_job_id_one_wins_nothing_partial():
    owner = make_user("racer")

    def submit(i):
        specs = [JobSpec(key=f"own-{i}-{k}") for k in range(200)] + [JobSpec(key="contested")]
        return services.program_create(owner=owner, priority=0, device_type="analog", jobs=specs)

    results = _run_threads(submit, 4)
    winners = [r for r in results if isinstance(r, services.ProgramCreated)]
    losers = [r for r in results if isinstance(r, DuplicateId)]
    assert len(winners) == 1 and len(losers) == 3, results
    assert Program.objects.count() == 1
    assert Job.objects.count() == 201


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_programs_with_the_same_program_id_one_wins():
    owner = make_user("racer")

    def submit(i):
        return services.program_create(
            owner=owner,
            priority=0,
            device_type="analog",
            key="same",
            jobs=[JobSpec(key=f"j{i}-{k}") for k in range(50)],
        )

    results = _run_threads(submit, 4)
    assert sum(isinstance(r, services.ProgramCreated) for r in results) == 1, results
    assert all(isinstance(r, (services.ProgramCreated, DuplicateId)) for r in results), results
    assert Program.objects.count() == 1 and Job.objects.count() == 50
