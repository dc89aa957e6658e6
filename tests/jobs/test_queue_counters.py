"""Queue counters on real PostgreSQL: after every queue change of a random
mix (single and bulk submissions, claims, results, failed attempts, releases,
requeues, lease expiries, cancels, operators' retries, edits, deletes, and
claimers racing from threads), the counter-based queue position of every
queued job equals its place in a brute-force ranking, and the counters equal
a recount. Ids are pushed across bucket boundaries on purpose, so positions
sum several counters and not just one bucket's count."""

from __future__ import annotations

import random
import threading
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, connections
from django.utils import timezone

from devices.models import Device
from jobs import claims, queue_counters, services
from jobs.models import QUEUE_LEVEL_SHIFTS, Job, JobStatus, Program, QueueCounter
from jobs.selectors import job_queue_position
from tests.factories import make_device, make_token

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

TYPES = ("analog", "gate")
PRIORITIES = (-3, 0, 5, 9)


def ranked_positions() -> dict[int, int]:
    """Brute force: every queued job's place among its type's queued jobs,
    in claim order (priority desc, then id)."""
    queued = list(Job.objects.filter(status=JobStatus.QUEUED).order_by().values_list("id", "device_type", "priority"))
    places: dict[int, int] = {}
    for device_type in {t for _, t, _ in queued}:
        same = sorted((j for j in queued if j[1] == device_type), key=lambda j: (-j[2], j[0]))
        places.update({j[0]: i for i, j in enumerate(same, start=1)})
    return places


def positions_from_the_back() -> dict[int, int]:
    """Every queued job's place by ``jobs_ahead_from_the_back_sql`` (the
    submission's form), in one statement."""
    ahead = queue_counters.jobs_ahead_from_the_back_sql("j.device_type", "j.priority", "j.id")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT j.id, {ahead} FROM jobs_job j WHERE j.status = 'queued'")
        return {job_id: n + 1 for job_id, n in cursor.fetchall()}


def assert_exact(step: str) -> None:
    expected = ranked_positions()
    got = {job.pk: job_queue_position(job) for job in Job.objects.filter(status=JobStatus.QUEUED)}
    assert got == expected, step
    assert positions_from_the_back() == expected, step
    assert queue_counters.queue_counters_drift() == [], step


