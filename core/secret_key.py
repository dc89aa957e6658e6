"""SECRET_KEY: from the environment only, never a default in the repository.

Django signs sessions, CSRF tokens and password-reset links with it; a key
anyone can read in the source lets anyone forge them. Without ``SECRET_KEY``
every process draws a random key of its own, which is fine for tests and
one-off commands (``migrate``, ``createsuperuser``) but not for a running
service (sessions would not survive a restart and the processes of one
deployment would disagree), so the long-running commands call
``require_configured_secret_key`` and refuse to start unless ``DEBUG=1``.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping

MISSING_MESSAGE = (
    "SECRET_KEY is not set: set SECRET_KEY to a long random value (e.g. the output of "
    "`python3 -c 'import secrets; print(secrets.token_urlsafe(50))'`), or DEBUG=1 for local development "
    "(python3 dev.py run does this for you)."
)


def secret_key_from_env(environ: Mapping[str, str]) -> tuple[str, bool]:
    """``(key, configured)``: the environment's key, or a random one and False."""
    value = environ.get("SECRET_KEY", "").strip()
    if value:
        return value, True
    return secrets.token_urlsafe(50), False


def require_configured_secret_key(*, stderr=None) -> None:
    """Refuse (CommandError, one line) to run a service without a configured
    key unless DEBUG is on; with DEBUG, say on ``stderr`` that the key is
    per-process."""
    from django.conf import settings
    from django.core.management.base import CommandError

    if getattr(settings, "SECRET_KEY_CONFIGURED", False):
        return
    if not settings.DEBUG:
        raise CommandError(MISSING_MESSAGE)
    if stderr is not None:
        stderr.write("DEBUG=1 and no SECRET_KEY: using a random key for this process (sessions end at restart).")


def secret_key_check(app_configs=None, **kwargs) -> list:
    """``check --deploy``: Django's own key checks pass a random key, so say
    when it is one (a deployment without SECRET_KEY)."""
    from django.conf import settings
    from django.core.checks import Warning

    if getattr(settings, "SECRET_KEY_CONFIGURED", False):
        return []
    return [Warning(MISSING_MESSAGE, hint="Every process now signs with a key of its own.", id="config.W001")]
