from django.apps import AppConfig


class CoreConfig(AppConfig):
    """Shared pieces every app may use (and that use no app): heartbeats of
    the background roles, health checks, request logging."""

    name = "core"
    default_auto_field = "django.db.models.BigAutoField"
