from config.exceptions import Conflict, DomainError, NotFound

__all__ = ["DomainError", "NotFound", "Conflict", "DeviceNotFound"]


class DeviceNotFound(NotFound):
    def __init__(self, device_id: str):
        super().__init__(f"No device with id {device_id!r}.")
        self.device_id = device_id
