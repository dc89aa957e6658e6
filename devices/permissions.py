"""Who may change the device pool, and which device.

Two layers, both needed:

1. Who may change the pool at all (``DevicePoolPermission``, checked by the
   views): staff, or the Django model permission for the method. A lab's QPU
   gets a *device account* (``manage.py create_device_account``) holding just
   ``devices.add_device``, ``devices.change_device`` and
   ``devices.delete_device``.
2. Which devices (``may_manage_device``, checked by ``devices.services`` on
   the locked row, so a check and the change it allows are one transaction):
   staff may act on every device, a device account only on the devices it
   registered itself. Without this, one lab's token could re-register another
   lab's QPU with its own address and receive that QPU's jobs.

Anyone authenticated may read the pool; what a reader sees of a device is
decided by ``devices.serializers.DeviceSerializer`` with the same rule.
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


def may_manage_device(user, device) -> bool:
    """Staff, or the account that registered ``device`` (its ``owner``).

    A device registered by staff has no owner, so only staff manage it. This
    is also who may see the device's address.
    """
    if user is None or not user.is_authenticated:
        return False
    if user.is_staff:
        return True
    return device.owner_id is not None and device.owner_id == user.pk
