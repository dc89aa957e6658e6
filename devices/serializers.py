"""Input and output shapes of the device API."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.fields import INT32_MAX, PublicIdField, TextField
from devices.clients import device_address_normalized, is_http_address
from devices.models import Device
from devices.permissions import may_manage_device
from devices.selectors import device_shown_status


@extend_schema_field({"type": "integer", "minimum": 1, "maximum": settings.DEVICE_MAX_SIZE})
class _SizeField(serializers.IntegerField):
    """1 to DEVICE_MAX_SIZE (checked at each request: the setting may change)."""


class DeviceRegisterSerializer(serializers.Serializer):
    id = PublicIdField(help_text="The device's own id, e.g. `dev-42` (a JSON number is kept as a string).")
    address = TextField(
        max_length=500,
        required=False,
        allow_blank=True,
        default="",
        help_text=(
            "`http(s)://` URL the scheduler POSTs jobs to, or a plain label without a scheme (e.g. `sim`) for the "
            "built-in simulated QPU; any other scheme or a malformed URL is a 400."
        ),
    )
    type = TextField(max_length=100, help_text="Device type jobs ask for.")
    size = _SizeField(min_value=1, max_value=INT32_MAX, help_text="Number of qubits (at most DEVICE_MAX_SIZE).")

    def validate_size(self, value: int) -> int:
        # Bounds each result bit string (and with RESULT_MAX_BITS, a result).
        if value > settings.DEVICE_MAX_SIZE:
            raise serializers.ValidationError(
                f"At most {settings.DEVICE_MAX_SIZE} qubits (DEVICE_MAX_SIZE); got {value}."
            )
        return value

    def validate_address(self, value: str) -> str:
        # Anything URL-like must be a usable http(s) URL: "ftp://x" or
        # "http:/x" silently becoming a simulated device would hide a typo.
        try:
            return device_address_normalized(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None


class DeviceSerializer(serializers.ModelSerializer):
    """A device as the API shows it to ``context["viewer"]``.

    Everyone authenticated sees what they need to choose a device type and
    follow their jobs. The address (an internal URL of a lab) is shown to
    staff and to the device account that owns the device; the running job
    (another user's) only to staff. Hidden fields are left out, not null, so
    ``current_job: null`` always means "idle". Without a viewer both are hidden.
    """

    status = serializers.SerializerMethodField(
        help_text="online, busy (online and running a job), draining or offline."
    )
    status_reason = serializers.CharField(
        read_only=True, help_text="Why the scheduler drained the device (e.g. it kept answering busy); empty otherwise."
    )
    simulated = serializers.SerializerMethodField(
        help_text="True for the built-in simulated QPU (the address is not an http(s) URL)."
    )
    # Not read-only, so the schema does not mark them as always present: they
    # are omitted for viewers who may not see them (output only, never parsed).
    address = serializers.CharField(
        required=False, help_text="Only for staff and the device's own account: the URL jobs are sent to."
    )
    current_job = serializers.CharField(
        required=False, allow_null=True, help_text="Only for staff: public id of the running job, null when idle."
    )
    jobs_done = serializers.IntegerField(read_only=True, help_text="Jobs this device completed.")

    class Meta:
        model = Device
        fields = [
            "id",
            "type",
            "size",
            "status",
            "status_reason",
            "simulated",
            "address",
            "registered_at",
            "last_seen_at",
            "current_job",
            "jobs_done",
        ]
        read_only_fields = ["id", "type", "size", "registered_at", "last_seen_at"]

    def get_status(self, device: Device) -> str:
        return device_shown_status(device)

    def get_simulated(self, device: Device) -> bool:
        return not is_http_address(device.address)

    def to_representation(self, device: Device) -> dict:
        data = super().to_representation(device)
        viewer = self.context.get("viewer")
        if viewer is None or not viewer.is_staff:
            data.pop("current_job", None)
        if not may_manage_device(viewer, device):
            data.pop("address", None)
        return data
