"""Operators' view of programs and jobs.

The job list opens with the queue per device type (depth, oldest wait,
running jobs, devices online). Programs and jobs are view-only here (no Save,
no Delete): state changes go through the same services as the API (cancel,
requeue failed) as admin actions, never through a form that could bypass the
queue rules. Their pages are addressed by public id (jobs.admin_public_id).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

from django.contrib import admin, messages
from django.contrib.admin.utils import quote
from django.db.models import Count, IntegerField, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from devices.admin import DeviceAdmin
from devices.models import Device
from jobs import selectors, services
from jobs.admin_public_id import PublicIdAdminMixin, admin_time, jobs_table, public_id_url
from jobs.models import Job, JobStatus, Program

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

    from devices.activity import DeviceWithActivity

# Jobs listed on a program's page (newest first); the job list has them all.
PROGRAM_PAGE_JOBS = 20


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    value = int(value)
    hours, rest = divmod(value, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m {seconds:02d}s" if hours else f"{minutes}m {seconds:02d}s"


class ViewOnlyAdmin(PublicIdAdminMixin, admin.ModelAdmin):
    """Records that change only through the services: staff with the view or
    change permission see them (no Save, no Delete); the actions need the
    model's change permission (``operate``)."""

    def has_add_permission(self, request) -> bool:
        return False  # programs and jobs come in through the API

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_operate_permission(self, request) -> bool:
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")


class _JobCount(TypedDict):
    """What ProgramAdmin's queryset adds to each program."""

    n_jobs: int


@admin.register(Program)
class ProgramAdmin(ViewOnlyAdmin):
    list_display = ["key", "owner", "client_user_id", "priority", "device_type", "job_count", "created_at"]
    list_filter = ["device_type", "priority"]
    search_fields = ["key", "client_user_id", "owner__username"]
    list_select_related = ["owner"]
    readonly_fields = [
        "key",
        "owner",
        "client_user_id",
        "priority",
        "device_type",
        "callback_url",
        "created_at",
        "job_counts",
        "latest_jobs",
    ]
    # The signing key is shown to its owner once; the owner rotates it through the API.
    exclude = ["webhook_secret"]
    actions = ["cancel_programs"]
    show_full_result_count = False

    def get_search_results(self, request, queryset, search_term):
        # PostgreSQL refuses NUL in a query and no stored value has one.
        return super().get_search_results(request, queryset, search_term.replace("\x00", ""))

    def get_queryset(self, request):
        # A correlated count is computed only for the rows of the page shown,
        # where a JOIN + GROUP BY would aggregate the whole jobs table first.
        n_jobs = (
            Job.objects.filter(program_id=OuterRef("pk"))
            .order_by()
            .values("program_id")
            .annotate(n=Count("pk"))
            .values("n")
        )
        return super().get_queryset(request).annotate(n_jobs=Coalesce(Subquery(n_jobs, output_field=IntegerField()), 0))

    @admin.display(description="jobs", ordering="n_jobs")
    def job_count(self, program: WithAnnotations[Program, _JobCount]) -> int:
        return program.n_jobs

    @admin.display(description="jobs per status")
    def job_counts(self, program: Program) -> str:
        counts = selectors.program_job_counts([program.pk])[program.pk]
        return ", ".join(f"{status}: {n}" for status, n in counts.items())

    @admin.display(description=f"latest jobs (up to {PROGRAM_PAGE_JOBS})")
    def latest_jobs(self, program: Program) -> str:
        return jobs_table(list(program.jobs.order_by("-id")[:PROGRAM_PAGE_JOBS]))

    @admin.action(description="Cancel the queued jobs of the selected programs", permissions=["operate"])
    def cancel_programs(self, request, queryset):
        cancelled = sum(services.program_cancel(program_id=pk) for pk in queryset.values_list("pk", flat=True))
        self.message_user(request, f"Cancelled {cancelled} queued job(s).", messages.SUCCESS)


