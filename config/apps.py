from django.apps import AppConfig


class ConfigConfig(AppConfig):
    """The project package as an app: its commands, templates and checks."""

    name = "config"
    verbose_name = "Service configuration"

    def ready(self) -> None:
        from django.core import checks

        from config.admin_lookups import harden_registered_admins
        from core.secret_key import secret_key_check

        checks.register(secret_key_check, checks.Tags.security, deploy=True)
        # Runs after the admin's autodiscovery (django.contrib.admin is listed
        # first), so every app's admin is registered by now.
        harden_registered_admins()
