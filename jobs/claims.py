"""The durable queue of record: claims, results and requeues on the jobs table.

Every operation is one short SQL statement. On PostgreSQL the claim is the
proven pattern: the inner SELECT walks ``job_queue_idx`` (device type, priority
desc, id) over queued rows only, ``FOR UPDATE SKIP LOCKED`` lets concurrent
claimers pass each other instead of queueing on one row, and the status is set
in the same statement, so two workers can never take the same job. On SQLite
a single statement is atomic by itself (one writer at a time), so the same
SQL without the locking clause is equally safe.

Why one statement per queue change: a job moves between states only through
one conditional UPDATE (fenced by its status and lease token), so there is no
window in which two workers, a removal and a lease reaper can see a half-made
change, no transaction to hold open across a round trip, and a crash between
statements can never leave a job claimed by nobody or stored twice. The bounds
of issue 6 are folded into those same statements: a claim only takes a job
whose result the device can store (``shots <= RESULT_MAX_BITS // size``), and
every requeue that is not the job's fault counts ``requeues`` and fails the job
instead once it has been requeued ``JOB_MAX_REQUEUES`` times.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.conf import settings
from django.db import connection
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from core import metrics, prepared
from jobs import lifecycle
from jobs.models import JobStatus


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    key: str
    instructions: object
    shots: int
    attempts: int
    token: str
    # When the job was submitted: its wait until this claim is a metric.
    created_at: datetime | None = None


def max_shots_for(device_size: int) -> int:
    """Most shots whose result a device of ``device_size`` qubits may return:
    ``size x shots`` bits stay within RESULT_MAX_BITS."""
    return settings.RESULT_MAX_BITS // max(1, device_size)


def _claim_sql(*, device_id, device_type, device_size, runner, token, now, lease_seconds) -> tuple[str, list]:
    # status = 'queued' is a literal, not a parameter: a prepared statement's
    # generic plan can then match the partial index job_queue_idx. The shots
    # bound is a plain filter on the rows the index walk reaches (like
    # min_size), so the index still gives the order and the plan is unchanged.
    # So is the "another device first" rule (see job_claim): a plain filter,
    # whose device lookup only runs for a job that last failed on this device.
    sql = f"""
        UPDATE jobs_job
           SET status = %s, device_id = %s, started_at = %s, attempts = attempts + 1,
               lease_token = %s, lease_expires_at = %s, error = ''
         WHERE id = (
                SELECT id FROM jobs_job
                 WHERE status = 'queued' AND device_type = %s
                   AND (min_size IS NULL OR min_size <= %s) AND shots <= %s
                   AND (last_failed_device IS NULL OR last_failed_device <> %s
                        OR NOT EXISTS (SELECT 1 FROM devices_device o
                                        WHERE o.type = jobs_job.device_type AND o.id <> %s AND o.status = 'online'
                                          AND o.runner_expires_at > %s
                                          AND (jobs_job.min_size IS NULL OR o.size >= jobs_job.min_size)
                                          AND jobs_job.shots * o.size <= %s))
                   AND EXISTS (SELECT 1 FROM devices_device d
                                WHERE d.id = %s AND d.status = 'online' AND d.runner = %s AND d.size = %s)
                 ORDER BY priority DESC, id ASC
                 LIMIT 1 {_lock_clause()})
        RETURNING id, key, instructions, shots, attempts, created_at
    """
    params = [
        JobStatus.RUNNING,
        device_id,
        now,
        token,
        now + timedelta(seconds=lease_seconds),
        device_type,
        device_size,
        max_shots_for(device_size),
        device_id,
        device_id,
        now,
        settings.RESULT_MAX_BITS,
        device_id,
        runner,
        device_size,
    ]
    return sql, params


def _claimed(row, token: str) -> ClaimedJob:
    created = row[5]
    if isinstance(created, str):  # SQLite's raw cursor may answer text...
        created = parse_datetime(created)
    if created is not None and created.tzinfo is None:  # ...or a naive UTC time
        created = created.replace(tzinfo=dt_timezone.utc)
    return ClaimedJob(
        id=row[0],
        key=row[1],
        instructions=_decode_json(row[2]),
        shots=row[3],
        attempts=row[4],
        token=token,
        created_at=created,
    )


def _lock_clause() -> str:
    return "FOR UPDATE SKIP LOCKED" if connection.vendor == "postgresql" else ""


def _decode_json(value):
    if isinstance(value, (str, bytes)):
        import json

        return json.loads(value)
    return value


def job_claim(
    *,
    device_id: str,
    device_type: str,
    device_size: int,
    runner: str,
    lease_seconds: float,
    now: datetime | None = None,
) -> ClaimedJob | None:
    """Take the highest-priority, oldest queued job this device can run.

    Only the runner holding the device may claim for it, and only while the
    device is online and still has the size the runner knows (a device
    re-registered with another size waits for its runner to catch up): a
    draining, offline or removed device gets no new job.
    Nor does a device get a job whose result it could not store
    (``size x shots`` above RESULT_MAX_BITS): that job waits for a smaller
    device of its type.

    Another device first: a job whose last attempt failed on this device is
    skipped while another online device, driven by a live runner, could run
    it (type, size, result bound): the failure may be the device's, so the
    retry goes elsewhere. When no other device could, this one takes it
    again rather than leave it waiting for nothing. Why still one statement:
    the rule is a filter on the rows the index walk reaches, so the order,
    the partial index and SKIP LOCKED work as before, and the extra lookup
    runs only for rows with ``last_failed_device`` equal to this device
    (the OR is evaluated left to right), never on the common path.
    """
    now = now or timezone.now()
    token = uuid.uuid4().hex
    sql, params = _claim_sql(
        device_id=device_id,
        device_type=device_type,
        device_size=device_size,
        runner=runner,
        token=token,
        now=now,
        lease_seconds=lease_seconds,
    )
    with connection.cursor() as cursor:
        prepared.execute(cursor, sql, params)  # planned once per connection on PostgreSQL
        row = cursor.fetchone()
    return None if row is None else _claimed(row, token)


def _execute(sql: str, params: list) -> int:
    # Single statements run in autocommit: each is its own transaction, which
    # saves the BEGIN/COMMIT round trips on the hot path.
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


_FINISH_SQL = """
        UPDATE jobs_job
           SET status = %s, result = %s, finished_at = %s, lease_token = '', lease_expires_at = NULL, error = '',
               callback_status = CASE WHEN (SELECT callback_url FROM jobs_program p WHERE p.id = jobs_job.program_id) <> ''
                                      THEN %s ELSE '' END
         WHERE id = %s AND status = %s AND lease_token = %s
        RETURNING callback_status
