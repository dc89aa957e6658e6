"""Writes on programs and jobs: submission, cancellation, operator requeue.

Claims, results and requeues done by the workers live in ``jobs.claims``.
Every write that queues work wakes the workers (``jobs.notify``) once the
transaction has committed, so a runner woken up always sees the new rows.
"""

from __future__ import annotations

import json
import uuid
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from core import prepared
from core.authentication import key_may_exist
from core.rows import RowReader
from jobs import estimates, lifecycle, notify, selectors
from jobs.exceptions import DomainError, DuplicateId, JobNotCancellable, NoDeviceCanRun, ProgramMismatch
from jobs.limits import check_priority, check_queued_cap, queued_cap_applies
from jobs.models import CallbackStatus, Job, JobStatus, Program, new_webhook_secret
from jobs.notify import notify_changed
from jobs.queue_counters import jobs_ahead_from_the_back_sql

# Rows per INSERT statement: large enough that 10,000 jobs take a handful of
# round trips, small enough to stay far below PostgreSQL's 65,535 parameters
# (Django lowers it further on SQLite by itself).
BULK_BATCH_SIZE = 2000
# `key__in` lookups are chunked for the same parameter limits.
LOOKUP_CHUNK = 5000


@dataclass(frozen=True, slots=True)
class JobSpec:
    """One job of a program submission, already validated."""

    key: str | None = None
    instructions: Any = field(default_factory=list)
    shots: int = 1
    min_size: int | None = None


@dataclass(frozen=True)
class ProgramCreated:
    program: Program
    job_keys: list[str]
    # Why some of its jobs cannot start yet (jobs.estimates), once for the program.
    warnings: list[str] = field(default_factory=list)


def new_key() -> str:
    return uuid.uuid4().hex


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _check_job_keys_free(keys: list[str | None]) -> None:
    """400 for an id given twice in the request, 409 for one already taken;
    both name the job by its index so the client can find it."""
    seen: dict[str, int] = {}
    for index, key in enumerate(keys):
        if key is None:
            continue
        if key in seen:
            raise DomainError(f"Duplicate job id {key!r} (also jobs[{seen[key]}]).", field=f"jobs[{index}].id")
        seen[key] = index
    if not seen:
        return
    given = list(seen)
    for chunk in _chunks(given, LOOKUP_CHUNK):
        taken = set(Job.objects.filter(key__in=chunk).values_list("key", flat=True))
        if taken:
            first = min(seen[k] for k in taken)
            raise DuplicateId(f"A job with id {keys[first]!r} already exists.", field=f"jobs[{first}].id")


def registered_sizes(device_type: str) -> list[int]:
    """Distinct sizes of the type's registered devices (any status), sorted."""
    from devices.models import Device

    return sorted(set(Device.objects.filter(type=device_type).values_list("size", flat=True).distinct()))


def _check_result_sizes(
    *, device_type: str, sizes: list[int], jobs: Sequence[JobSpec], field_prefix: str = "jobs[{index}]."
) -> None:
    """400 naming ``shots`` for a job whose result (``size x shots`` bits)
    would exceed RESULT_MAX_BITS on every registered device of its type that
    it could run on (size >= min_size): no device would ever be handed it.
    With no such device registered, the smallest size it could run on
    (min_size, else 1) decides. ``sizes`` are the type's distinct registered
    sizes (one query), then a bisect per job, so a 10,000-job program costs
    milliseconds."""
    cap = settings.RESULT_MAX_BITS
    # Each job is judged by a registered size or its own min_size: when even
    # the largest of those times the most shots fits, every job does.
    largest = max(sizes[-1] if sizes else 1, max((spec.min_size or 1) for spec in jobs))
    if largest * max(spec.shots for spec in jobs) <= cap:
        return
    for index, spec in enumerate(jobs):
        floor = spec.min_size or 1
        at = bisect_left(sizes, floor)
        size = sizes[at] if at < len(sizes) else floor
        if size * spec.shots > cap:
            where = (
                f"the smallest {device_type!r} device it can run on has {size} qubits"
                if at < len(sizes)
                else f"it needs at least {size} qubit(s)"
            )
            raise DomainError(
                f"A result may hold at most {cap:,} bits (RESULT_MAX_BITS = device size x shots); {where}, "
                f"so at most {cap // size:,} shots; got {spec.shots:,}.",
                field=field_prefix.format(index=index) + "shots",
            )


