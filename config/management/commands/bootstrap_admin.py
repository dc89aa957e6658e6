"""Create the first operator account (idempotent) and print how to log in."""

from __future__ import annotations

import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from rest_framework.authtoken.models import Token

CREDENTIALS_FILE = Path(settings.BASE_DIR) / ".admin-credentials"


class Command(BaseCommand):
    help = "Create the 'admin' superuser and its API token if missing; print the credentials."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")

    def handle(self, *args, username: str, **options):
        User = get_user_model()
        user = User.objects.filter(username=username).first()
        if user is None:
            password = secrets.token_urlsafe(12)
            user = User.objects.create_superuser(username=username, email="", password=password)
            CREDENTIALS_FILE.write_text(f"{username}\n{password}\n")
            CREDENTIALS_FILE.chmod(0o600)
        token, _ = Token.objects.get_or_create(user=user)
        password = "(unchanged; see `manage.py changepassword`)"
        if CREDENTIALS_FILE.exists():
            lines = CREDENTIALS_FILE.read_text().split()
            if len(lines) == 2 and lines[0] == username:
                password = lines[1]
        self.stdout.write(f"Admin login: {username} / {password}")
        self.stdout.write(f"API token:   {token.key}  (header 'Authorization: Token {token.key}')")
