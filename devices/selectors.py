"""Reads on the device pool, with what the API shows next to each device."""

from __future__ import annotations

from django.db.models import QuerySet

from devices.activity import with_activity
from devices.exceptions import DeviceNotFound, DomainError
from devices.models import Device, DeviceStatus


def device_list(*, type: str | None = None, status: str | None = None) -> QuerySet[Device]:
    """Devices annotated with ``current_job`` (public job id or None) and
    ``jobs_done`` (``devices.activity``: provided by the jobs app).

    ``status`` filters on the status as shown: ``busy`` is an online device
    with a running job, ``online`` an idle online one.
    """
    qs = with_activity(Device.objects.all())
    if type is not None:
        if "\x00" in type:
            raise DomainError("Null characters are not allowed.", field="type")
        qs = qs.filter(type=type)
    if status is not None:
        if status not in DeviceStatus.values:
            raise DomainError(f"Unknown status {status!r}; one of {', '.join(DeviceStatus.values)}.", field="status")
        if status == DeviceStatus.BUSY:
            qs = qs.filter(status=DeviceStatus.ONLINE, current_job__isnull=False)
        elif status == DeviceStatus.ONLINE:
            qs = qs.filter(status=DeviceStatus.ONLINE, current_job__isnull=True)
        else:
            qs = qs.filter(status=status)
    return qs


def device_get(*, device_id: str) -> Device:
    # A NUL cannot be in any stored id (and PostgreSQL refuses it in a query).
    device = None if "\x00" in device_id else device_list().filter(pk=device_id).first()
    if device is None:
        raise DeviceNotFound(device_id)
    return device


def device_shown_status(device: Device) -> str:
    """The status users see: ``busy`` is an online device running a job."""
    current = getattr(device, "current_job", None)
    if device.status == DeviceStatus.ONLINE and current:
        return DeviceStatus.BUSY
    return device.status