def _device_warnings(
    *,
    device_type: str,
    sizes: list[int],
    jobs: Sequence[JobSpec],
    require_device: bool,
    field_prefix: str = "jobs[{index}].",
) -> list[str]:
    """Why jobs of this submission cannot start yet (``jobs.estimates``): the
    warnings to answer with, or, with ``require_device``, a 409 naming the
    reason and the field (nothing is created)."""
    warnings = estimates.submission_warnings(
        device_type=device_type, sizes=sizes, min_sizes=[spec.min_size for spec in jobs]
    )
    if warnings and require_device:
        largest = sizes[-1] if sizes else 0
        first = next((i for i, spec in enumerate(jobs) if (spec.min_size or 1) > largest), 0)
        where = "device_type" if not sizes else field_prefix.format(index=first) + "min_size"
        raise NoDeviceCanRun(warnings[0] + " (require_device=true: nothing was created.)", field=where)
    return warnings


def _insert_jobs(
    *, owner_id: int, program_id: int, priority: int, device_type: str, keys: list[str], jobs: Sequence[JobSpec]
) -> None:
    """Insert a program's jobs in submission order (their ids are the queue's
    tie-breaker).

    On PostgreSQL: one INSERT ... SELECT over unnest() of four arrays; the
    ORM's bulk_create spends more time building its SQL than PostgreSQL
    spends inserting, and this keeps 10,000 jobs well under a second.
    Elsewhere: bulk_create.
    """
    if connection.vendor != "postgresql":
        Job.objects.bulk_create(
            [
                Job(
                    key=key,
                    program_id=program_id,
                    owner_id=owner_id,
                    priority=priority,
                    device_type=device_type,
                    instructions=spec.instructions,
                    shots=spec.shots,
                    min_size=spec.min_size,
                )
                for key, spec in zip(keys, jobs, strict=True)
            ],
            batch_size=BULK_BATCH_SIZE,
        )
        return
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO jobs_job (key, program_id, owner_id, priority, device_type, instructions, shots, min_size,
                                  status, attempts, requeues, created_at, error, lease_token, callback_status,
                                  callback_attempts, callback_error)
            SELECT t.key, %s, %s, %s, %s, t.instructions, t.shots, t.min_size,
                   'queued', 0, 0, %s, '', '', '', 0, ''
              FROM unnest(%s::text[], %s::jsonb[], %s::integer[], %s::integer[]) WITH ORDINALITY
                   AS t(key, instructions, shots, min_size, n)
             ORDER BY t.n
            """,
            [
                program_id,
                owner_id,
                priority,
                device_type,
                timezone.now(),
                keys,
                [json.dumps(spec.instructions) for spec in jobs],
                [spec.shots for spec in jobs],
                [spec.min_size for spec in jobs],
            ],
        )


def program_create(
    *,
    owner,
    priority: int,
    device_type: str,
    jobs: Sequence[JobSpec],
    key: str | None = None,
    callback_url: str = "",
    client_user_id: str = "",
    require_device: bool = False,
) -> ProgramCreated:
    """Create a program and all its jobs atomically, in bulk.

    Jobs keep the order of ``jobs`` as their submission order (the queue's
    tie-breaker). Either everything is created or nothing is. Fair use
    (``jobs.limits``): the priority ceiling, then the owner's queued cap.
    Jobs no registered device can run are accepted with ``warnings``, or
    refused (409) with ``require_device``.
    """
    if not jobs:
        raise DomainError("A program needs at least one job.", field="jobs")
    if len(jobs) > settings.PROGRAM_MAX_JOBS:
        raise DomainError(f"At most {settings.PROGRAM_MAX_JOBS} jobs per program; got {len(jobs)}.", field="jobs")
    check_priority(user=owner, priority=priority)
    sizes = registered_sizes(device_type)
    _check_result_sizes(device_type=device_type, sizes=sizes, jobs=jobs)
    warnings = _device_warnings(device_type=device_type, sizes=sizes, jobs=jobs, require_device=require_device)
    key = key or new_key()
    job_keys = [spec.key for spec in jobs]
    with transaction.atomic():
        check_queued_cap(user=owner, adding=len(jobs))
        if Program.objects.filter(key=key).exists():
            raise DuplicateId(f"A program with id {key!r} already exists.", field="id")
        _check_job_keys_free(job_keys)
        try:
            with transaction.atomic():  # savepoint: a concurrent request may take the id
                program = Program.objects.create(
                    key=key,
                    owner=owner,
                    client_user_id=client_user_id,
                    priority=priority,
                    device_type=device_type,
                    callback_url=callback_url,
                    webhook_secret=new_webhook_secret(),
                )
        except IntegrityError as exc:
            raise DuplicateId(f"A program with id {key!r} already exists.", field="id") from exc
        final_keys = [k or new_key() for k in job_keys]
        try:
            # A savepoint so a race on an id (another request took it since
            # the check) leaves a clean transaction to roll back.
            with transaction.atomic():
                _insert_jobs(
                    owner_id=owner.pk,
                    program_id=program.pk,
                    priority=priority,
                    device_type=device_type,
                    keys=final_keys,
                    jobs=jobs,
                )
        except IntegrityError as exc:
            raise DuplicateId(
                "A job id of this program was taken meanwhile; nothing was created.", field="jobs"
            ) from exc
        notify_changed(device_type)
    lifecycle.submitted(program=program.key, job_keys=final_keys, device_type=device_type, priority=priority)
    return ProgramCreated(program=program, job_keys=final_keys, warnings=warnings)


def job_submit(
    *,
    owner,
    priority: int,
    device_type: str,
    key: str | None = None,
    program_key: str | None = None,
    client_user_id: str = "",
    instructions: Any = None,
    shots: int = 1,
    min_size: int | None = None,
    require_device: bool = False,
    devices: Sequence[estimates.DeviceSlot] | None = None,
) -> Job:
    """The brief's flat form: one job naming its program.

    The program is created on first use with this job's priority and device
    type; later jobs join it and must agree on both (400 naming the field)
    and come from the same owner (400 naming ``program_id``). Without a
    ``program_key`` the job gets a program of its own. The same fair-use
    checks as ``program_create`` apply, and the same ``require_device``.
    ``devices``: the type's devices, when the caller has just read them (the
    fast lane reads them with the token).
    """
    check_priority(user=owner, priority=priority)
    spec = [JobSpec(shots=shots, min_size=min_size)]
    devices = estimates.type_devices(device_type) if devices is None else list(devices)
    sizes = sorted({d.size for d in devices})
    _check_result_sizes(device_type=device_type, sizes=sizes, jobs=spec, field_prefix="")
    _device_warnings(device_type=device_type, sizes=sizes, jobs=spec, require_device=require_device, field_prefix="")
    fields = _flat_form(
        priority=priority,
        device_type=device_type,
        key=key,
        program_key=program_key,
        client_user_id=client_user_id,
        instructions=instructions,
        shots=shots,
        min_size=min_size,
    )
    submit = _job_submit_one_statement if connection.vendor == "postgresql" else _job_submit_orm
    return _queued(submit(owner=owner, **fields), devices=devices)


def _flat_form(
    *, priority, device_type, key, program_key, client_user_id, instructions, shots, min_size
) -> dict[str, Any]:
    """A flat-form job's fields as the submission statements take them: ids
    generated where the client gave none, null instructions as []."""
    return {
        "priority": priority,
        "device_type": device_type,
        "key": key or new_key(),
        "program_key": program_key or new_key(),
        "client_user_id": client_user_id,
        "instructions": [] if instructions is None else instructions,
        "shots": shots,
        "min_size": min_size,
    }


def _queued(job: Job, *, devices: list[estimates.DeviceSlot]) -> Job:
    """A flat-form job just written: the type's devices it was judged with
    are kept for the answer's estimate, and the submission is logged."""
    job._type_devices = devices
    lifecycle.submitted(program=job.program.key, job_keys=[job.key], device_type=job.device_type, priority=job.priority)
    return job


