from __future__ import annotations

from datetime import datetime, timezone

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q

from exams import rules
from exams.rules import EXAM_AFTER_LATEST, EXAM_EARLIEST, EXAM_FIELDS, ExamRuleError


class Exam(models.Model):
    """An exam as the brief defines it: the `exams` table.

    Every student needs one fresh VM ready at ``start``; the VMs go at ``end``.
    """

    id = models.AutoField(primary_key=True)
    name = models.CharField(max_length=rules.NAME_MAX_LENGTH)
    start = models.DateTimeField(db_index=True)
    end = models.DateTimeField()
    students = models.PositiveIntegerField(validators=[MinValueValidator(rules.STUDENTS_MIN)])
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

    def clean_fields(self, exclude=None) -> None:
        # The exam rules (exams.rules) speak first, in the words the API, the
        # admin and the scenario parser use; the fields' own validators then
        # check only the fields the rules found nothing wrong with.
        exclude = set(exclude or ())
        errors: dict[str, list] = {}
        for field in EXAM_FIELDS:
            if field not in exclude:
                try:
                    rules.check_field(field, getattr(self, field))
                except ExamRuleError as exc:
                    errors[field] = [exc.message]
        try:
            super().clean_fields(exclude=exclude | set(errors))
        except ValidationError as exc:
            errors.update(exc.error_dict)
        if errors:
            raise ValidationError(errors)

    def clean(self) -> None:
        # Shared by the API and the admin (exams.services calls full_clean()).
        if self._end_not_after_start():
            raise ValidationError({"end": rules.END_NOT_AFTER_START})

    def validate_constraints(self, exclude=None):
        # The rules already reported end <= start and dates out of the window
        # against their fields; the check constraints would add the same
        # problems again as anonymous errors. They still guard the database.
        if self._end_not_after_start():
            exclude = {*(exclude or ()), "end"}
        if not (rules.in_window(self.start) and rules.in_window(self.end)):
            exclude = {*(exclude or ()), "start", "end"}
        super().validate_constraints(exclude=exclude)

    def __str__(self) -> str:
        # UTC with seconds, like every time in the admin (breadcrumbs, links, titles).
        return f"{self.name} ({self.start.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S}Z, {self.students} students)"
