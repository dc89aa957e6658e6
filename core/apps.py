from django.apps import AppConfig
from django.db.backends.signals import connection_created


class CoreConfig(AppConfig):
    """Shared pieces every app may use (and that use no app): heartbeats of
    the background roles, health checks, request logging, prepared SQL."""

    name = "core"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from core import prepared

        connection_created.connect(prepared.use_generic_plans, dispatch_uid="core.prepared.use_generic_plans")
