"""Operators create, edit and delete exams here; saves go through exams.services.

Kept plain on purpose so VM columns and the plan chart can be added to
``ExamAdmin`` (``list_display``, ``readonly_fields``, ``change_form_template``).
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.utils import timezone

from exams import rules
from exams.models import Exam
from exams.services import EDITABLE_FIELDS, exam_create, exam_delete, exam_update


class ExamTimingFilter(admin.SimpleListFilter):
    title = "timing"
    parameter_name = "timing"

    def lookups(self, request, model_admin):
        return [("upcoming", "Upcoming"), ("running", "Running"), ("past", "Past")]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "upcoming":
            return queryset.filter(start__gt=now)
        if self.value() == "running":
            return queryset.filter(start__lte=now, end__gt=now)
        if self.value() == "past":
            return queryset.filter(end__lte=now)
        return queryset


class ExamAdminForm(forms.ModelForm):
    """The exam form speaks the exam rules' words (exams.rules): the form
    fields only read the boxes; the values are ruled by ``Exam.clean_fields``
    (through the form's ``full_clean``), so the admin names the same field
    with the same message as the API and the scenario parser."""

    class Meta:
        model = Exam
        fields = ["name", "start", "end", "students"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        name, students = self.fields.get("name"), self.fields.get("students")
        if name is not None:
            name.error_messages["required"] = rules.NAME_BLANK
            name.validators = []  # the length rule is exams.rules', not the form's wording
        if students is not None:
            students.error_messages["invalid"] = rules.NOT_AN_INTEGER
            students.validators = []  # 0..EXAM_MAX_STUDENTS: exams.rules


@admin.register(Exam)
class ExamAdmin(admin.ModelAdmin):
    form = ExamAdminForm
    list_display = ["id", "name", "start", "end", "students"]
    list_display_links = ["id", "name"]
    list_filter = [ExamTimingFilter, "start"]
    date_hierarchy = "start"
    search_fields = ["name"]
    ordering = ["start", "id"]
    fields = ["name", "start", "end", "students", "updated_at"]
    readonly_fields = ["updated_at"]

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name in ("start", "end"):
            # The service runs in UTC and every time in the admin is UTC: say so where times are typed.
            field.help_text = "UTC; time with seconds, e.g. 09:00:00."
        return field

    def save_model(self, request, obj, form, change):
        values = {field: getattr(obj, field) for field in EDITABLE_FIELDS}
        saved = exam_update(exam=obj, **values) if change else exam_create(**values)
        # the admin goes on with `obj` (messages, redirect, log entry)
        obj.pk, obj.updated_at = saved.pk, saved.updated_at

    def delete_model(self, request, obj):
        exam_delete(exam=obj)

    def delete_queryset(self, request, queryset):
        for exam in queryset:
            exam_delete(exam=exam)
