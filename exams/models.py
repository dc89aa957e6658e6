from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q


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
        ]

    def _end_not_after_start(self) -> bool:
        # clean() runs even when a field failed its own validation: compare real datetimes only
        return isinstance(self.start, datetime) and isinstance(self.end, datetime) and self.end <= self.start

    def clean(self) -> None:
        # Shared by the API and the admin (exams.services calls full_clean()),
        # so both reject the same input with the same field-named messages.
        errors = {}
        if self._end_not_after_start():
            errors["end"] = "End must be after start."
        limit = settings.EXAM_MAX_STUDENTS
        if isinstance(self.students, int) and self.students > limit:
            errors["students"] = f"Ensure this value is less than or equal to {limit} (EXAM_MAX_STUDENTS)."
        if errors:
            raise ValidationError(errors)

    def validate_constraints(self, exclude=None):
        # clean() already reported end <= start against the `end` field; the
        # check constraint would add the same problem again as an anonymous
        # error. It still guards the database itself.
        if self._end_not_after_start():
            exclude = {*(exclude or ()), "end"}
        super().validate_constraints(exclude=exclude)

    def __str__(self) -> str:
        return f"{self.name} ({self.start:%Y-%m-%d %H:%M}Z, {self.students} students)"
