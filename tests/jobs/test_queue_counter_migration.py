"""Migration jobs.0010 (counters at four levels) on real PostgreSQL, with a
queue in place: forward it counts every level exactly, backward it restores
0009's one-level counters exactly, and the triggers of whichever version is
installed keep counting afterwards."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from jobs import queue_counters, services
from jobs.models import Job, JobStatus

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

LATEST = [("jobs", "0010_queue_counter_levels")]
BEFORE = [("jobs", "0009_queue_counters")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


def _one_level_counts() -> dict[tuple, int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT device_type, priority, bucket, sum(n) FROM jobs_queuecounter GROUP BY 1, 2, 3")
        return {row[:3]: row[3] for row in cursor.fetchall() if row[3]}


def _recount_one_level() -> dict[tuple, int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT device_type, priority, id >> 10, count(*) FROM jobs_job WHERE status = 'queued' GROUP BY 1, 2, 3"
        )
        return {row[:3]: row[3] for row in cursor.fetchall()}


def _insert_queued(n: int, *, device_type: str, priority: int) -> None:
    # Plain SQL: at 0009 the models' state no longer matches the table.
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO jobs_job (key, program_id, owner_id, priority, device_type, instructions, shots, status,
                                  attempts, requeues, created_at, error, lease_token, callback_status,
                                  callback_attempts, callback_error)
            SELECT 'mig-' || g || '-' || %s, p.id, p.owner_id, %s, %s, '[]', 1, 'queued', 0, 0, now(), '', '', '', 0, ''
              FROM generate_series(1, %s) g, (SELECT id, owner_id FROM jobs_program ORDER BY id LIMIT 1) p
            """,
            [device_type + str(priority), priority, device_type, n],
        )


def test_both_directions_keep_the_counters_exact(staff_user):
    services.program_create(
        owner=staff_user, priority=4, device_type="gate", jobs=[services.JobSpec() for _ in range(30)]
    )
    services.program_create(owner=staff_user, priority=9, device_type="gate", jobs=[services.JobSpec()])
    services.job_cancel(job_id=Job.objects.filter(status=JobStatus.QUEUED).order_by("id").first().pk)
    try:
        _migrate(BEFORE)
        assert _one_level_counts() == _recount_one_level()
        _insert_queued(5, device_type="gate", priority=1)  # 0009's trigger counts them
        assert _one_level_counts() == _recount_one_level()
    finally:
        _migrate(LATEST)
    assert queue_counters.queue_counters_drift() == []
    services.program_create(owner=staff_user, priority=2, device_type="gate", jobs=[services.JobSpec()])
    assert queue_counters.queue_counters_drift() == []  # 0010's trigger counts every level
    assert Job.objects.filter(status=JobStatus.QUEUED).count() == 30 + 5 + 1