"""


def _finish_params(job_id: int, token: str, result: list[str], now: datetime) -> list:
    import json

    return [JobStatus.DONE, json.dumps(result), now, "pending", job_id, JobStatus.RUNNING, token]


def job_finish(*, job_id: int, token: str, result: list[str], now: datetime | None = None) -> str | None:
    """Store a result, exactly once: only the run holding ``token`` may.

    Returns the job's callback status ('' or 'pending'), or None when this run
    no longer owned the job (it was requeued meanwhile) and nothing was stored.
    The callback state is set in the same statement so a finished job with a
    callback URL is never left without a pending delivery.
    """
    with connection.cursor() as cursor:
        cursor.execute(_FINISH_SQL, _finish_params(job_id, token, result, now or timezone.now()))
        row = cursor.fetchone()
    return row[0] if row else None


def job_finish_and_claim(
    *,
    job_id: int,
    token: str,
    result: list[str],
    device_id: str,
    device_type: str,
    device_size: int,
    runner: str,
    lease_seconds: float,
    now: datetime | None = None,
) -> tuple[str | None, ClaimedJob | None]:
    """Store a result and claim the device's next job in one round trip.

    On PostgreSQL both updates run in one statement (two data-modifying CTEs on
    different rows), so a free device starts its next job without a second
    round trip; elsewhere it is the two statements in a row.
    """
    now = now or timezone.now()
    if connection.vendor != "postgresql":
        callback = job_finish(job_id=job_id, token=token, result=result, now=now)
        return callback, job_claim(
            device_id=device_id,
            device_type=device_type,
            device_size=device_size,
            runner=runner,
            lease_seconds=lease_seconds,
            now=now,
        )
    next_token = uuid.uuid4().hex
    claim_sql, claim_params = _claim_sql(
        device_id=device_id,
        device_type=device_type,
        device_size=device_size,
        runner=runner,
        token=next_token,
        now=now,
        lease_seconds=lease_seconds,
    )
    sql = f"""
        WITH fin AS ({_FINISH_SQL}), nxt AS ({claim_sql})
        SELECT 'fin', NULL::bigint, callback_status, NULL::jsonb, NULL::integer, NULL::integer, NULL::timestamptz
          FROM fin
        UNION ALL
        SELECT 'nxt', id, key, instructions, shots, attempts, created_at FROM nxt
    """
    with connection.cursor() as cursor:
        prepared.execute(cursor, sql, _finish_params(job_id, token, result, now) + claim_params)
        rows = cursor.fetchall()
    callback, claimed = None, None
    for row in rows:
        if row[0] == "fin":
            callback = row[2]
        else:
            claimed = _claimed(row[1:], next_token)
    return callback, claimed


def job_fail_attempt(
    *, job_id: int, token: str, error: str, max_attempts: int, now: datetime | None = None
) -> tuple[str, str] | None:
    """Record a failed run: requeue in the job's original place, or fail it
    for good once it has used ``max_attempts``. Returns the new status and
    callback status, or None when the run no longer owned the job. The
    device it failed on is kept (``last_failed_device``, read from the row as
    it was) so the retry goes to another device first (``job_claim``)."""
    now = now or timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE jobs_job
               SET status = CASE WHEN attempts >= %s THEN %s ELSE %s END,
                   finished_at = CASE WHEN attempts >= %s THEN %s ELSE NULL END,
                   callback_status = CASE WHEN attempts >= %s AND
                        (SELECT callback_url FROM jobs_program p WHERE p.id = jobs_job.program_id) <> ''
                        THEN %s ELSE callback_status END,
                   started_at = CASE WHEN attempts >= %s THEN started_at ELSE NULL END,
                   device_id = CASE WHEN attempts >= %s THEN device_id ELSE NULL END,
                   last_failed_device = device_id,
                   error = %s, lease_token = '', lease_expires_at = NULL
             WHERE id = %s AND status = %s AND lease_token = %s
            RETURNING status, callback_status
            """,
            [
                max_attempts,
                JobStatus.FAILED,
                JobStatus.QUEUED,
                max_attempts,
                now,
                max_attempts,
                "pending",
                max_attempts,
                max_attempts,
                error[:10_000],
                job_id,
                JobStatus.RUNNING,
                token,
            ],
        )
        row = cursor.fetchone()
    return (row[0], row[1]) if row else None