def job_submit_by_token(
    *,
    token: str,
    priority: int,
    device_type: str,
    key: str | None = None,
    program_key: str | None = None,
    client_user_id: str = "",
    instructions: Any = None,
    shots: int = 1,
    min_size: int | None = None,
) -> Job | None:
    """``job_submit`` for the active user whose API key is ``token``; None,
    with nothing written, when no active user has it. For the fast lane's
    ``POST /jobs`` (``jobs.fastlane``).

    On PostgreSQL outside a transaction the user is looked up by the very
    statement that writes (one round trip). That statement writes only what
    it can tell is allowed without further reads: a priority within
    USER_MAX_PRIORITY or a staff user, a user the queued-jobs cap does not
    apply to, a result within RESULT_MAX_BITS on the smallest device it could
    run on. Anything else - and a program being created by another
    transaction, or one that disagrees - is not written by it: the submission
    goes on through ``job_submit`` with the user and devices it read, which
    applies every rule as always (and raises what it raises)."""
    if not key_may_exist(token) or "\x00" in device_type:
        return None
    fields = _flat_form(
        priority=priority,
        device_type=device_type,
        key=key,
        program_key=program_key,
        client_user_id=client_user_id,
        instructions=instructions,
        shots=shots,
        min_size=min_size,
    )
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        found = selectors.submitter_by_token(token=token, device_type=device_type)
        return None if found is None else job_submit(owner=found[0], devices=found[1], **fields)
    params = _submit_params(owner_id=None, now=timezone.now(), **fields)
    params.update(
        token=token,
        priority_ceiling=settings.USER_MAX_PRIORITY,
        uncapped=settings.USER_MAX_QUEUED_JOBS <= 0,
        floor=min_size or 1,
        result_cap=settings.RESULT_MAX_BITS,
    )
    sql, users = _submit_by_token_statement()
    try:
        with connection.cursor() as cursor:
            prepared.execute(cursor, sql, params)
            row = cursor.fetchone()
    except IntegrityError as exc:
        raise DuplicateId(f"A job with id {fields['key']!r} already exists.", field="id") from exc
    if row is None:
        return None
    split = len(users.fields)
    owner, devices, wrote = users.instance(row[:split]), estimates.devices_from_json(row[split]), row[-2] is not None
    if not wrote:  # nothing of it was written
        return job_submit(owner=owner, devices=devices, **fields)
    program = _PROGRAMS.instance(row[split + 2 : -2])
    job = _submitted_job(row, program=program, owner=owner, params=params, instructions=fields["instructions"])
    return _queued(job, devices=devices)


