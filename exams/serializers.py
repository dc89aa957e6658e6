"""Input and output shapes of the exam API."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.fields import TextField
from exams.models import Exam
from exams.services import INT32_MAX, exam_create, exam_update


@extend_schema_field({"type": "integer", "minimum": 0, "maximum": settings.EXAM_MAX_STUDENTS})
class _StudentsField(serializers.IntegerField):
    """0 to EXAM_MAX_STUDENTS (checked at each request: the setting may change)."""


class ExamSerializer(serializers.ModelSerializer):
    id = serializers.IntegerField(
        min_value=1,
        max_value=INT32_MAX,
        required=False,
        help_text="Optional on create (scenarios bring their own ids); cannot be changed afterwards.",
    )
    name = TextField(max_length=200)
    start = serializers.DateTimeField(
        help_text="ISO 8601; without an offset it is taken as UTC. Years 2000 to 2100 (UTC)."
    )
    end = serializers.DateTimeField(
        help_text="ISO 8601, after start; without an offset it is taken as UTC. Years 2000 to 2100 (UTC)."
    )
    students = _StudentsField(min_value=0, help_text="0 to EXAM_MAX_STUDENTS (2,500 by default).")

    class Meta:
        model = Exam
        fields = ["id", "name", "start", "end", "students", "updated_at"]
        read_only_fields = ["updated_at"]

    def validate_id(self, value: int) -> int:
        if self.instance is not None and value != self.instance.pk:
            raise serializers.ValidationError("The id of an exam cannot be changed.")
        return value

    def validate_students(self, value: int) -> int:
        limit = settings.EXAM_MAX_STUDENTS
        if value > limit:
            raise serializers.ValidationError(f"Ensure this value is less than or equal to {limit} (EXAM_MAX_STUDENTS).")
        return value

    def create(self, validated_data: dict) -> Exam:
        return exam_create(**validated_data)

    def update(self, instance: Exam, validated_data: dict) -> Exam:
        validated_data.pop("id", None)
        return exam_update(exam=instance, **validated_data)
