from __future__ import annotations

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

    def __str__(self) -> str:
        return f"{self.name} ({self.start:%Y-%m-%d %H:%M}Z, {self.students} students)"