@cache
def _submit_by_token_statement() -> tuple[str, RowReader]:
    """``_submit_sql`` with the owner read from the token, gated as
    ``job_submit_by_token`` says (``may_write``), and the reader of the
    user's columns."""
    may_write = """,
           (%(priority)s::integer <= %(priority_ceiling)s::integer OR u.is_staff)
           AND (u.is_staff OR %(uncapped)s::boolean)
           AND coalesce((SELECT min(d.size) FROM devices_device d
                          WHERE d.type = %(device_type)s::text AND d.size >= %(floor)s::integer),
                        %(floor)s::integer)::bigint * %(shots)s::integer <= %(result_cap)s::bigint AS may_write"""
    submitter, users = selectors.submitter_sql(
        device_type="%(device_type)s::text", token="%(token)s::text", extra=may_write
    )
    return _submit_sql(owner="s.id", submitter=f"s AS ({submitter})"), users


def _check_program_matches(program: Program, *, owner, priority: int, device_type: str) -> None:
    """A job joining an existing program must agree with it (400 naming the field)."""
    name = program.key
    if program.owner_id != owner.pk:
        raise ProgramMismatch(f"Program {name!r} belongs to another user.", field="program_id")
    if program.device_type != device_type:
        raise ProgramMismatch(
            f"Program {name!r} runs on device type {program.device_type!r}, not {device_type!r}.",
            field="device_type",
        )
    if program.priority != priority:
        raise ProgramMismatch(
            f"Program {name!r} has priority {program.priority}, not {priority}; "
            "all jobs of a program share its priority.",
            field="priority",
        )


