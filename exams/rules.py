"""The exam rules, once: what a valid exam is, and what is said when it is not.

The API (exams.serializers), the admin form (exams.admin), the model
(``Exam.clean_fields``/``clean``, which exams.services runs through
``full_clean()``) and the VM scenario parser and what-if preview
(vms.simulation, vms.preview) all check exams here, so the same bad value is
refused everywhere with the same message naming the same field. Each check
takes a raw value and returns it normalised (a stripped name, an aware UTC
datetime) or raises ``ExamRuleError`` naming the exam field.

Only *values* are ruled here. How a transport spells a value it cannot even
read (a JSON number where a time string belongs, the admin's two date/time
boxes) stays with that transport's parser.

The messages are the ones the API has always given (most are DRF's own
wording), so API clients see no change.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from django.conf import settings
from django.utils.dateparse import parse_datetime

from core.exceptions import DomainError

# --- the limits ---------------------------------------------------------------------

NAME_MAX_LENGTH = 200
# Ids are 32-bit: the exams table's primary key, and what VM records refer to.
ID_MIN, ID_MAX = 1, 2**31 - 1
STUDENTS_MIN = 0
# Exams are dated within the years 2000 to 2100 (UTC), end included: the
# planner and the admin compute hours before and after an exam, which must
# stay within Python's datetime range, and no real exam is outside it.
EXAM_YEARS = (2000, 2100)
EXAM_EARLIEST = datetime(EXAM_YEARS[0], 1, 1, tzinfo=timezone.utc)
EXAM_AFTER_LATEST = datetime(EXAM_YEARS[1] + 1, 1, 1, tzinfo=timezone.utc)
EXAM_FIELDS = ("name", "start", "end", "students")


def max_students() -> int:
    """The most students an exam may have (``EXAM_MAX_STUDENTS``, 2,500 by
    default), read at each check: the setting may change at run time."""
    return settings.EXAM_MAX_STUDENTS


# --- the messages ---------------------------------------------------------------------

NULL = "This field may not be null."
NOT_A_STRING = "Must be a string."
NAME_BLANK = "This field may not be blank."
NAME_TOO_LONG = f"Ensure this field has no more than {NAME_MAX_LENGTH} characters."
NOT_AN_INTEGER = "A valid integer is required."
TIME_INVALID = (
    "Datetime has wrong format. Use one of these formats instead: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."
)
DATE_WINDOW = f"Exam dates must be within the years {EXAM_YEARS[0]} to {EXAM_YEARS[1]} (UTC)."
END_NOT_AFTER_START = "End must be after start."
ID_TOO_SMALL = f"Ensure this value is greater than or equal to {ID_MIN}."
ID_TOO_LARGE = f"Ensure this value is less than or equal to {ID_MAX}."
STUDENTS_TOO_FEW = f"Ensure this value is greater than or equal to {STUDENTS_MIN}."


def students_too_many(limit: int) -> str:
    return f"Ensure this value is less than or equal to {limit} (EXAM_MAX_STUDENTS)."


class ExamRuleError(DomainError):
    """An exam value breaks a rule (400); ``field`` is the exam field: name, start, end, students or id."""

    field: str  # always set: every rule concerns one field

    def __init__(self, message: str, *, field: str):
        super().__init__(message, field=field)


# --- the checks -----------------------------------------------------------------------


def check_name(value: Any) -> str:
    """A name is text, stripped of surrounding blanks, 1 to 200 characters."""
    if value is None:
        raise ExamRuleError(NULL, field="name")
    if not isinstance(value, str):
        raise ExamRuleError(NOT_A_STRING, field="name")
    value = value.strip()
    if not value:
        raise ExamRuleError(NAME_BLANK, field="name")
    if len(value) > NAME_MAX_LENGTH:
        raise ExamRuleError(NAME_TOO_LONG, field="name")
    return value


def _integer(value: Any, field: str) -> int:
    if value is None:
        raise ExamRuleError(NULL, field=field)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ExamRuleError(NOT_AN_INTEGER, field=field)
    return value


def check_students(value: Any) -> int:
    """0 to EXAM_MAX_STUDENTS: an exam of 0 students is planned but needs no VM."""
    value = _integer(value, "students")
    if value < STUDENTS_MIN:
        raise ExamRuleError(STUDENTS_TOO_FEW, field="students")
    limit = max_students()
    if value > limit:
        raise ExamRuleError(students_too_many(limit), field="students")
    return value


def check_id(value: Any) -> int:
    """An explicit exam id (scenarios and imports bring their own): 1 to 2**31 - 1."""
    value = _integer(value, "id")
    if value < ID_MIN:
        raise ExamRuleError(ID_TOO_SMALL, field="id")
    if value > ID_MAX:
        raise ExamRuleError(ID_TOO_LARGE, field="id")
    return value


def as_utc(value: Any, *, field: str) -> datetime:
    """An ISO 8601 string or a datetime as an aware UTC datetime; without an
    offset it is UTC, the service's only time zone. No window check."""
    if value is None:
        raise ExamRuleError(NULL, field=field)
    if isinstance(value, str):
        try:
            parsed = parse_datetime(value.strip())
        except ValueError:
            parsed = None
        if parsed is None:
            raise ExamRuleError(TIME_INVALID, field=field)
        value = parsed
    if not isinstance(value, datetime):
        raise ExamRuleError(TIME_INVALID, field=field)
    if value.tzinfo is None or value.utcoffset() is None:
        return value.replace(tzinfo=timezone.utc)
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:  # e.g. 0001-01-01T00:00+01:00: before datetime's range in UTC
        raise ExamRuleError(DATE_WINDOW, field=field) from None


def check_time(value: Any, *, field: str) -> datetime:
    """A start or end: a time (see ``as_utc``) within the years 2000 to 2100 (UTC)."""
    value = as_utc(value, field=field)
    if not EXAM_EARLIEST <= value < EXAM_AFTER_LATEST:
        raise ExamRuleError(DATE_WINDOW, field=field)
    return value


def in_window(value: Any) -> bool:
    """Whether ``value`` (a datetime; naive is UTC) may be a start or end."""
    try:
        check_time(value, field="start")
    except ExamRuleError:
        return False
    return True


def check_order(start: datetime, end: datetime) -> None:
    """An exam lasts: its end is after its start (reported against ``end``)."""
    if end <= start:
        raise ExamRuleError(END_NOT_AFTER_START, field="end")


_CHECKS = {
    "name": check_name,
    "start": lambda value: check_time(value, field="start"),
    "end": lambda value: check_time(value, field="end"),
    "students": check_students,
}


def check_field(field: str, value: Any) -> Any:
    """The check of one of ``EXAM_FIELDS``; returns the normalised value."""
    return _CHECKS[field](value)


def check_exam(values: Mapping[str, Any]) -> dict:
    """Check the fields ``values`` holds (any of ``EXAM_FIELDS``), then the
    order of start and end when both are there; the first broken rule raises.
    Returns the normalised values."""
    checked = {field: check_field(field, values[field]) for field in EXAM_FIELDS if field in values}
    if "start" in checked and "end" in checked:
        check_order(checked["start"], checked["end"])
    return checked
