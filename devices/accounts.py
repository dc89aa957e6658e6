"""Device accounts: the credentials a lab gives its QPU.

A device account is an ordinary user with exactly the three device model
permissions, no staff flag, no groups and no password (it cannot log in to
the admin or the browsable API; it only uses its API token). With those
permissions it passes ``DevicePoolPermission``; ``devices.services`` then
lets it act only on the devices it registered itself, so a token leaked by
one lab cannot take over another lab's QPU.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Permission
from django.core.exceptions import ValidationError
from django.db import transaction
from rest_framework.authtoken.models import Token

from core.exceptions import DomainError

DEVICE_PERMISSIONS = ("add_device", "change_device", "delete_device")


@dataclass(frozen=True)
class DeviceAccount:
    user: AbstractUser
    token: str
    created: bool
    rotated: bool


def _device_permissions() -> list[Permission]:
    return list(Permission.objects.filter(content_type__app_label="devices", codename__in=DEVICE_PERMISSIONS))


def _check_name(name: str) -> None:
    field = get_user_model()._meta.get_field("username")
    try:
        field.run_validators(name)
    except ValidationError as exc:
        raise DomainError(" ".join(exc.messages), field="name") from None
    if not name or (field.max_length is not None and len(name) > field.max_length):
        raise DomainError(f"A name of 1 to {field.max_length} characters is needed.", field="name")


def device_account_ensure(*, name: str, rotate_token: bool = False) -> DeviceAccount:
    """Create the device account ``name``, or repair and reuse it.

    Reusing resets its permissions to exactly the device ones (and clears
    its groups), so running the command again is the way to fix an account.
    A staff account or one with a password is a person's, never turned into
    a device account. ``rotate_token`` replaces the token: the old one stops
    working at once.
    """
    _check_name(name)
    User = get_user_model()
    with transaction.atomic():
        user = User.objects.select_for_update().filter(username=name).first()
        created = user is None
        if user is None:
            user = User(username=name)
            user.set_unusable_password()
            user.save()
        elif user.is_staff or user.is_superuser or user.has_usable_password():
            raise DomainError(
                f"User {name!r} exists and is a person's account (staff or with a password); "
                "choose another name for the device account.",
                field="name",
            )
        user.groups.clear()
        user.user_permissions.set(_device_permissions())
        if rotate_token:
            Token.objects.filter(user=user).delete()
        token, _ = Token.objects.get_or_create(user=user)
    return DeviceAccount(user=user, token=token.key, created=created, rotated=rotate_token)
