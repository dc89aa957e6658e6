"""Django's development server, with a word on what it does not run."""

from __future__ import annotations

from django.contrib.staticfiles.management.commands.runserver import Command as StaticRunserver

NOTE = (
    "Note: runserver serves the HTTP API and admin only. The QPU workers, the django-q2 task\n"
    "cluster (webhooks) and the VM scheduler do not run in it: start them with\n"
    "`python manage.py runworkers` in another terminal, or use `python manage.py serve`\n"
    "(everything in one program; `python3 dev.py run` does that).\n"
)


class Command(StaticRunserver):
    def inner_run(self, *args, **options):
        self.stdout.write(self.style.WARNING(NOTE))
        super().inner_run(*args, **options)
