from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from core import metrics
from tests.factories import make_device, make_job, make_program

pytestmark = pytest.mark.django_db


def scrape(client, **headers) -> dict[tuple, float]:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def test_metrics_need_staff_or_the_token(client, api, settings):
    settings.METRICS_TOKEN = "s3cret-scrape"
    assert client.get("/metrics").status_code == 401
    assert api.get("/metrics").status_code == 403  # an ordinary user's token
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-scrape").status_code == 200


def test_without_a_configured_token_no_bearer_gets_in(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 403


def test_staff_token_reads_queue_devices_and_vm_state(staff_api, user):
    program = make_program(user, device_type="analog")
    old = make_job(program)
    make_job(program)
    make_job(make_program(user, device_type="gate"))
    type(old).objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(seconds=120))
    busy = make_device("d-busy", type="analog")
    make_job(program, status="running", device=busy)
    make_device("d-idle", type="analog")
    make_device("d-off", type="gate", status="offline")
    samples = scrape(staff_api)
    assert samples[("qpu_jobs_queued", (("device_type", "analog"),))] == 2
    assert samples[("qpu_jobs_queued", (("device_type", "gate"),))] == 1
    assert 119 <= samples[("qpu_jobs_oldest_wait_seconds", (("device_type", "analog"),))] < 3600
    assert samples[("qpu_devices", (("status", "busy"),))] == 1
    assert samples[("qpu_devices", (("status", "online"),))] == 1
    assert samples[("qpu_devices", (("status", "offline"),))] == 1
    assert samples[("qpu_devices", (("status", "draining"),))] == 0


def test_event_metrics_appear_after_they_happen(staff_api):
    before = scrape(staff_api).get(("qpu_jobs_finished_total", (("device_type", "metrics-t"), ("status", "done"))), 0)
    metrics.job_finished(device_type="metrics-t", status="done", waited_s=0.2, ran_s=3.0)
    metrics.webhook_delivery(outcome="delivered")
    samples = scrape(staff_api)
    assert samples[("qpu_jobs_finished_total", (("device_type", "metrics-t"), ("status", "done")))] == before + 1
    assert samples[("qpu_job_run_seconds_bucket", (("device_type", "metrics-t"), ("le", "5.0")))] >= 1
    assert samples[("qpu_job_claim_to_start_seconds_count", (("device_type", "metrics-t"),))] >= 1
    assert samples[("qpu_webhook_deliveries_total", (("outcome", "delivered"),))] >= 1


def test_vm_state_calls_and_predicted_shortfall(staff_api):
    from exams.models import Exam
    from vms.models import VM, ProviderCall

    now = timezone.now()
    # Too close to its start for 50 VMs at 10 per minute: a shortfall is predicted.
    exam = Exam.objects.create(
        name="Soon", start=now + timedelta(seconds=60), end=now + timedelta(hours=1), students=50
    )
    vm = VM.objects.create(state="ready", requested_at=now, ready_at=now, exam=exam, exam_ref=exam.id, uuid="u-1")
    ProviderCall.objects.create(t=now, endpoint="start", vm=vm, vm_uuid="u-1", exam_ref=exam.id, outcome="ok")
    ProviderCall.objects.create(t=now, endpoint="stop", outcome="rate_limited")
    samples = scrape(staff_api)
    assert samples[("vm_vms", (("state", "ready"),))] == 1
    assert samples[("vm_provider_calls_total", (("endpoint", "start"), ("outcome", "ok")))] == 1
    assert samples[("vm_provider_calls_total", (("endpoint", "stop"), ("outcome", "rate_limited")))] == 1
    shortfall = samples[("vm_exam_predicted_shortfall", (("exam", str(exam.id)), ("name", "Soon")))]
    assert 0 < shortfall < 50


def test_processes_sharing_metrics_dir_are_summed(staff_api, tmp_path, monkeypatch):
    """A child process (like a django-q2 worker delivering webhooks) records an
    event; the web process's /metrics includes it through METRICS_DIR."""
    import os
    import subprocess
    import sys

    from django.conf import settings

    env = {**os.environ, "METRICS_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "config.settings"}
    code = (
        "import django; django.setup();"
        "from core import metrics; metrics.webhook_delivery(outcome='gave_up'); metrics.webhook_delivery(outcome='gave_up')"
    )
    subprocess.run([sys.executable, "-c", code], env=env, cwd=settings.BASE_DIR, check=True, timeout=60)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    samples = scrape(staff_api)
    assert samples[("qpu_webhook_deliveries_total", (("outcome", "gave_up"),))] == 2
    assert ("qpu_jobs_queued", (("device_type", "x"),)) not in samples  # state still read, none queued


def test_serve_starts_from_an_empty_metrics_dir(tmp_path, monkeypatch):
    from core.metrics import clear_metrics_dir

    (tmp_path / "counter_123.db").write_bytes(b"old")
    (tmp_path / "keep.txt").write_text("not ours")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    assert clear_metrics_dir() == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
    assert clear_metrics_dir() == 0
