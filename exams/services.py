"""Writes on exams: the API, the admin and the VM simulation all come through here.

The exam rules live in ``exams.rules``; ``Exam.clean_fields()``/``clean()``
apply them through ``full_clean()`` before anything is saved, inside a
transaction, so a bad request changes nothing and every entry point rejects
the same input with the same field-named errors.

Times: aware datetimes are stored in UTC; a naive datetime (or an ISO string
without an offset) is taken to be UTC, the service's only time zone.

After each write ``exams.signals.exam_changed(exam_id=...)`` goes out once the
transaction commits (immediately when there is no surrounding transaction);
the VM scheduler listens to it and replans at once. Exams knows nothing of
VMs: without a receiver the exams app works alone.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.color import no_style
from django.db import DataError, IntegrityError, connection, transaction
from django.db.models import Exists, Min, OuterRef

from exams import rules
from exams.exceptions import ExamIdTaken, ExamNotFound
from exams.models import Exam
from exams.rules import ExamRuleError
from exams.signals import exam_changed

logger = logging.getLogger(__name__)

INT32_MAX = rules.ID_MAX
EDITABLE_FIELDS = rules.EXAM_FIELDS


def _rule(check, value: Any, *args, **kwargs) -> Any:
    """Run one exam rule; a broken rule is a ValidationError naming its field,
    like every other problem ``full_clean()`` finds."""
    try:
        return check(value, *args, **kwargs)
    except ExamRuleError as exc:
        raise ValidationError({exc.field: exc.message}) from None


def _clean_value(field: str, value: Any) -> Any:
    # Normalise before the model sees the value (UTC times, a stripped name);
    # the rules themselves run in Exam.clean_fields() through full_clean().
    if field in ("start", "end"):
        return None if value is None else _rule(rules.as_utc, value, field=field)
    if field == "name" and isinstance(value, str):
        return value.strip()
    return value


def _reset_id_sequence() -> None:
    """After an insert with an explicit id, let automatic ids continue above it.

    PostgreSQL's identity sequence does not see explicit ids: without this the
    next exam created without an id could collide with one created with it.
    (SQLite always continues above the largest id.)
    """
    statements = connection.ops.sequence_reset_sql(no_style(), [Exam])
    if statements:
        with connection.cursor() as cursor:
            for sql in statements:
                cursor.execute(sql)


def _notify(exam_id: int) -> None:
    """Announce the change once the transaction commits (never if it rolls back)."""
    transaction.on_commit(lambda: _announce(exam_id))


def _announce(exam_id: int) -> None:
    # send_robust: the exam is saved; a failing receiver (e.g. the VM
    # scheduler's wake-up) only delays it until its next pass, it must not
    # turn a successful write into an error.
    for receiver, result in exam_changed.send_robust(sender=Exam, exam_id=exam_id):
        if isinstance(result, Exception):
            logger.error("exam_changed receiver %r failed for exam %s", receiver, exam_id, exc_info=result)


def exam_create(*, name: str, start: datetime, end: datetime, students: int, id: int | None = None) -> Exam:
    """Create an exam; ``id`` is optional (scenarios and imports bring their own ids)."""
    exam = Exam(
        name=_clean_value("name", name),
        start=_clean_value("start", start),
        end=_clean_value("end", end),
        students=students,
    )
    if id is not None:
        exam.id = _rule(rules.check_id, id)
    exam.full_clean(validate_unique=False)
    with transaction.atomic():
        if id is not None and Exam.objects.filter(pk=id).exists():
            raise ExamIdTaken(f"An exam with id {id} already exists.", field="id")
        _insert(exam, id=id)
        if id is not None:
            _reset_id_sequence()
        _notify(exam.pk)
    return exam


class _PastIdMax(Exception):
    pass


def _insert(exam: Exam, *, id: int | None) -> None:
    """Insert with the given id, else the database's next one - unless that
    is above ``rules.ID_MAX`` (an exam was created with id 2,147,483,647):
    exam ids are 32-bit everywhere (the API, the VM records), so then the
    lowest free id is taken instead. (PostgreSQL's id sequence stops at that
    maximum with a DataError; SQLite goes past it.)"""
    try:
        with transaction.atomic():
            exam.save(force_insert=True)
            if id is None and exam.pk > rules.ID_MAX:
                raise _PastIdMax
    except (_PastIdMax, DataError) as exc:
        if id is not None:
            raise
        if isinstance(exc, DataError) and not _sequence_at_its_end():
            raise
        exam.pk = _lowest_free_id()
        with transaction.atomic():
            exam.save(force_insert=True)
    except IntegrityError:
        if id is not None and Exam.objects.filter(pk=id).exists():
            # created concurrently between our check and our insert
            raise ExamIdTaken(f"An exam with id {id} already exists.", field="id") from None
        raise


def _sequence_at_its_end() -> bool:
    return Exam.objects.filter(pk=rules.ID_MAX).exists()


def _lowest_free_id() -> int:
    if not Exam.objects.filter(pk=rules.ID_MIN).exists():
        return rules.ID_MIN
    followed = Exam.objects.filter(pk=OuterRef("pk") + 1)
    gap = Exam.objects.filter(pk__lt=rules.ID_MAX).exclude(Exists(followed)).aggregate(first=Min("pk"))["first"]
    if gap is None:
        raise ExamIdTaken(f"Every exam id from {rules.ID_MIN} to {rules.ID_MAX} is taken.", field="id")
    return gap + 1


def exam_update(*, exam: Exam, **fields: Any) -> Exam:
    """Change any of name, start, end, students; returns the saved exam.

    Nothing is saved (and the scheduler is not woken) when the values are unchanged.
    """
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise TypeError(f"exam_update() got unknown fields: {', '.join(sorted(unknown))}")
    with transaction.atomic():
        current = Exam.objects.select_for_update().filter(pk=exam.pk).first()
        if current is None:
            raise ExamNotFound(f"No exam with id {exam.pk}.", field="id")
        changed = False
        for field, value in fields.items():
            value = _clean_value(field, value)
            if getattr(current, field) != value:
                setattr(current, field, value)
                changed = True
        current.full_clean(validate_unique=False)
        if changed:
            current.save()
            _notify(current.pk)
    return current


def exam_delete(*, exam: Exam) -> None:
    """Delete an exam; the scheduler then stops all of its VMs."""
    with transaction.atomic():
        deleted, _ = Exam.objects.filter(pk=exam.pk).delete()
        if not deleted:
            raise ExamNotFound(f"No exam with id {exam.pk}.", field="id")
        _notify(exam.pk)
