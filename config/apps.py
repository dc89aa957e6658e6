from django.apps import AppConfig


class ConfigConfig(AppConfig):
    """The project package as an app: its commands, templates and checks."""

    name = "config"

    def ready(self) -> None:
        from django.core import checks

        from config.secret_key import secret_key_check

        checks.register(secret_key_check, checks.Tags.security, deploy=True)