def jump_ids(rng: random.Random) -> None:
    """The next job ids start up to three blocks of some level further on."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('jobs_job', 'id'), (SELECT coalesce(max(id), 0) FROM jobs_job) + %s)",
            [rng.randrange(1, 3 << rng.choice(QUEUE_LEVEL_SHIFTS[:-1]))],
        )


class Mix:
    """The random operations, each one production call (or an operator's
    statement), on the state the test keeps of the runs it started."""

    def __init__(self, rng: random.Random, owner, devices: dict[str, list[Device]]):
        self.rng, self.owner, self.devices = rng, owner, devices
        self.token = make_token(owner)
        self.running: dict[int, claims.ClaimedJob] = {}
        self.n = 0

    def submit(self):
        """The flat form, by the owner or by the owner's API key (the fast
        lane's one statement: jobs.services.job_submit_by_token)."""
        self.n += 1
        fields = {
            "priority": self.rng.choice(PRIORITIES),
            "device_type": self.rng.choice(TYPES),
            "key": f"single-{self.n}",
            "program_key": self.rng.choice([None, f"solo-{self.n}"]),
        }
        if self.n % 2:  # (not a draw of rng: the rest of the mix stays as it was)
            job = services.job_submit(owner=self.owner, **fields)
        else:
            job = services.job_submit_by_token(token=self.token, **fields)
        # The place the submission answered with (counted in its statement).
        assert job_queue_position(job) == ranked_positions()[job.pk]

    def submit_bulk(self):
        self.n += 1
        services.program_create(
            owner=self.owner,
            priority=self.rng.choice(PRIORITIES),
            device_type=self.rng.choice(TYPES),
            jobs=[services.JobSpec() for _ in range(self.rng.randrange(2, 40))],
            key=f"bulk-{self.n}",
        )

    def claim(self, device: Device | None = None) -> claims.ClaimedJob | None:
        device = device or self.rng.choice(self.devices[self.rng.choice(TYPES)])
        job = claims.job_claim(
            device_id=device.pk,
            device_type=device.type,
            device_size=device.size,
            runner=device.runner,
            lease_seconds=60,
        )
        if job is not None:
            self.running[job.id] = job
        return job

    def _a_run(self) -> claims.ClaimedJob | None:
        """A running job, no longer tracked: the caller ends or hands it back."""
        if not self.running:
            self.claim()
        if not self.running:
            return None
        return self.running.pop(self.rng.choice(sorted(self.running)))

    def finish_and_claim(self):
        run = self._a_run()
        if run is None:
            return
        device = Device.objects.get(pk=Job.objects.get(pk=run.id).device_id)
        _, nxt = claims.job_finish_and_claim(
            job_id=run.id,
            token=run.token,
            result=["0" * device.size],
            device_id=device.pk,
            device_type=device.type,
            device_size=device.size,
            runner=device.runner,
            lease_seconds=60,
        )
        if nxt is not None:
            self.running[nxt.id] = nxt

    def fail(self):
        run = self._a_run()
        if run is not None:
            claims.job_fail_attempt(job_id=run.id, token=run.token, error="boom", max_attempts=self.rng.choice([1, 3]))

    def release(self):
        run = self._a_run()
        if run is not None:
            claims.job_release(job_id=run.id, token=run.token)

    def requeue(self):
        run = self._a_run()
        if run is not None:
            claims.job_requeue(job_id=run.id, token=run.token, reason="busy", max_requeues=self.rng.choice([0, 5]))

    def requeue_device(self):
        device = self.rng.choice(self.devices[self.rng.choice(TYPES)])
        requeued = claims.jobs_requeue_for_device(device_id=device.pk, max_requeues=2)
        for job_id in requeued.queued + requeued.failed:
            self.running.pop(job_id, None)

    def expire(self):
        requeued = claims.jobs_requeue_expired(now=timezone.now() + timedelta(hours=1))
        for job_id in requeued.queued + requeued.failed:
            self.running.pop(job_id, None)

    def cancel(self):
        queued = list(Job.objects.filter(status=JobStatus.QUEUED).values_list("id", "program_id")[:50])
        if not queued:
            return
        job_id, program_id = self.rng.choice(queued)
        what = self.rng.randrange(3)
        if what == 0:
            services.job_cancel(job_id=job_id)
        elif what == 1:
            services.program_cancel(program_id=program_id)
        else:
            services.jobs_cancel(job_ids=[job_id for job_id, _ in self.rng.sample(queued, min(5, len(queued)))])

    def retry_failed(self):
        failed = list(Job.objects.filter(status=JobStatus.FAILED).values_list("id", flat=True)[:10])
        services.jobs_requeue_failed(job_ids=failed)

    def edit(self):
        """An operator changing a queued job's priority in the admin: it moves
        to another counter."""
        job = Job.objects.filter(status=JobStatus.QUEUED).order_by("?").first()
        if job is not None:
            Job.objects.filter(pk=job.pk).update(priority=self.rng.choice(PRIORITIES))

    def delete(self):
        jobs = list(Job.objects.order_by("?").values_list("id", "program_id")[:3])
        if not jobs:
            return
        if self.rng.random() < 0.5:
            Job.objects.filter(pk__in=[j for j, _ in jobs]).delete()
        else:
            Program.objects.filter(pk=jobs[0][1]).delete()  # its jobs go with it (cascade)
        for job_id in list(self.running):
            if not Job.objects.filter(pk=job_id).exists():
                del self.running[job_id]

    def racing_claimers(self):
        """Every device of a type claims (and finishes) at once from its own
        thread and connection: they update the same counter rows."""
        device_type = self.rng.choice(TYPES)
        errors: list[BaseException] = []
        start = threading.Barrier(len(self.devices[device_type]))

        def claimer(device: Device) -> None:
            try:
                start.wait(timeout=30)
                for _ in range(5):
                    job = claims.job_claim(
                        device_id=device.pk,
                        device_type=device.type,
                        device_size=device.size,
                        runner=device.runner,
                        lease_seconds=60,
                    )
                    if job is None:
                        break
                    claims.job_finish(job_id=job.id, token=job.token, result=["0" * device.size])
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                errors.append(exc)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=claimer, args=(d,)) for d in self.devices[device_type]]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not any(t.is_alive() for t in threads)
        assert errors == []