def _job_submit_orm(*, owner, priority, device_type, key, program_key, client_user_id, instructions, shots, min_size):
    """SQLite: the ORM, in one transaction (a savepoint per insert keeps it
    usable when an id turns out to be taken)."""
    with transaction.atomic():
        check_queued_cap(user=owner, adding=1)
        defaults = {
            "owner": owner,
            "priority": priority,
            "device_type": device_type,
            "client_user_id": client_user_id,
            "webhook_secret": new_webhook_secret(),
        }
        program, created = Program.objects.get_or_create(key=program_key, defaults=defaults)
        if not created:
            _check_program_matches(program, owner=owner, priority=priority, device_type=device_type)
        try:
            with transaction.atomic():
                job = Job.objects.create(
                    key=key,
                    program=program,
                    owner=owner,
                    priority=program.priority,
                    device_type=program.device_type,
                    instructions=instructions,
                    shots=shots,
                    min_size=min_size,
                )
        except IntegrityError as exc:
            raise DuplicateId(f"A job with id {key!r} already exists.", field="id") from exc
        notify_changed(device_type)
    return job


_PROGRAMS = RowReader.of(Program)
_JOB_FIELDS = tuple(Job._meta.concrete_fields)
_JOB_ATTNAMES = [f.attname for f in _JOB_FIELDS]
_PROGRAM_COLUMNS = [str(f.column) for f in _PROGRAMS.fields]


# Program upsert, job insert and the new job's queue position in one
# statement (prepared once per connection). The job is
# inserted only into a program that agrees with it (owner, priority, device
# type); otherwise the answer says why and nothing was written except a
# program created by this very statement, which cannot then disagree. A job
# id already taken is a unique violation: the statement (and with it a
# program it created) is undone as a whole. The position is counted at the
# statement's snapshot, which the new job is not part of yet: the queued jobs
# ahead of it then, as the counters' triggers run after the statement;
# counted from the back of the queue, where the new job is. The workers'
# NOTIFY goes after the commit, on its own (``notify.job_queued``): inside
# the writing transaction it would hold PostgreSQL's notification-queue lock
# through the commit's WAL flush, and concurrent submissions waited for each
# other on it (docs/benchmarks.md).
#
# ``owner`` is the owner's id as an SQL expression. ``submitter``, when given,
# is a CTE named ``s`` of one row with the owner's ``id`` and a ``may_write``
# flag: without its row, or with the flag false, nothing is written.
def _submit_sql(*, owner: str, submitter: str = "") -> str:
    columns = ", ".join(_PROGRAM_COLUMNS)
    gate, gate_program, gate_job = (
        ("FROM s WHERE s.may_write", "AND EXISTS (SELECT 1 FROM s WHERE s.may_write)", ", s WHERE s.may_write AND")
        if submitter
        else ("", "", " WHERE")
    )
    return f"""
    WITH {submitter + ", " if submitter else ""}new_program AS (
        INSERT INTO jobs_program (key, owner_id, client_user_id, priority, device_type, callback_url,
                                  webhook_secret, created_at)
        SELECT %(program_key)s::text, {owner}, %(client_user_id)s::text, %(priority)s::integer,
               %(device_type)s::text, '', %(secret)s::text, %(now)s::timestamptz {gate}
        ON CONFLICT (key) DO NOTHING
        RETURNING {columns}
    ), program AS (
        SELECT * FROM new_program
        UNION ALL
        SELECT {columns} FROM jobs_program
         WHERE key = %(program_key)s AND NOT EXISTS (SELECT 1 FROM new_program) {gate_program}
    ), job AS (
        INSERT INTO jobs_job (key, program_id, owner_id, priority, device_type, instructions, shots, min_size,
                              status, attempts, requeues, created_at, error, lease_token, callback_status,
                              callback_attempts, callback_error)
        SELECT %(key)s, p.id, p.owner_id, p.priority, p.device_type, %(instructions)s::jsonb, %(shots)s::integer,
               %(min_size)s::integer, 'queued', 0, 0, %(now)s, '', '', '', 0, ''
          FROM program p{gate_job} p.owner_id = {owner} AND p.priority = %(priority)s
           AND p.device_type = %(device_type)s
        RETURNING id
    )
    SELECT {"s.*, " if submitter else ""}program.*, (SELECT id FROM job),
           (SELECT {jobs_ahead_from_the_back_sql("%(device_type)s", "%(priority)s", "job.id")} FROM job)
      FROM {"s LEFT JOIN program ON true" if submitter else "program"}
"""