def job_release(*, job_id: int, token: str) -> bool:
    """Hand a job back untouched (worker shutting down): back in its original
    place, and the interrupted run does not count as an attempt."""
    return (
        _execute(
            """
        UPDATE jobs_job
           SET status = %s, device_id = NULL, started_at = NULL, lease_token = '', lease_expires_at = NULL,
               attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END
         WHERE id = %s AND status = %s AND lease_token = %s
        """,
            [JobStatus.QUEUED, job_id, JobStatus.RUNNING, token],
        )
        == 1
    )


@dataclass(frozen=True)
class Requeued:
    """What a requeue did: jobs back in the queue, and jobs failed instead
    because they had been requeued JOB_MAX_REQUEUES times already."""

    queued: list[int]
    failed: list[int]
    # The failed ones whose program has a callback URL: their delivery is pending.
    callbacks: list[int]

    @property
    def count(self) -> int:
        return len(self.queued) + len(self.failed)


def requeue_limit_error(*, max_requeues: int, reason: str) -> str:
    return (
        f"Failed instead of requeued again: the job was already requeued {max_requeues} times "
        f"(JOB_MAX_REQUEUES) through no fault of its own (device removed, restarted, silent or busy, "
        f"or its worker died). Last interruption: {reason}"
    )[:10_000]


