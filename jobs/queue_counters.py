"""The queue counters (``jobs.QueueCounter``): how a position is read from
them, and their upkeep (check against a recount, rebuild, prune the empty
ones).

The counters are kept exact by PostgreSQL triggers (migration 0010), so in
normal operation none of this is needed; it is the operators' proof and
repair (``manage.py queue_counters``, docs/operations.md), and the tests'
oracle. On SQLite no counters are kept (positions are counted directly):
every function here answers as if there were nothing to do.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection, transaction

from jobs.models import QUEUE_LEVEL_SHIFTS

# The levels as a relation, for statements that count every level at once.
_LEVELS = "(VALUES {}) AS l(level, shift)".format(", ".join(f"({i}, {s})" for i, s in enumerate(QUEUE_LEVEL_SHIFTS)))


def jobs_ahead_sql(device_type: str, priority: str, job_id: str) -> str:
    """An SQL expression: how many queued jobs of ``device_type`` come before
    the job (``priority``, ``job_id``) in claim order, from the counters.
    The arguments are SQL expressions (columns or ``%s::type``), each used
    several times.

    The totals of the higher priorities (the top level), then at each lower
    level the blocks of this priority before the job's block inside the
    enclosing block of the level above (at most 31 per slot with the shifts
    10, 15, 20), then the queued jobs of the job's own 1,024-id block before
    it (a range of ``job_queue_idx`` bounded on every column). Each part is
    an index range of the counters' primary key (device_type, level,
    priority, bucket). As one expression it is read at one snapshot."""
    top = len(QUEUE_LEVEL_SHIFTS) - 1
    # Aliases of their own (qc, qj): the arguments may name columns of an outer query.
    parts = [
        f"(SELECT coalesce(sum(qc.n), 0) FROM jobs_queuecounter qc"
        f" WHERE qc.device_type = {device_type} AND qc.level = {top} AND qc.priority > {priority})"
    ]
    for level in range(top - 1, -1, -1):
        shift, outer = QUEUE_LEVEL_SHIFTS[level], QUEUE_LEVEL_SHIFTS[level + 1]
        parts.append(
            f"(SELECT coalesce(sum(qc.n), 0) FROM jobs_queuecounter qc"
            f" WHERE qc.device_type = {device_type} AND qc.level = {level} AND qc.priority = {priority}"
            f" AND qc.bucket >= ({job_id} >> {outer}) << {outer - shift} AND qc.bucket < {job_id} >> {shift})"
        )
    first = QUEUE_LEVEL_SHIFTS[0]
    parts.append(
        f"(SELECT count(*) FROM jobs_job qj WHERE qj.status = 'queued' AND qj.device_type = {device_type}"
        f" AND qj.priority = {priority} AND qj.id >= ({job_id} >> {first}) << {first} AND qj.id < {job_id})"
    )
    return "\n + ".join(parts)


def jobs_ahead_from_the_back_sql(device_type: str, priority: str, job_id: str) -> str:
    """The same count as ``jobs_ahead_sql``, read from the back of the
    queue: the totals of the job's priority and the higher ones (the top
    level's counters), less the queued jobs of its priority from the job on
    (itself included when it is visible and queued). Exact for any job, at
    one snapshot; cheap for a job at the back of its priority, as a job being
    submitted is: there that range of ``job_queue_idx`` is empty or holds the
    few jobs submitted concurrently, where ``jobs_ahead_sql`` reads, in the
    job's own 1,024-id block, half a block of index entries on average (their
    heap pages too, while the visibility map has not caught up with them)."""
    top = len(QUEUE_LEVEL_SHIFTS) - 1
    return (
        f"(SELECT coalesce(sum(qc.n), 0) FROM jobs_queuecounter qc"
        f" WHERE qc.device_type = {device_type} AND qc.level = {top} AND qc.priority >= {priority})"
        f"\n - (SELECT count(*) FROM jobs_job qj WHERE qj.status = 'queued' AND qj.device_type = {device_type}"
        f" AND qj.priority = {priority} AND qj.id >= {job_id})"
    )


@dataclass(frozen=True, slots=True)
class Drift:
    """One counter that disagrees with the queued jobs it counts."""

    device_type: str
    level: int
    priority: int
    bucket: int
    counted: int  # what the counter says
    actual: int  # queued jobs in that bucket


def counters_kept() -> bool:
    return connection.vendor == "postgresql"


def queue_counters_drift() -> list[Drift]:
    """Every counter (the sum of its slots) that differs from a recount of the
    queued jobs, at every level, and every block with queued jobs but no
    counter. One statement,
    so counters and jobs are read at one snapshot: a writer committing
    meanwhile cannot make a false alarm. Reads every queued job's index
    entry (a second or so per million): an operator's check, not a hot path.
    """
    if not counters_kept():
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT device_type, level, priority, bucket, coalesce(c.n, 0), coalesce(j.n, 0)
              FROM (SELECT device_type, level, priority, bucket, sum(n) AS n FROM jobs_queuecounter
                     GROUP BY 1, 2, 3, 4 HAVING sum(n) <> 0) c
              FULL JOIN (SELECT j.device_type, l.level, j.priority, j.id >> l.shift AS bucket, count(*) AS n
                           FROM jobs_job j CROSS JOIN {_LEVELS}
                          WHERE j.status = 'queued' GROUP BY 1, 2, 3, 4) j
                   USING (device_type, level, priority, bucket)
             WHERE coalesce(c.n, 0) <> coalesce(j.n, 0)
             ORDER BY 1, 2, 3, 4
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
            INSERT INTO jobs_queuecounter (device_type, level, priority, bucket, slot, n)
            SELECT j.device_type, l.level, j.priority, j.id >> l.shift, 0, count(*)
              FROM jobs_job j CROSS JOIN {_LEVELS}
             WHERE j.status = 'queued' GROUP BY 1, 2, 3, 4
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