_SUBMIT_SQL = _submit_sql(owner="%(owner)s::bigint")


def _job_submit_one_statement(
    *, owner, priority, device_type, key, program_key, client_user_id, instructions, shots, min_size
):
    """PostgreSQL: one statement in autocommit instead of a transaction of
    ten round trips (BEGIN, program get-or-create with its savepoint, the
    job insert with its savepoint, COMMIT, NOTIFY); the NOTIFY follows the
    commit (``notify.job_queued``, coalesced across threads). A user under
    USER_MAX_QUEUED_JOBS still gets a transaction, for the lock that makes
    the cap exact (``jobs.limits``); inside an outer transaction a savepoint
    keeps it usable when the job id is taken."""
    now = timezone.now()
    params = _submit_params(
        owner_id=owner.pk,
        priority=priority,
        device_type=device_type,
        key=key,
        program_key=program_key,
        client_user_id=client_user_id,
        instructions=instructions,
        shots=shots,
        min_size=min_size,
        now=now,
    )
    own_transaction = queued_cap_applies(owner) or connection.in_atomic_block
    try:
        with transaction.atomic() if own_transaction else nullcontext():
            check_queued_cap(user=owner, adding=1)
            row = None
            for _ in range(2):  # a program created by a concurrent request is visible to the second try
                with connection.cursor() as cursor:
                    prepared.execute(cursor, _SUBMIT_SQL, params)
                    row = cursor.fetchone()
                if row is not None:
                    break
    except IntegrityError as exc:
        raise DuplicateId(f"A job with id {key!r} already exists.", field="id") from exc
    if row is None:
        raise DuplicateId(
            f"Program {program_key!r} was being created by another request; try again.", field="program_id"
        )
    program = _PROGRAMS.instance(row[:-2])
    if row[-2] is None:  # only an existing program that disagrees stops the insert
        _check_program_matches(program, owner=owner, priority=priority, device_type=device_type)
        raise DomainError(f"Program {program_key!r} did not take the job.", field="program_id")
    return _submitted_job(row, program=program, owner=owner, params=params, instructions=instructions)


def _submit_params(
    *, owner_id, priority, device_type, key, program_key, client_user_id, instructions, shots, min_size, now
) -> dict[str, Any]:
    """The submission statements' parameters (``_submit_sql``)."""
    return {
        "program_key": program_key,
        "owner": owner_id,
        "client_user_id": client_user_id,
        "priority": priority,
        "device_type": device_type,
        "secret": new_webhook_secret(),
        "now": now,
        "key": key,
        "instructions": json.dumps(instructions),
        "shots": shots,
        "min_size": min_size,
    }


