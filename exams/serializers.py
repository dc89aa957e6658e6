"""Input and output shapes of the exam API.

The DRF fields read JSON into values (and state the bounds in the OpenAPI
schema); the exam rules themselves are ``exams.rules``, run here field by
field and again by the service (``full_clean()``) against the stored exam.
"""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.fields import TextField
from exams import rules
from exams.models import Exam
from exams.rules import ExamRuleError
from exams.services import exam_create, exam_update

_WINDOW = f"Years {rules.EXAM_YEARS[0]} to {rules.EXAM_YEARS[1]} (UTC)."


@extend_schema_field({"type": "integer", "minimum": rules.STUDENTS_MIN, "maximum": settings.EXAM_MAX_STUDENTS})
class _StudentsField(serializers.IntegerField):
    """0 to EXAM_MAX_STUDENTS (checked at each request by exams.rules: the setting may change)."""


def _apply(check, value, **kwargs):
    try:
        return check(value, **kwargs)
    except ExamRuleError as exc:
        raise serializers.ValidationError(exc.message) from None


class ExamSerializer(serializers.ModelSerializer):
    id = serializers.IntegerField(
        min_value=rules.ID_MIN,
        max_value=rules.ID_MAX,
        required=False,
        help_text="Optional on create (scenarios bring their own ids); cannot be changed afterwards.",
    )
    name = TextField(max_length=rules.NAME_MAX_LENGTH)
    start = serializers.DateTimeField(help_text=f"ISO 8601; without an offset it is taken as UTC. {_WINDOW}")
    end = serializers.DateTimeField(help_text=f"ISO 8601, after start; without an offset it is taken as UTC. {_WINDOW}")
    students = _StudentsField(min_value=rules.STUDENTS_MIN, help_text="0 to EXAM_MAX_STUDENTS (2,500 by default).")

    class Meta:
        model = Exam
        fields = ["id", "name", "start", "end", "students", "updated_at"]
        read_only_fields = ["updated_at"]

    def validate_id(self, value: int) -> int:
        if self.instance is not None and value != self.instance.pk:
            raise serializers.ValidationError("The id of an exam cannot be changed.")
        return _apply(rules.check_id, value)

    def validate_name(self, value: str) -> str:
        return _apply(rules.check_name, value)

    def validate_start(self, value):
        return _apply(rules.check_time, value, field="start")

    def validate_end(self, value):
        return _apply(rules.check_time, value, field="end")

    def validate_students(self, value: int) -> int:
        return _apply(rules.check_students, value)

    def validate(self, attrs: dict) -> dict:
        # Both times given: their order is checked here; a PATCH of one of
        # them is checked by the service against the stored other one.
        if "start" in attrs and "end" in attrs:
            try:
                rules.check_order(attrs["start"], attrs["end"])
            except ExamRuleError as exc:
                raise serializers.ValidationError({exc.field: exc.message}) from None
        return attrs

    def create(self, validated_data: dict) -> Exam:
        return exam_create(**validated_data)

    def update(self, instance: Exam, validated_data: dict) -> Exam:
        validated_data.pop("id", None)
        return exam_update(exam=instance, **validated_data)


class ExamUpdateSerializer(ExamSerializer):
    """The request shape of PUT and PATCH, for the schema only: the id is the
    one in the URL and cannot change, so it is read-only here (a body that
    names another id is a 400 naming ``id``; the views validate with
    ``ExamSerializer``)."""

    id = serializers.IntegerField(read_only=True, help_text="The exam's id (the one in the URL; cannot change).")
