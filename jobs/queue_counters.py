"""Upkeep of the queue counters (``jobs.QueueCounter``): check them against a
recount, rebuild them, prune the empty ones.

The counters are kept exact by PostgreSQL triggers (migration 0009), so in
normal operation none of this is needed; it is the operators' proof and
repair (``manage.py queue_counters``, docs/operations.md), and the tests'
oracle. On SQLite no counters are kept (positions are counted directly):
every function here answers as if there were nothing to do.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection, transaction

from jobs.models import QUEUE_BUCKET_SHIFT


@dataclass(frozen=True, slots=True)
class Drift:
    """One counter that disagrees with the queued jobs it counts."""

    device_type: str
    priority: int
    bucket: int
    counted: int  # what the counter says
    actual: int  # queued jobs in that bucket


def counters_kept() -> bool:
    return connection.vendor == "postgresql"


def queue_counters_drift() -> list[Drift]:
    """Every bucket whose counter (the sum of its slots) differs from a recount of the queued jobs, and every
    (type, priority, bucket) with queued jobs but no counter. One statement,
    so counters and jobs are read at one snapshot: a writer committing
    meanwhile cannot make a false alarm. Reads every queued job's index
    entry (a second or so per million): an operator's check, not a hot path.
    """
    if not counters_kept():
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT device_type, priority, bucket, coalesce(c.n, 0), coalesce(j.n, 0)
              FROM (SELECT device_type, priority, bucket, sum(n) AS n FROM jobs_queuecounter
                     GROUP BY 1, 2, 3 HAVING sum(n) <> 0) c
              FULL JOIN (SELECT device_type, priority, id >> {QUEUE_BUCKET_SHIFT} AS bucket, count(*) AS n
                           FROM jobs_job WHERE status = 'queued' GROUP BY 1, 2, 3) j
                   USING (device_type, priority, bucket)
             WHERE coalesce(c.n, 0) <> coalesce(j.n, 0)
             ORDER BY 1, 2, 3
            """
        )
        return [Drift(*row) for row in cursor.fetchall()]


def queue_counters_rebuild() -> int:
    """Recount every counter from the queued jobs; returns how many counters
    there are now. Writers of jobs_job wait meanwhile (a SHARE ROW EXCLUSIVE
    lock, as in the migration's backfill), so no change made during the
    recount is lost or counted twice; readers carry on."""
    if not counters_kept():
        return 0
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("LOCK TABLE jobs_job IN SHARE ROW EXCLUSIVE MODE")
        cursor.execute("DELETE FROM jobs_queuecounter")
        cursor.execute(
            f"""
            INSERT INTO jobs_queuecounter (device_type, priority, bucket, slot, n)
            SELECT device_type, priority, id >> {QUEUE_BUCKET_SHIFT}, 0, count(*)
              FROM jobs_job WHERE status = 'queued' GROUP BY 1, 2, 3
            """
        )
        return cursor.rowcount


def queue_counters_prune() -> int:
    """Delete the counters at zero (buckets whose jobs all left the queue);
    returns how many. Safe while the queue runs: a row a writer is changing
    is locked and re-read before it is deleted, and a writer finding its row
    deleted inserts it again (``ON CONFLICT`` resolves either way)."""
    if not counters_kept():
        return 0
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM jobs_queuecounter WHERE n = 0")
        return cursor.rowcount