def _submitted_job(row, *, program: Program, owner, params: dict[str, Any], instructions: Any) -> Job:
    """The job a submission statement wrote, from the end of its row (job
    id, jobs ahead), as the ORM would have loaded it; the workers are woken.
    Built from positional values (the columns the statement set, the
    model's defaults for the rest, as the statement wrote them): Django's
    keyword-argument path through two dozen fields cost ~0.1 ms a job."""
    job_id, ahead = row[-2], row[-1]
    notify.job_queued()
    written = {
        "id": job_id,
        "key": params["key"],
        "program_id": program.pk,
        "owner_id": owner.pk,
        "priority": params["priority"],
        "device_type": params["device_type"],
        "instructions": instructions,
        "shots": params["shots"],
        "min_size": params["min_size"],
        "created_at": params["now"],
    }
    job = Job.from_db(
        connection.alias,
        _JOB_ATTNAMES,
        [written[f.attname] if f.attname in written else f.get_default() for f in _JOB_FIELDS],
    )
    job.program, job.owner = program, owner
    job._queue_position = int(ahead) + 1  # read by jobs.selectors.job_queue_position
    return job


def program_webhook_secret_rotate(*, program_id: int) -> str:
    """A new signing key for the program's callbacks, effective for the
    next delivery attempt (retries included); the old key signs nothing
    more. The owner gets it once, in the answer."""
    secret = new_webhook_secret()
    Program.objects.filter(pk=program_id).update(webhook_secret=secret)
    return secret


def job_cancel(*, job_id: int, now: datetime | None = None) -> Job:
    """Cancel a queued job. Running and finished jobs cannot be (409).

    One conditional UPDATE, so a worker claiming the job at the same moment
    either gets it first (and the cancel is refused) or never sees it.
    """
    now = now or timezone.now()
    cancelled = Job.objects.filter(pk=job_id, status=JobStatus.QUEUED).update(
        status=JobStatus.CANCELLED, finished_at=now
    )
    job = Job.objects.select_related("program").get(pk=job_id)
    if not cancelled:
        raise JobNotCancellable(f"Only queued jobs can be cancelled; this job is {job.status}.", field="status")
    lifecycle.cancelled(count=1, job=job.key, program=job.program.key)
    return job


def program_cancel(*, program_id: int, now: datetime | None = None) -> int:
    """Cancel every queued job of a program; running ones finish normally.
    Returns how many jobs were cancelled."""
    now = now or timezone.now()
    cancelled = Job.objects.filter(program_id=program_id, status=JobStatus.QUEUED).update(
        status=JobStatus.CANCELLED, finished_at=now
    )
    if cancelled:
        lifecycle.cancelled(count=cancelled, program=_program_key(program_id))
    return cancelled


def jobs_cancel(*, job_ids: Iterable[int], now: datetime | None = None) -> int:
    """Operator bulk cancel (admin action): the queued ones among ``job_ids``."""
    now = now or timezone.now()
    cancelled = Job.objects.filter(pk__in=list(job_ids), status=JobStatus.QUEUED).update(
        status=JobStatus.CANCELLED, finished_at=now
    )
    if cancelled:
        lifecycle.cancelled(count=cancelled)
    return cancelled


def _program_key(program_id: int) -> str:
    """For the log line of a cancel (rare: one small read)."""
    return Program.objects.filter(pk=program_id).values_list("key", flat=True).first() or f"#{program_id}"


def jobs_requeue_failed(*, job_ids: Iterable[int]) -> int:
    """Operator retry of failed jobs: back to the queue in their original
    place (priority and submission order unchanged) with a fresh attempt and
    requeue budget. The last error is kept for reference until the next run starts
    (a claim clears it); the callback state is reset so the next outcome is
    delivered again."""
    ids = list(job_ids)
    with transaction.atomic():
        types = set(
            Job.objects.filter(pk__in=ids, status=JobStatus.FAILED).values_list("device_type", flat=True).distinct()
        )
        requeued = Job.objects.filter(pk__in=ids, status=JobStatus.FAILED).update(
            status=JobStatus.QUEUED,
            attempts=0,
            requeues=0,
            device=None,
            started_at=None,
            finished_at=None,
            lease_token="",
            lease_expires_at=None,
            callback_status=CallbackStatus.NONE,
            callback_attempts=0,
            callback_error="",
            callback_delivered_at=None,
        )
        for device_type in types:
            notify_changed(device_type)
    return requeued
