"""Who may change the device pool.

Anyone authenticated may look at devices. Changing the pool needs staff or the
matching Django model permission, so a QPU can be given a token for a user
holding just ``devices.add_device`` and ``devices.change_device``.
"""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission


class DevicePoolPermission(BasePermission):
    """Reads: any authenticated user. Writes: staff, or the permission the
    view names for the method in ``device_permissions`` (e.g.
    ``{"POST": "devices.add_device"}``)."""

    message = "You need staff status or the matching device permission to change the device pool."

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        if request.method in SAFE_METHODS:
            return True
        if user.is_staff:
            return True
        perm = getattr(view, "device_permissions", {}).get(request.method)
        return bool(perm) and user.has_perm(perm)
