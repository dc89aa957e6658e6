"""The durable queue of record: claims, results and requeues on the jobs table.

Every operation is one short SQL statement. On PostgreSQL the claim is the
proven pattern: the inner SELECT walks ``job_queue_idx`` (device type, priority
desc, id) over queued rows only, ``FOR UPDATE SKIP LOCKED`` lets concurrent
claimers pass each other instead of queueing on one row, and the status is set
in the same statement, so two workers can never take the same job. On SQLite
a single statement is atomic by itself (one writer at a time), so the same
SQL without the locking clause is equally safe.
"""

from __future__ import annotations

import uuid
import weakref
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection
from django.utils import timezone

from jobs.models import JobStatus


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    key: str
    instructions: object
    shots: int
    attempts: int
    token: str


def _claim_sql(*, device_id, device_type, device_size, runner, token, now, lease_seconds) -> tuple[str, list]:
    # status = 'queued' is a literal, not a parameter: a prepared statement's
    # generic plan can then match the partial index job_queue_idx.
    sql = f"""
        UPDATE jobs_job
           SET status = %s, device_id = %s, started_at = %s, attempts = attempts + 1,
               lease_token = %s, lease_expires_at = %s, error = ''
         WHERE id = (
                SELECT id FROM jobs_job
                 WHERE status = 'queued' AND device_type = %s
                   AND (min_size IS NULL OR min_size <= %s)
                   AND EXISTS (SELECT 1 FROM devices_device d
                                WHERE d.id = %s AND d.status = 'online' AND d.runner = %s)
                 ORDER BY priority DESC, id ASC
                 LIMIT 1 {_lock_clause()})
        RETURNING id, key, instructions, shots, attempts
    """
    params = [
        JobStatus.RUNNING, device_id, now, token, now + timedelta(seconds=lease_seconds),
        device_type, device_size, device_id, runner,
    ]
    return sql, params


_prepared: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _execute_prepared(cursor, name: str, sql: str, params: list) -> None:
    """Run a hot-path statement as a server-side prepared statement.

    psycopg2 sends every statement as text, so PostgreSQL would parse and plan
    the finish-and-claim statement for every job; preparing it once per
    connection saves that work (a large share of the statement's cost).
    """
    raw = cursor.connection  # the psycopg2 connection under Django's wrapper
    done = _prepared.setdefault(raw, set())
    if name not in done:
        numbered, n = [], 0
        for i, part in enumerate(sql.split("%s")):
            if i:
                n += 1
                numbered.append(f"${n}")
            numbered.append(part)
        cursor.execute(f"PREPARE {name} AS " + "".join(numbered).replace("%%", "%"))
        done.add(name)
    cursor.execute(f"EXECUTE {name} (" + ", ".join(["%s"] * len(params)) + ")", params)


def _claimed(row, token: str) -> ClaimedJob:
    return ClaimedJob(id=row[0], key=row[1], instructions=_decode_json(row[2]), shots=row[3], attempts=row[4], token=token)


def _lock_clause() -> str:
    return "FOR UPDATE SKIP LOCKED" if connection.vendor == "postgresql" else ""


def _decode_json(value):
    if isinstance(value, (str, bytes)):
        import json

        return json.loads(value)
    return value


def job_claim(
    *, device_id: str, device_type: str, device_size: int, runner: str, lease_seconds: float, now: datetime | None = None
) -> ClaimedJob | None:
    """Take the highest-priority, oldest queued job this device can run.

    Only the runner holding the device may claim for it, and only while the
    device is online: a draining, offline or removed device gets no new job.
    """
    now = now or timezone.now()
    token = uuid.uuid4().hex
    sql, params = _claim_sql(device_id=device_id, device_type=device_type, device_size=device_size, runner=runner,
                             token=token, now=now, lease_seconds=lease_seconds)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            _execute_prepared(cursor, "qpu_claim", sql, params)
        else:
            cursor.execute(sql, params)
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
    *, job_id: int, token: str, result: list[str], device_id: str, device_type: str, device_size: int, runner: str,
    lease_seconds: float, now: datetime | None = None,
) -> tuple[str | None, ClaimedJob | None]:
    """Store a result and claim the device's next job in one round trip.

    On PostgreSQL both updates run in one statement (two data-modifying CTEs on
    different rows), so a free device starts its next job without a second
    round trip; elsewhere it is the two statements in a row.
    """
    now = now or timezone.now()
    if connection.vendor != "postgresql":
        callback = job_finish(job_id=job_id, token=token, result=result, now=now)
        return callback, job_claim(device_id=device_id, device_type=device_type, device_size=device_size,
                                   runner=runner, lease_seconds=lease_seconds, now=now)
    next_token = uuid.uuid4().hex
    claim_sql, claim_params = _claim_sql(device_id=device_id, device_type=device_type, device_size=device_size,
                                         runner=runner, token=next_token, now=now, lease_seconds=lease_seconds)
    sql = f"""
        WITH fin AS ({_FINISH_SQL}), nxt AS ({claim_sql})
        SELECT 'fin', NULL::bigint, callback_status, NULL::jsonb, NULL::integer, NULL::integer FROM fin
        UNION ALL
        SELECT 'nxt', id, key, instructions, shots, attempts FROM nxt
    """
    with connection.cursor() as cursor:
        _execute_prepared(cursor, "qpu_finish_and_claim", sql, _finish_params(job_id, token, result, now) + claim_params)
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
    callback status, or None when the run no longer owned the job."""
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
                   error = %s, lease_token = '', lease_expires_at = NULL
             WHERE id = %s AND status = %s AND lease_token = %s
            RETURNING status, callback_status
            """,
            [
                max_attempts, JobStatus.FAILED, JobStatus.QUEUED,
                max_attempts, now,
                max_attempts, "pending",
                max_attempts, max_attempts,
                error[:10_000], job_id, JobStatus.RUNNING, token,
            ],
        )
        row = cursor.fetchone()
    return (row[0], row[1]) if row else None


def job_release(*, job_id: int, token: str) -> bool:
    """Hand a job back untouched (worker shutting down): back in its original
    place, and the interrupted run does not count as an attempt."""
    return _execute(
        """
        UPDATE jobs_job
           SET status = %s, device_id = NULL, started_at = NULL, lease_token = '', lease_expires_at = NULL,
               attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END
         WHERE id = %s AND status = %s AND lease_token = %s
        """,
        [JobStatus.QUEUED, job_id, JobStatus.RUNNING, token],
    ) == 1


def jobs_requeue_for_device(*, device_id: str) -> int:
    """Put every job running on a device back in the queue, in its original
    place (priority and submission order are untouched). Used when a device is
    removed, goes offline, or its runner died."""
    return _execute(
        """
        UPDATE jobs_job
           SET status = %s, device_id = NULL, started_at = NULL, lease_token = '', lease_expires_at = NULL
         WHERE device_id = %s AND status = %s
        """,
        [JobStatus.QUEUED, device_id, JobStatus.RUNNING],
    )


def jobs_requeue_expired(*, now: datetime | None = None) -> int:
    """Requeue running jobs whose lease ran out (their worker died)."""
    now = now or timezone.now()
    return _execute(
        """
        UPDATE jobs_job
           SET status = %s, device_id = NULL, started_at = NULL, lease_token = '', lease_expires_at = NULL
         WHERE status = %s AND lease_expires_at < %s
        """,
        [JobStatus.QUEUED, JobStatus.RUNNING, now],
    )