def _bounded_requeue(
    where: str, where_params: list, *, reason: str, max_requeues: int | None, now: datetime | None
) -> Requeued:
    """Put running jobs back in their original place without using up an
    attempt (the interrupted run is refunded), counting ``requeues``; a job
    already requeued ``max_requeues`` times fails with a clear error instead,
    so no job can bounce between devices and workers forever. One UPDATE: the
    CASEs all read the row as it was before the statement."""
    limit = settings.JOB_MAX_REQUEUES if max_requeues is None else max_requeues
    now = now or timezone.now()
    over = "requeues >= %s"
    sql = f"""
        UPDATE jobs_job
           SET status = CASE WHEN {over} THEN %s ELSE %s END,
               requeues = CASE WHEN {over} THEN requeues ELSE requeues + 1 END,
               attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END,
               finished_at = CASE WHEN {over} THEN %s ELSE NULL END,
               error = CASE WHEN {over} THEN %s ELSE error END,
               callback_status = CASE WHEN {over} AND
                    (SELECT callback_url FROM jobs_program p WHERE p.id = jobs_job.program_id) <> ''
                    THEN %s ELSE callback_status END,
               device_id = CASE WHEN {over} THEN device_id ELSE NULL END,
               started_at = CASE WHEN {over} THEN started_at ELSE NULL END,
               lease_token = '', lease_expires_at = NULL
         WHERE status = %s AND {where}
        RETURNING id, status, callback_status, key, device_type
    """
    params = [
        limit,
        JobStatus.FAILED,
        JobStatus.QUEUED,
        limit,
        limit,
        now,
        limit,
        requeue_limit_error(max_requeues=limit, reason=reason),
        limit,
        "pending",
        limit,
        limit,
        JobStatus.RUNNING,
        *where_params,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    failed = [r for r in rows if r[1] == JobStatus.FAILED]
    for row in rows:
        if row[1] == JobStatus.QUEUED:
            lifecycle.requeued(job=row[3], why=reason)
        else:
            lifecycle.failed(job=row[3], reason=f"requeued {limit} times already (JOB_MAX_REQUEUES); last: {reason}")
            metrics.job_finished(device_type=row[4], status="failed", waited_s=None, ran_s=None)
    return Requeued(
        queued=[r[0] for r in rows if r[1] == JobStatus.QUEUED],
        failed=[r[0] for r in failed],
        callbacks=[r[0] for r in failed if r[2] == "pending"],
    )


def job_requeue(
    *, job_id: int, token: str, reason: str, max_requeues: int | None = None, now: datetime | None = None
) -> Requeued:
    """Hand one run's job back through no fault of its own (the device said
    it is busy, or the database connection was lost while storing its
    outcome): fenced by the run's token, bounded by JOB_MAX_REQUEUES."""
    return _bounded_requeue(
        "id = %s AND lease_token = %s", [job_id, token], reason=reason, max_requeues=max_requeues, now=now
    )


def jobs_requeue_for_device(
    *, device_id: str, reason: str = "", max_requeues: int | None = None, now: datetime | None = None
) -> Requeued:
    """Put every job running on a device back in the queue, in its original
    place (priority and submission order are untouched). Used when a device is
    removed, goes offline, or its runner died; bounded by JOB_MAX_REQUEUES."""
    reason = reason or f"device {device_id} was removed, restarted or went silent, or its runner died"
    return _bounded_requeue("device_id = %s", [device_id], reason=reason, max_requeues=max_requeues, now=now)


def jobs_requeue_expired(*, now: datetime | None = None, max_requeues: int | None = None) -> Requeued:
    """Requeue running jobs whose lease ran out (their worker died); bounded
    by JOB_MAX_REQUEUES."""
    now = now or timezone.now()
    return _bounded_requeue(
        "lease_expires_at < %s",
        [now],
        reason="its worker stopped renewing the job's lease",
        max_requeues=max_requeues,
        now=now,
    )
