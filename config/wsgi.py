"""The WSGI application: Django, behind the API's fast lane
(``core.fastlane``; ``API_FAST_LANE=false`` sends everything to Django)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

django_application = get_wsgi_application()

from core.fastlane import FastLane  # noqa: E402 - needs the settings loaded above
from jobs import fastlane as jobs_fastlane  # noqa: E402

application = FastLane(django_application, routes=jobs_fastlane.ROUTES)
