"""Operators create, edit and delete exams here; saves go through exams.services.

Kept plain on purpose so VM columns and the plan chart can be added to
``ExamAdmin`` (``list_display``, ``readonly_fields``, ``change_form_template``).
"""

from __future__ import annotations

from django.contrib import admin
from django.utils import timezone

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


@admin.register(Exam)
class ExamAdmin(admin.ModelAdmin):
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
