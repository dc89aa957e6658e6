from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from core import heartbeats
from core.models import Heartbeat

pytestmark = pytest.mark.django_db

ROLES = [heartbeats.QPU_WORKERS, heartbeats.VM_SCHEDULER, heartbeats.TASK_CLUSTER]


@pytest.fixture(autouse=True)
def _fresh_throttle():
    heartbeats._last.clear()


def beat_all(age_seconds: float = 0) -> None:
    at = timezone.now() - timedelta(seconds=age_seconds)
    for role in ROLES:
        Heartbeat.objects.update_or_create(name=role, defaults={"beat_at": at})


def test_healthz_needs_no_auth_and_no_database(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "alive"}


def test_readyz_names_each_missing_role(client):
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not ready"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["migrations"]["ok"] is True
    for role in ROLES:
        assert body["checks"][role] == {"ok": False, "detail": "never seen: is it running?"}


def test_readyz_is_ready_when_every_role_beat_recently(client):
    beat_all()
    response = client.get("/readyz")
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "ready"


def test_readyz_reports_a_stale_role(client):
    beat_all()
    Heartbeat.objects.filter(name=heartbeats.VM_SCHEDULER).update(beat_at=timezone.now() - timedelta(seconds=600))
    body = client.get("/readyz").json()
    assert body["checks"][heartbeats.VM_SCHEDULER]["ok"] is False
    assert "limit 90 s" in body["checks"][heartbeats.VM_SCHEDULER]["detail"]
    assert body["checks"][heartbeats.QPU_WORKERS]["ok"] is True


def test_readyz_with_no_expected_roles_checks_database_and_migrations(client, settings):
    settings.READY_EXPECTED_ROLES = []
    response = client.get("/readyz")
    assert response.status_code == 200
    assert set(response.json()["checks"]) == {"database", "migrations"}


def test_readyz_reports_an_unreachable_database(client, monkeypatch):
    from core import health

    class Broken:
        def __enter__(self):
            raise OSError("down")

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(health.connection, "cursor", lambda: Broken())
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": {"ok": False, "detail": "unreachable: OSError"}}


def test_readyz_reports_unapplied_migrations(client, monkeypatch):
    from core import health

    monkeypatch.setattr(health, "_migrations_applied", False)
    monkeypatch.setattr(health.MigrationExecutor, "migration_plan", lambda self, targets: [("app", False)])
    body = client.get("/readyz").json()
    assert body["checks"]["migrations"] == {"ok": False, "detail": "1 unapplied: run `manage.py migrate`"}


def test_heartbeats_are_throttled_per_process():
    assert heartbeats.heartbeat_beat(name="x", min_interval=60) is True
    assert heartbeats.heartbeat_beat(name="x", min_interval=60) is False
    assert Heartbeat.objects.filter(name="x").count() == 1


def test_a_worker_tick_beats_for_the_qpu_workers(transactional_db):
    from jobs.runner import Worker

    Worker(listen=False).tick(start_threads=False)
    assert heartbeats.heartbeat_age(name=heartbeats.QPU_WORKERS) < timedelta(seconds=60)


def test_the_task_cluster_beat_and_its_schedule():
    from django_q.models import Schedule

    heartbeats.ensure_heartbeat_schedule()
    heartbeats.ensure_heartbeat_schedule()
    schedule = Schedule.objects.get(name=heartbeats.HEARTBEAT_SCHEDULE)
    assert (schedule.func, schedule.schedule_type, schedule.minutes) == (
        "core.heartbeats.task_cluster_beat",
        Schedule.MINUTES,
        1,
    )
    assert heartbeats.task_cluster_beat() == "alive"
    assert Heartbeat.objects.filter(name=heartbeats.TASK_CLUSTER).exists()


# --- logs -----------------------------------------------------------------------


def test_one_line_per_request_with_method_path_status_ms_and_user(api, caplog):
    caplog.set_level(logging.INFO, logger="http.request")
    api.get("/devices?type=x")
    (record,) = [r for r in caplog.records if r.name == "http.request"]
    assert record.levelno == logging.INFO
    assert (record.method, record.path, record.status, record.user) == ("GET", "/devices", 200, "alice")
    assert record.getMessage().startswith("GET /devices?type=x 200 ")
    assert record.ms >= 0


def test_anonymous_and_health_requests(client, caplog):
    caplog.set_level(logging.DEBUG, logger="http.request")
    client.get("/devices")
    client.get("/healthz")
    first, second = [r for r in caplog.records if r.name == "http.request"]
    assert (first.status, first.user, first.levelno) == (401, "-", logging.INFO)
    assert (second.path, second.levelno) == ("/healthz", logging.DEBUG)


def test_json_log_lines():
    from core.logs import JsonFormatter

    record = logging.LogRecord("http.request", logging.INFO, __file__, 1, "GET %s", ("/x",), None)
    record.status, record.ms = 200, 1.5
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "GET /x" and line["status"] == 200 and line["ms"] == 1.5
    assert line["level"] == "INFO" and line["logger"] == "http.request" and line["time"].endswith("+00:00")


def test_task_cluster_chatter_stays_below_the_default_level():
    logger = logging.getLogger("django-q")
    assert not logger.isEnabledFor(logging.INFO)
    assert logger.isEnabledFor(logging.WARNING)


def test_the_http_servers_queue_warnings_stay_below_the_default_level():
    """waitress warns "Task queue depth is N" for every request that waits
    for a thread: one line per request under load. Silenced; errors show."""
    logger = logging.getLogger("waitress.queue")
    assert not logger.isEnabledFor(logging.WARNING)
    assert logger.isEnabledFor(logging.ERROR)
    assert logging.getLogger("waitress").isEnabledFor(logging.WARNING)


@pytest.mark.django_db(transaction=True)
def test_the_acting_vm_scheduler_beats(settings):
    from tests.helpers import wait_until
    from tests.vms.live_helpers import running_live_scheduler

    with running_live_scheduler():
        assert wait_until(lambda: heartbeats.heartbeat_age(name=heartbeats.VM_SCHEDULER) is not None, timeout=10)