@admin.register(Job)
class JobAdmin(ViewOnlyAdmin):
    list_display = [
        "key",
        "program",
        "status",
        "priority",
        "device_type",
        "device_id",
        "attempts",
        "created_at",
        "started_at",
        "finished_at",
        "callback_status",
    ]
    list_filter = ["status", "device_type", "callback_status"]
    search_fields = ["key", "program__key", "device__id", "owner__username"]
    list_select_related = ["program"]
    readonly_fields = [
        "key",
        "program_link",
        "owner",
        "priority",
        "device_type",
        "instructions",
        "shots",
        "min_size",
        "status",
        "queue_position",
        "estimated_start",
        "device_link",
        "attempts",
        "requeues",
        "created_at",
        "started_at",
        "finished_at",
        "result",
        "error",
        "lease_token",
        "lease_expires_at",
        "callback_status",
        "callback_attempts",
        "callback_error",
        "callback_delivered_at",
    ]
    fields = [*readonly_fields]
    actions = ["cancel_jobs", "requeue_failed_jobs"]
    # Counting a million-row table for the "x of y selected" line is slow and useless.
    show_full_result_count = False
    change_list_template = "admin/jobs/job/change_list.html"

    def get_search_results(self, request, queryset, search_term):
        # PostgreSQL refuses NUL in a query and no stored value has one.
        return super().get_search_results(request, queryset, search_term.replace("\x00", ""))

    def changelist_view(self, request, extra_context=None):
        rows = selectors.queue_summary()
        for row in rows:
            row["oldest_wait"] = _seconds(row["oldest_wait_seconds"])
        extra_context = {**(extra_context or {}), "queue_summary": rows}
        return super().changelist_view(request, extra_context=extra_context)

    @admin.display(description="program")
    def program_link(self, job: Job) -> str:
        return format_html('<a href="{}">{}</a>', public_id_url(job.program), job.program.key)

    @admin.display(description="device")
    def device_link(self, job: Job) -> str:
        # A job keeps the id of a device removed since: then there is no page.
        if job.device_id is None:
            return "-"
        if not Device.objects.filter(pk=job.device_id).exists():
            return f"{job.device_id} (removed)"
        url = reverse("admin:devices_device_change", args=(quote(job.device_id),))
        return format_html('<a href="{}">{}</a>', url, job.device_id)

    @admin.display(description="queue position")
    def queue_position(self, job: Job) -> str:
        position = selectors.job_queue_position(job)
        return f"{position} (among queued {job.device_type} jobs)" if position else "- (not queued)"

    @admin.display(description="estimated start")
    def estimated_start(self, job: Job) -> str:
        if job.status != JobStatus.QUEUED:
            return "-"
        # The same estimate the API gives (jobs.estimates), with its reason when there is none.
        info = selectors.job_queue_info(job)
        if info.estimated_start is None:
            return f"unknown ({info.estimate_reason})" if info.estimate_reason else "unknown"
        wait = max(0.0, (info.estimated_start - timezone.now()).total_seconds())
        return f"{admin_time(info.estimated_start)} (in about {_seconds(wait)})"

    @admin.action(description="Cancel selected jobs (queued ones only)", permissions=["operate"])
    def cancel_jobs(self, request, queryset):
        ids = list(queryset.values_list("pk", flat=True))
        cancelled = services.jobs_cancel(job_ids=ids)
        level = messages.SUCCESS if cancelled == len(ids) else messages.WARNING
        self.message_user(
            request, f"Cancelled {cancelled} of {len(ids)} job(s); only queued jobs can be cancelled.", level
        )

    @admin.action(description="Requeue selected failed jobs (fresh attempts, original place)", permissions=["operate"])
    def requeue_failed_jobs(self, request, queryset):
        ids = list(queryset.values_list("pk", flat=True))
        requeued = services.jobs_requeue_failed(job_ids=ids)
        level = messages.SUCCESS if requeued == len(ids) else messages.WARNING
        self.message_user(request, f"Requeued {requeued} of {len(ids)} job(s); only failed jobs are requeued.", level)


# Jobs listed on a device's page (newest first).
DEVICE_PAGE_JOBS = 20


class DeviceWithJobsAdmin(DeviceAdmin):
    """The devices app's pages plus the work on each device: the current job
    linked to its page and the latest jobs. Registered in place of
    ``DeviceAdmin`` here because jobs knows devices, never the reverse."""

    readonly_fields = [
        *DeviceAdmin.readonly_fields[:2],
        "recent_jobs",
        *DeviceAdmin.readonly_fields[2:],
    ]
    fields = ["id", "address", "type", "size", "owner", *readonly_fields]

    @admin.display(description="current job")
    def current_job(self, device: DeviceWithActivity) -> str:
        # The job's page is addressed by its public id (jobs.admin_public_id).
        if not device.current_job:
            return "-"
        url = reverse("admin:jobs_job_change", args=(quote(device.current_job),))
        return format_html('<a href="{}">{}</a>', url, device.current_job)

    @admin.display(description=f"recent jobs (up to {DEVICE_PAGE_JOBS})")
    def recent_jobs(self, device: Device) -> str:
        return jobs_table(selectors.jobs_recent_on_device(device_id=device.pk, limit=DEVICE_PAGE_JOBS))


admin.site.unregister(Device)
admin.site.register(Device, DeviceWithJobsAdmin)
