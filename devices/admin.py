"""Operators' view of the device pool. Every change goes through
``devices.services`` so the admin behaves exactly like the API (a removed
device's job is requeued, workers are woken, ...). The jobs app's admin
extends these pages with the device's jobs (``jobs.admin.DeviceWithJobsAdmin``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet

from core.fields import public_id_error
from devices import selectors, services
from devices.exceptions import DeviceNotFound
from devices.models import Device

if TYPE_CHECKING:
    from devices.activity import DeviceWithActivity


class DeviceAdminForm(forms.ModelForm):
    """The API's id rules for a device added by hand (no '/', no invisible
    characters...): its id must work in `/devices/<id>` like any other."""

    class Meta:
        model = Device
        fields = "__all__"

    def clean_id(self):
        value = self.cleaned_data["id"]
        error = public_id_error(value)
        if error:
            raise forms.ValidationError(error)
        return value


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):
    form = DeviceAdminForm
    list_display = [
        "id",
        "type",
        "size",
        "shown_status",
        "current_job",
        "jobs_done",
        "address",
        "owner",
        "last_seen_at",
    ]
    list_filter = ["status", "type"]
    list_select_related = ["owner"]
    search_fields = ["id", "address", "type", "owner__username"]
    readonly_fields = [
        # The drain or quarantine reason is shown next to the status (shown_status).
        "shown_status",
        "current_job",
        "busy_streak",
        "registered_at",
        "last_seen_at",
        "runner",
        "runner_expires_at",
    ]
    # The owner is the device account that may act on the device through the
    # API (empty: staff only). Set on an existing device to hand it to a lab.
    fields = ["id", "address", "type", "size", "owner", *readonly_fields]
    raw_id_fields = ["owner"]
    actions = ["drain_devices", "resume_devices"]
    ordering = ["id"]

    def get_search_results(self, request, queryset, search_term):
        # PostgreSQL refuses NUL in a query and no stored value has one.
        return super().get_search_results(request, queryset, search_term.replace("\x00", ""))

    def get_queryset(self, request) -> QuerySet[Device]:
        return selectors.device_list()

    def get_readonly_fields(self, request, obj=None):
        # The id is the device's own: settable once, never renamed. A device
        # added here is staff-registered (no owner) like one staff register
        # through the API; the owner can be set afterwards.
        return [*self.readonly_fields, "id"] if obj else [*self.readonly_fields, "owner"]

    @admin.display(description="status", ordering="status")
    def shown_status(self, device: Device) -> str:
        # The scheduler's drain reason (e.g. it kept answering busy) next to the status.
        status = selectors.device_shown_status(device)
        return f"{status} ({device.status_reason})" if device.status_reason else status

    @admin.display(description="current job")
    def current_job(self, device: DeviceWithActivity) -> str:
        # The jobs app's admin links it to the job's page.
        return device.current_job or "-"

    @admin.display(description="jobs done", ordering="jobs_done")
    def jobs_done(self, device: DeviceWithActivity) -> int:
        return device.jobs_done

    def save_model(self, request, obj: Device, form, change):
        if change:
            services.device_update(device_id=obj.pk, address=obj.address, type=obj.type, size=obj.size, owner=obj.owner)
        else:
            services.device_register(
                device_id=obj.pk, address=obj.address, type=obj.type, size=obj.size, actor=request.user
            )

    def delete_model(self, request, obj: Device):
        try:
            services.device_remove(device_id=obj.pk)
        except DeviceNotFound:
            pass  # removed meanwhile: the goal is reached

    def delete_queryset(self, request, queryset):
        for device_id in list(queryset.values_list("pk", flat=True)):
            self.delete_model(request, Device(pk=device_id))

    @admin.action(description="Drain selected devices (finish the current job, take no more)", permissions=["change"])
    def drain_devices(self, request, queryset):
        ids = list(queryset.values_list("pk", flat=True))
        for device_id in ids:
            services.device_drain(device_id=device_id)
        self.message_user(request, f"Draining {len(ids)} device(s).", messages.SUCCESS)

    @admin.action(description="Resume selected devices (take jobs again)", permissions=["change"])
    def resume_devices(self, request, queryset):
        ids = list(queryset.values_list("pk", flat=True))
        for device_id in ids:
            services.device_resume(device_id=device_id)
        self.message_user(request, f"Resumed {len(ids)} device(s).", messages.SUCCESS)
