"""``GET /metrics``: Prometheus text format.

The event metrics of ``core.metrics`` (this process, or every process of the
machine with METRICS_DIR) plus state read from the database at scrape time:
queue depth and oldest wait per device type, devices by status, VMs by state,
provider calls by endpoint and outcome (the call log is the record), and the
predicted shortfall of every exam that has not started (from the scheduler's
stored plan summary: a scrape never runs the planner). Access: staff, or
``Authorization: Bearer <METRICS_TOKEN>``.
"""

from __future__ import annotations

import hmac
import os

from django.conf import settings
from django.db.models import Count, Min
from django.http import HttpResponse
from django.utils import timezone
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from rest_framework.exceptions import AuthenticationFailed

import core.metrics  # noqa: F401  (registers the event metrics)
from core.authentication import TokenAuthentication
from devices.models import DeviceStatus
from devices.selectors import device_list
from jobs.models import Job, JobStatus
from vms.models import VM, ProviderCall
from vms.selectors import exams_predicted_shortfall


class StateCollector:
    """Gauges computed from the database on each scrape."""

    def collect(self):
        yield from self._queue()
        yield self._devices()
        yield from self._vms()

    def _queue(self):
        queued = GaugeMetricFamily("qpu_jobs_queued", "Jobs waiting for a device.", labels=["device_type"])
        oldest = GaugeMetricFamily(
            "qpu_jobs_oldest_wait_seconds", "Age of the oldest queued job.", labels=["device_type"]
        )
        now = timezone.now()
        # Reads only the partial queue index's rows (status = 'queued').
        rows = (
            Job.objects.filter(status=JobStatus.QUEUED)
            .values("device_type")
            .annotate(n=Count("id"), first=Min("created_at"))
            .order_by()
        )
        for row in rows:
            queued.add_metric([row["device_type"]], row["n"])
            oldest.add_metric([row["device_type"]], max(0.0, (now - row["first"]).total_seconds()))
        return queued, oldest

    def _devices(self):
        family = GaugeMetricFamily("qpu_devices", "Devices in the pool by shown status.", labels=["status"])
        counts = dict.fromkeys(DeviceStatus.values, 0)
        for status, current_job in device_list().values_list("status", "current_job"):
            shown = DeviceStatus.BUSY if status == DeviceStatus.ONLINE and current_job else status
            counts[shown] += 1
        for status, n in counts.items():
            family.add_metric([status], n)
        return family

    def _vms(self):
        states = GaugeMetricFamily("vm_vms", "VM records by state.", labels=["state"])
        for row in VM.objects.values("state").annotate(n=Count("id")).order_by("state"):
            states.add_metric([row["state"]], row["n"])
        yield states
        calls = CounterMetricFamily(
            "vm_provider_calls", "Provider calls on record by endpoint and outcome.", labels=["endpoint", "outcome"]
        )
        for row in ProviderCall.objects.values("endpoint", "outcome").annotate(n=Count("id")).order_by():
            calls.add_metric([row["endpoint"], row["outcome"]], row["n"])
        yield calls
        shortfall = GaugeMetricFamily(
            "vm_exam_predicted_shortfall",
            "Students the scheduler's latest plan leaves without a VM at the start, per exam not yet started.",
            labels=["exam", "name"],
        )
        age = GaugeMetricFamily(
            "vm_exam_plan_age_seconds",
            "Seconds since the scheduler last planned each exam not yet started (its summary's age).",
            labels=["exam"],
        )
        now = timezone.now()
        # The stored plan summary (vms.selectors): a scrape never runs the planner.
        for row in exams_predicted_shortfall(now=now):
            shortfall.add_metric([str(row.exam_id), row.name[:100]], row.shortfall)
            age.add_metric([str(row.exam_id)], max(0.0, (now - row.planned_at).total_seconds()))
        yield age
        yield shortfall


def _registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = CollectorRegistry()
        for collector in list(REGISTRY._collector_to_names):
            registry.register(collector)
    registry.register(StateCollector())
    return registry


def _allowed(request) -> bool:
    header = request.headers.get("Authorization", "")
    token = settings.METRICS_TOKEN
    if token and header.startswith("Bearer ") and hmac.compare_digest(header[7:].strip().encode(), token.encode()):
        return True
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.is_staff:
        return True
    if header.startswith("Token "):
        try:
            found = TokenAuthentication().authenticate(request)
        except AuthenticationFailed:
            return False
        return bool(found and found[0].is_staff)
    return False


def metrics_view(request):
    if not _allowed(request):
        return HttpResponse(
            "metrics need staff credentials or 'Authorization: Bearer <METRICS_TOKEN>'\n",
            status=401 if "Authorization" not in request.headers else 403,
            content_type="text/plain",
        )
    # The format the scraper asks for (OpenMetrics or text), as the client library's own handler does.
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encoder(_registry()), content_type=content_type)
