from __future__ import annotations

from datetime import datetime, timezone

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q


# Exams are dated within the years 2000 to 2100 (UTC), end included: the
# planner and the admin compute hours before and after an exam, which must
# stay within Python's datetime range, and no real exam is outside it.
EXAM_YEARS = (2000, 2100)
EXAM_EARLIEST = datetime(EXAM_YEARS[0], 1, 1, tzinfo=timezone.utc)
EXAM_AFTER_LATEST = datetime(EXAM_YEARS[1] + 1, 1, 1, tzinfo=timezone.utc)
DATE_WINDOW_MESSAGE = f"Exam dates must be within the years {EXAM_YEARS[0]} to {EXAM_YEARS[1]} (UTC)."


def date_window_error(value) -> str | None:
    """Why ``value`` cannot be an exam's start or end, or None when it can
    (a naive datetime is taken as UTC, as everywhere in the service)."""
    if not isinstance(value, datetime):
        return None  # the field's own validation reports it
    if value.tzinfo is None or value.utcoffset() is None:
        value = value.replace(tzinfo=timezone.utc)
    return None if EXAM_EARLIEST <= value < EXAM_AFTER_LATEST else DATE_WINDOW_MESSAGE


class Exam(models.Model):
    """An exam as the brief defines it: the `exams` table.

    Every student needs one fresh VM ready at ``start``; the VMs go at ``end``.
    """

    id = models.AutoField(primary_key=True)
    name = models.CharField(max_length=200)
    start = models.DateTimeField(db_index=True)
    end = models.DateTimeField()
    students = models.PositiveIntegerField(validators=[MinValueValidator(0)])
    # Bumped on every change so the VM scheduler can replan at once.
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "exams"
        ordering = ["start", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(end__gt=F("start")), name="exam_end_after_start"),
            models.CheckConstraint(
                condition=Q(start__gte=EXAM_EARLIEST, end__lt=EXAM_AFTER_LATEST), name="exam_dates_in_window"
            ),
        ]

    def _end_not_after_start(self) -> bool:
        # clean() runs even when a field failed its own validation: compare real datetimes only
        return isinstance(self.start, datetime) and isinstance(self.end, datetime) and self.end <= self.start

    def clean(self) -> None:
        # Shared by the API and the admin (exams.services calls full_clean()),
        # so both reject the same input with the same field-named messages.
        errors = {}
        for field in ("start", "end"):
            error = date_window_error(getattr(self, field))
            if error:
                errors[field] = error
        if self._end_not_after_start():
            errors.setdefault("end", "End must be after start.")
        limit = settings.EXAM_MAX_STUDENTS
        if isinstance(self.students, int) and self.students > limit:
            errors["students"] = f"Ensure this value is less than or equal to {limit} (EXAM_MAX_STUDENTS)."
        if errors:
            raise ValidationError(errors)

    def validate_constraints(self, exclude=None):
        # clean() already reported end <= start and dates out of the window
        # against their fields; the check constraints would add the same
        # problems again as anonymous errors. They still guard the database.
        if self._end_not_after_start():
            exclude = {*(exclude or ()), "end"}
        if date_window_error(self.start) or date_window_error(self.end):
            exclude = {*(exclude or ()), "start", "end"}
        super().validate_constraints(exclude=exclude)

    def __str__(self) -> str:
        # UTC with seconds, like every time in the admin (breadcrumbs, links, titles).
        return f"{self.name} ({self.start.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S}Z, {self.students} students)"
