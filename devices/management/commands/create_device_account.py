"""Create (or reuse) the device account of a lab's QPU and print its token."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from devices.accounts import DEVICE_PERMISSIONS, device_account_ensure
from devices.exceptions import DomainError


class Command(BaseCommand):
    help = (
        "Create the device account NAME (exactly the device permissions, no staff flag, no password) or reuse "
        "it, and print its API token. The device may then register new ids and manage only those."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", help="Account name, e.g. the lab or QPU: qpu-7")
        parser.add_argument("--rotate", action="store_true", help="Issue a new token; the old one stops working.")

    def handle(self, *args, name: str, rotate: bool, verbosity: int, **options):
        try:
            account = device_account_ensure(name=name, rotate_token=rotate)
        except DomainError as exc:
            raise CommandError(exc.message) from None
        if verbosity == 0:  # -v 0: just the token, for scripts
            self.stdout.write(account.token)
            return
        state = "created" if account.created else "exists"
        perms = ", ".join(f"devices.{p}" for p in DEVICE_PERMISSIONS)
        self.stdout.write(f"Device account {name!r} {state} ({perms}; not staff, no password).")
        if not account.user.is_active:
            self.stderr.write(f"Account {name!r} is inactive: its token is refused until an operator activates it.")
        self.stdout.write(f"Token ({'new' if account.rotated else 'current'}): {account.token}")
        self.stdout.write(
            f"Use it as 'Authorization: Token {account.token}'; the device manages only the ids it registers."
        )