def test_counter_positions_stay_exact_through_a_random_mix_of_queue_changes(staff_user):
    rng = random.Random(20261130)
    devices = {}
    for device_type in TYPES:
        devices[device_type] = [make_device(f"{device_type}-{i}", type=device_type, size=4) for i in range(4)]
        for device in devices[device_type]:
            Device.objects.filter(pk=device.pk).update(runner=f"runner-{device.pk}")
            device.runner = f"runner-{device.pk}"
    mix = Mix(rng, staff_user, devices)
    for _ in range(6):
        mix.submit_bulk()
        jump_ids(rng)
    assert_exact("initial submissions")
    operations = [
        (mix.submit, 4),
        (mix.submit_bulk, 3),
        (mix.claim, 4),
        (mix.finish_and_claim, 3),
        (mix.fail, 2),
        (mix.release, 1),
        (mix.requeue, 2),
        (mix.requeue_device, 1),
        (mix.expire, 1),
        (mix.cancel, 2),
        (mix.retry_failed, 1),
        (mix.edit, 1),
        (mix.delete, 1),
        (mix.racing_claimers, 1),
    ]
    names = [op for op, _ in operations]
    weights = [w for _, w in operations]
    counts: dict[str, int] = {}
    for step in range(120):
        op = rng.choices(names, weights)[0]
        if rng.random() < 0.2:
            jump_ids(rng)
        op()
        counts[op.__name__] = counts.get(op.__name__, 0) + 1
        assert_exact(f"step {step}: {op.__name__}")
    # The mix did exercise the queue: every operation ran, several buckets were used.
    assert set(counts) == {op.__name__ for op in names}
    assert QueueCounter.objects.filter(level=0).values("bucket").distinct().count() > 5
    # ... and blocks of the upper levels too, so positions summed counters of every level.
    assert QueueCounter.objects.filter(level=2).values("bucket").distinct().count() > 1
    assert Job.objects.filter(status=JobStatus.QUEUED).exists()


def test_drift_is_reported_and_rebuild_repairs_it(staff_user):
    services.program_create(
        owner=staff_user, priority=3, device_type="analog", jobs=[services.JobSpec() for _ in range(5)]
    )
    services.program_create(owner=staff_user, priority=1, device_type="analog", jobs=[services.JobSpec()])
    jobs = list(Job.objects.order_by("-priority", "id"))
    assert queue_counters.queue_counters_drift() == []
    call_command("queue_counters", "--check")  # no drift: no error
    # Damage a counter behind the triggers' back, as a bug or a manual edit would.
    QueueCounter.objects.filter(device_type="analog", priority=3, level=3).update(n=2)
    drift = queue_counters.queue_counters_drift()
    assert [(d.device_type, d.level, d.priority, d.bucket, d.counted, d.actual) for d in drift] == [
        ("analog", 3, 3, 0, 2, 5)
    ]
    assert job_queue_position(jobs[5]) == 3  # wrong with the counter: the check is what tells
    with pytest.raises(CommandError, match="1 queue counters drifted"):
        call_command("queue_counters", "--check")
    call_command("queue_counters", "--rebuild")
    assert queue_counters.queue_counters_drift() == []
    assert [job_queue_position(j) for j in jobs] == [1, 2, 3, 4, 5, 6]


def test_counters_at_zero_are_pruned_and_come_back(staff_user):
    services.program_create(owner=staff_user, priority=1, device_type="gate", jobs=[services.JobSpec()])
    job = Job.objects.get()
    services.job_cancel(job_id=job.pk)
    assert set(QueueCounter.objects.values_list("n", flat=True)) == {0}
    assert queue_counters.queue_counters_prune() == len(QUEUE_LEVEL_SHIFTS)
    assert not QueueCounter.objects.exists()
    Job.objects.filter(pk=job.pk).update(status=JobStatus.QUEUED)  # an operator's edit
    assert set(QueueCounter.objects.values_list("n", flat=True)) == {1}
    assert job_queue_position(Job.objects.get()) == 1


def test_truncating_the_jobs_table_empties_the_counters(staff_user):
    services.program_create(owner=staff_user, priority=1, device_type="gate", jobs=[services.JobSpec()])
    assert QueueCounter.objects.exists()
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE jobs_job")
    assert not QueueCounter.objects.exists()
