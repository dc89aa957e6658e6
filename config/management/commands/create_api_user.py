"""Create an API user (or reuse one) and print its token: the quickest way
for a new API user to get going without the admin."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from rest_framework.authtoken.models import Token


class Command(BaseCommand):
    help = "Create an API user (token only: no password, so no admin login) and print its API token."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--staff", action="store_true", help="Operator rights (all jobs, devices, exams).")
        parser.add_argument("--rotate", action="store_true", help="Replace the user's token with a new one.")

    def handle(self, *args, username: str, staff: bool, rotate: bool, **options):
        User = get_user_model()
        username = username.strip()
        if not username or len(username) > 150:
            raise CommandError("username: 1 to 150 characters")
        user, created = User.objects.get_or_create(username=username)
        if created:
            user.set_unusable_password()
        if staff and not user.is_staff:
            user.is_staff = True
        user.save()
        if rotate:
            Token.objects.filter(user=user).delete()
        token, _ = Token.objects.get_or_create(user=user)
        role = "staff" if user.is_staff else "user"
        self.stdout.write(f"{'Created' if created else 'Existing'} {role} {username!r}")
        self.stdout.write(token.key)
        self.stderr.write(f"Send it as the header 'Authorization: Token {token.key}'")
