"""Query-string filters and ordering of `GET /jobs` and `GET /programs` (django-filter).

``status`` takes one status or a comma-separated list (``queued,running``);
an unknown status is a 400 naming ``status`` rather than an empty page.
``program`` is a program's public id, ``device_type`` a device type.
For programs, ``status=S`` keeps the programs having at least one job in S.

``ordering`` is one of ``created``, ``priority``, ``status`` (``-`` for
descending). The id always breaks ties (ascending, except for ``-created``),
so every ordering is total: the jobs' cursor pages rely on it, and
``-priority`` over one device type's queued jobs is exactly the claim order.
``created`` is submission order (the id), which the primary key indexes.
"""

from __future__ import annotations

import django_filters
from django import forms
from django.db.models import Exists, OuterRef, QuerySet

from core.pagination import single_value
from jobs.models import Job, JobStatus, Program

ORDERING_FIELDS = {"created": "id", "priority": "priority", "status": "status"}
ORDERING_CHOICES = [(name, name) for field in ORDERING_FIELDS for name in (field, f"-{field}")]
# A program has no status of its own.
PROGRAM_ORDERING_CHOICES = [(name, label) for name, label in ORDERING_CHOICES if "status" not in name]
DEFAULT_JOB_ORDERING = "created"
DEFAULT_PROGRAM_ORDERING = "-created"


def order_by_for(ordering: str) -> tuple[str, str]:
    """(column with its direction, tie-breaking id with its direction)."""
    descending = ordering.startswith("-")
    column = ORDERING_FIELDS[ordering.lstrip("-")]
    if column == "id":
        return ("-id", "-id") if descending else ("id", "id")
    return (f"-{column}" if descending else column, "id")


class StatusListField(forms.CharField):
    """``queued,running``: every item must be a job status."""

    def clean(self, value):
        value = super().clean(value)
        statuses = [s.strip() for s in (value or "").split(",") if s.strip()]
        unknown = [s for s in statuses if s not in JobStatus.values]
        if unknown:
            raise forms.ValidationError(f"Unknown status {unknown[0]!r}; use one of {', '.join(JobStatus.values)}.")
        return statuses


class StatusListFilter(django_filters.Filter):
    field_class = StatusListField


class _OrderedFilterSet(django_filters.FilterSet):
    """Text filters refuse NUL (Django's form fields do: PostgreSQL cannot
    compare one) and every ordering ends on the id."""

    default_ordering = DEFAULT_JOB_ORDERING

    device_type = django_filters.CharFilter(field_name="device_type", max_length=100)
    ordering = django_filters.ChoiceFilter(choices=ORDERING_CHOICES, method="order", empty_label=None)

    def order(self, queryset, name, value):
        return queryset  # applied last, in filter_queryset

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        return queryset.order_by(*order_by_for(self.ordering_used))

    @property
    def ordering_used(self) -> str:
        return self.form.cleaned_data.get("ordering") or self.default_ordering


class JobFilterSet(_OrderedFilterSet):
    status = StatusListFilter(method="filter_status")
    program = django_filters.CharFilter(field_name="program__key", max_length=100)

    class Meta:
        model = Job
        fields = ["status", "program", "device_type", "ordering"]

    def filter_status(self, queryset, name, value):
        return queryset.filter(status__in=value) if value else queryset


class ProgramFilterSet(_OrderedFilterSet):
    default_ordering = DEFAULT_PROGRAM_ORDERING
    ordering = django_filters.ChoiceFilter(choices=PROGRAM_ORDERING_CHOICES, method="order", empty_label=None)
    status = StatusListFilter(method="filter_status")
    program = django_filters.CharFilter(field_name="key", max_length=100)

    class Meta:
        model = Program
        fields = ["status", "program", "device_type", "ordering"]

    def filter_status(self, queryset, name, value):
        if not value:
            return queryset
        return queryset.filter(Exists(Job.objects.filter(program_id=OuterRef("pk"), status__in=value)))


def _filtered(filterset_class, qs: QuerySet, params) -> django_filters.FilterSet:
    from rest_framework.exceptions import ValidationError

    for name in filterset_class.base_filters:
        single_value(params, name)
    filterset = filterset_class(data=params, queryset=qs)
    if not filterset.is_valid():
        raise ValidationError(filterset.errors)
    return filterset


def filter_jobs(qs: QuerySet[Job], params) -> tuple[QuerySet[Job], str]:
    """The jobs the query string asks for, ordered; and the ordering used."""
    filterset = _filtered(JobFilterSet, qs, params)
    return filterset.qs, filterset.ordering_used


def filter_programs(qs: QuerySet[Program], params) -> QuerySet[Program]:
    return _filtered(ProgramFilterSet, qs, params).qs
