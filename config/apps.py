from django.apps import AppConfig


class ConfigConfig(AppConfig):
    name = "config"
    verbose_name = "Service configuration"

    def ready(self) -> None:
        # Runs after the admin's autodiscovery (django.contrib.admin is listed
        # first), so every app's admin is registered by now.
        from config.admin_lookups import harden_registered_admins

        harden_registered_admins()
