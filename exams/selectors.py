"""Reads of exams."""

from __future__ import annotations

from django.db.models import QuerySet

from exams.exceptions import ExamNotFound
from exams.models import Exam


def exam_list() -> QuerySet[Exam]:
    """All exams, earliest start first."""
    return Exam.objects.order_by("start", "id")


def exam_get(*, exam_id: int) -> Exam:
    exam = Exam.objects.filter(pk=exam_id).first()
    if exam is None:
        raise ExamNotFound(f"No exam with id {exam_id}.", field="id")
    return exam
