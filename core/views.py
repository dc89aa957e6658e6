"""Health endpoints: plain Django views (no DRF, no session, no auth) so a
probe costs as little as possible and works while auth is broken."""

from __future__ import annotations

from django.http import JsonResponse
from django.views.decorators.http import require_GET

from core import health


@require_GET
def healthz(request):
    return JsonResponse({"status": "alive"})


@require_GET
def readyz(request):
    checks = health.readiness()
    body = health.as_json(checks)
    return JsonResponse(body, status=200 if body["status"] == "ready" else 503)
