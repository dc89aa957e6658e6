from rest_framework import status

from core.exceptions import Conflict, DomainError, NotFound

__all__ = ["DomainError", "NotFound", "Conflict", "DeviceNotFound", "DeviceNotYours"]


class DeviceNotFound(NotFound):
    def __init__(self, device_id: str):
        super().__init__(f"No device with id {device_id!r}.")
        self.device_id = device_id


class DeviceNotYours(DomainError):
    """A device account tried to act on a device another account (or staff)
    registered: its credentials must not let it take over another QPU."""

    status_code = status.HTTP_403_FORBIDDEN

    def __init__(self, device_id: str):
        super().__init__(
            f"Device {device_id!r} was registered by another account: only that device account "
            "or staff may register it again, heartbeat, drain, resume or remove it."
        )
        self.device_id = device_id
