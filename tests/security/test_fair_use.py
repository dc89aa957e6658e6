"""Fair use (issue 6, section 5): priority ceiling, per-user queued cap,
submission throttling, login lockout, password validators."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import connection, connections
from django.test import RequestFactory
from django.utils import timezone

from config.lockout import client_ip
from core.throttling import SubmitRateThrottle
from jobs import services
from jobs.exceptions import QueuedJobsLimit
from jobs.limits import queued_jobs_of
from jobs.models import Job, JobStatus
from jobs.services import JobSpec
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def program(priority=0, n=1, **extra):
    return {"priority": priority, "device_type": "analog", "jobs": [{"shots": 1}] * n, **extra}


def flat_job(priority=0, **extra):
    return {"priority": priority, "device_type": "analog", **extra}


# --- priority ceiling ------------------------------------------------------------


def test_ordinary_user_may_use_priority_up_to_the_ceiling(api):
    assert api.post("/programs", program(priority=100), format="json").status_code == 201
    assert api.post("/jobs", flat_job(priority=100), format="json").status_code == 201


@pytest.mark.parametrize("path, body", [("/programs", program(priority=101)), ("/jobs", flat_job(priority=101))])
def test_priority_above_the_ceiling_is_a_400_naming_priority_and_the_limit(api, path, body):
    r = api.post(path, body, format="json")
    assert r.status_code == 400
    message = r.json()["priority"][0]
    assert "100" in message and "USER_MAX_PRIORITY" in message
    assert not Job.objects.exists()


def test_the_ceiling_comes_from_the_setting(api, settings):
    settings.USER_MAX_PRIORITY = 7
    r = api.post("/jobs", flat_job(priority=8), format="json")
    assert r.status_code == 400 and "7" in r.json()["priority"][0]
    assert api.post("/jobs", flat_job(priority=7), format="json").status_code == 201


def test_brief_flat_form_joining_a_program_is_checked_too(api, staff_api, settings):
    # Even a program created by an allowed path cannot be joined above the ceiling.
    settings.USER_MAX_PRIORITY = 5
    r = api.post("/jobs", flat_job(priority=9, program_id="p1"), format="json")
    assert r.status_code == 400 and "priority" in r.json()


def test_staff_may_go_above_the_ceiling(staff_api):
    assert staff_api.post("/programs", program(priority=10_000), format="json").status_code == 201
    assert staff_api.post("/jobs", flat_job(priority=10_000), format="json").status_code == 201


def test_the_high_priority_permission_lifts_the_ceiling(api, user):
    assert api.post("/programs", program(priority=500), format="json").status_code == 400
    user.user_permissions.add(Permission.objects.get(codename="high_priority", content_type__app_label="jobs"))
    assert api.post("/programs", program(priority=500), format="json").status_code == 201
    assert api.post("/jobs", flat_job(priority=500), format="json").status_code == 201


# --- queued cap ----------------------------------------------------------------------


def test_queued_cap_refuses_a_submission_that_would_exceed_it(api, settings):
    settings.USER_MAX_QUEUED_JOBS = 5
    assert api.post("/programs", program(n=3), format="json").status_code == 201
    r = api.post("/programs", program(n=3), format="json")
    assert r.status_code == 429
    detail = r.json()["detail"]
    assert "USER_MAX_QUEUED_JOBS" in detail and "5" in detail and "3 queued" in detail
    assert Job.objects.count() == 3  # nothing of the refused program was created
    assert api.post("/programs", program(n=2), format="json").status_code == 201  # exactly up to the cap
    r = api.post("/jobs", flat_job(), format="json")
    assert r.status_code == 429 and "USER_MAX_QUEUED_JOBS" in r.json()["detail"]


def test_only_queued_jobs_count_and_cancelling_frees_room(api, settings):
    settings.USER_MAX_QUEUED_JOBS = 2
    first = api.post("/jobs", flat_job(), format="json").json()["id"]
    api.post("/jobs", flat_job(), format="json")
    assert api.post("/jobs", flat_job(), format="json").status_code == 429
    assert api.post(f"/jobs/{first}/cancel").status_code == 200
    assert api.post("/jobs", flat_job(), format="json").status_code == 201
    Job.objects.update(status=JobStatus.DONE)
    assert api.post("/programs", program(n=2), format="json").status_code == 201


def test_the_cap_is_per_user_and_staff_are_exempt(api, other_api, staff_api, settings):
    settings.USER_MAX_QUEUED_JOBS = 2
    assert api.post("/programs", program(n=2), format="json").status_code == 201
    assert api.post("/jobs", flat_job(), format="json").status_code == 429
    assert other_api.post("/programs", program(n=2), format="json").status_code == 201
    assert staff_api.post("/programs", program(n=50), format="json").status_code == 201


def test_a_program_larger_than_the_cap_alone_is_refused(api, settings):
    settings.USER_MAX_QUEUED_JOBS = 3
    r = api.post("/programs", program(n=4), format="json")
    assert r.status_code == 429 and "3" in r.json()["detail"] and "4" in r.json()["detail"]


def test_the_count_stops_at_its_limit(user):
    services.program_create(owner=user, priority=0, device_type="analog", jobs=[JobSpec()] * 7)
    assert queued_jobs_of(user_id=user.pk, limit=5) == 5
    assert queued_jobs_of(user_id=user.pk, limit=100) == 7


@pytest.mark.postgres
def test_the_count_walks_the_partial_index_on_postgres(user, other_user):
    # Many jobs queued by someone else, a few by the user: the count must read
    # the user's queued entries only, through job_owner_queued_idx.
    other = services.program_create(owner=other_user, priority=0, device_type="analog", jobs=[JobSpec()])
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO jobs_job (key, program_id, owner_id, priority, device_type, instructions, shots, status,
                                  attempts, requeues, created_at, error, lease_token, callback_status,
                                  callback_attempts, callback_error)
            SELECT 'bulk-' || g, %s, %s, 0, 'analog', '[]'::jsonb, 1, 'queued', 0, 0, now(), '', '', '', 0, ''
              FROM generate_series(1, 30000) AS g
            """,
            [other.program.pk, other_user.pk],
        )
        cursor.execute("ANALYZE jobs_job")
    services.program_create(owner=user, priority=0, device_type="analog", jobs=[JobSpec()] * 3)
    qs = Job.objects.filter(owner_id=user.pk, status=JobStatus.QUEUED).order_by().values("pk")[:100_000]
    sql, params = qs.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN SELECT count(*) FROM (" + sql + ") AS t", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "job_owner_queued_idx" in plan, plan
    assert queued_jobs_of(user_id=user.pk, limit=100_000) == 3


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_submissions_by_one_user_never_overshoot_the_cap(settings):
    settings.USER_MAX_QUEUED_JOBS = 10
    owner = make_user("racer")
    start = threading.Barrier(4)
    outcomes: list[str] = []

    def submit():
        try:
            start.wait()
            services.program_create(owner=owner, priority=0, device_type="analog", jobs=[JobSpec()] * 6)
            outcomes.append("created")
        except QueuedJobsLimit:
            outcomes.append("refused")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["created", "refused", "refused", "refused"]
    assert Job.objects.filter(owner=owner, status=JobStatus.QUEUED).count() == 6


# --- throttling ---------------------------------------------------------------------


def test_submissions_are_throttled_per_user_with_retry_after(api, other_api, settings):
    settings.THROTTLE_SUBMIT_RATE = "3/minute"
    assert api.post("/programs", program(), format="json").status_code == 201
    assert api.post("/jobs", flat_job(), format="json").status_code == 201
    assert api.post("/jobs", flat_job(), format="json").status_code == 201
    r = api.post("/programs", program(), format="json")
    assert r.status_code == 429
    assert "THROTTLE_SUBMIT_RATE=3/minute" in r.json()["detail"]
    assert 0 < int(r["Retry-After"]) <= 60
    assert Job.objects.count() == 3
    # Reads are not submissions; another user has an allowance of their own.
    assert api.get("/jobs").status_code == 200
    assert other_api.post("/jobs", flat_job(), format="json").status_code == 201


def test_the_allowance_comes_back_when_the_window_has_passed(api, settings, monkeypatch):
    settings.THROTTLE_SUBMIT_RATE = "2/minute"
    now = [1_000_000.0]
    monkeypatch.setattr(SubmitRateThrottle, "timer", lambda self: now[0])
    for _ in range(2):
        assert api.post("/jobs", flat_job(), format="json").status_code == 201
    assert api.post("/jobs", flat_job(), format="json").status_code == 429
    now[0] += 61
    assert api.post("/jobs", flat_job(), format="json").status_code == 201


def test_an_empty_rate_turns_throttling_off(api, settings):
    settings.THROTTLE_SUBMIT_RATE = ""
    for _ in range(5):
        assert api.post("/jobs", flat_job(), format="json").status_code == 201


def test_the_default_rate_allows_a_burst(api):
    # The documented default: a client may send a burst of submissions at once.
    for _ in range(20):
        assert api.post("/jobs", flat_job(), format="json").status_code == 201


# --- login lockout --------------------------------------------------------------------


@pytest.fixture
def person(db):
    return make_user("carol", password="correct-horse-battery", is_staff=True)


def token(client, password, username="carol", addr="10.0.0.1"):
    return client.post("/api/token/", {"username": username, "password": password}, format="json", REMOTE_ADDR=addr)


def test_token_endpoint_gives_the_users_token(anon_api, person):
    r = token(anon_api, "correct-horse-battery")
    assert r.status_code == 200
    assert anon_api.get("/jobs", HTTP_AUTHORIZATION=f"Token {r.json()['token']}").status_code == 200
    assert token(anon_api, "wrong").status_code == 400


def test_token_endpoint_locks_out_after_the_failure_limit(anon_api, person, settings):
    assert settings.AXES_FAILURE_LIMIT == 5
    for _ in range(4):
        assert token(anon_api, "wrong").status_code == 400
    r = token(anon_api, "wrong")
    assert r.status_code == 429
    # Locked: even the right password is refused, with the limit named.
    r = token(anon_api, "correct-horse-battery")
    assert r.status_code == 429
    assert "AXES_FAILURE_LIMIT=5" in r.json()["detail"] and "15 minutes" in r.json()["detail"]
    assert int(r["Retry-After"]) == 15 * 60
    # The lockout is per username + address: the owner elsewhere still gets in.
    assert token(anon_api, "correct-horse-battery", addr="10.0.0.2").status_code == 200


def test_lockout_ends_after_the_cooloff(anon_api, person):
    from axes.models import AccessAttempt

    for _ in range(5):
        token(anon_api, "wrong")
    assert token(anon_api, "correct-horse-battery").status_code == 429
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    assert token(anon_api, "correct-horse-battery").status_code == 200


def test_a_success_before_the_limit_resets_the_count(anon_api, person):
    for _ in range(4):
        token(anon_api, "wrong")
    assert token(anon_api, "correct-horse-battery").status_code == 200
    for _ in range(4):
        assert token(anon_api, "wrong").status_code == 400


@pytest.mark.parametrize("login_url", ["/admin/login/", "/api-auth/login/"])
def test_admin_and_browsable_api_logins_lock_out_too(client, person, login_url):
    def login(password):
        return client.post(login_url, {"username": "carol", "password": password}, HTTP_ACCEPT="text/html")

    for _ in range(4):
        assert login("wrong").status_code == 200  # the form again, with an error
    assert login("wrong").status_code == 429
    r = login("correct-horse-battery")
    assert r.status_code == 429
    assert b"AXES_FAILURE_LIMIT=5" in r.content
    assert "_auth_user_id" not in client.session


def test_lockouts_are_shared_between_login_paths(client, anon_api, person):
    for _ in range(5):
        client.post("/admin/login/", {"username": "carol", "password": "wrong"}, REMOTE_ADDR="10.0.0.1")
    assert token(anon_api, "correct-horse-battery").status_code == 429


def test_client_address_behind_proxies(settings):
    rf = RequestFactory()
    request = rf.get("/", REMOTE_ADDR="10.9.9.9", HTTP_X_FORWARDED_FOR="6.6.6.6, 1.2.3.4")
    assert client_ip(request) == "10.9.9.9"  # no trusted proxy: the header is the client's word only
    settings.LOGIN_PROXY_COUNT = 1
    assert client_ip(request) == "1.2.3.4"  # what our proxy saw, not what the client wrote
    bad = rf.get("/", REMOTE_ADDR="10.9.9.9", HTTP_X_FORWARDED_FOR="not-an-ip\x00")
    assert client_ip(bad) == "10.9.9.9"


# --- password validators ------------------------------------------------------------------


@pytest.mark.parametrize("password", ["short1", "password123", "8273645190", "carol123x"])
def test_weak_passwords_are_refused(person, password):
    with pytest.raises(ValidationError):
        validate_password(password, user=person)


def test_a_strong_password_passes(person):
    validate_password("plum-orbit-74-lantern", user=person)


# --- settings -------------------------------------------------------------------------------


def test_cache_url_choices():
    from config.settings import cache_config

    assert cache_config("")["BACKEND"].endswith("LocMemCache")
    assert cache_config("db://throttle_cache") == {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "throttle_cache",
    }
    assert cache_config("redis://cache:6379/1")["BACKEND"].endswith("RedisCache")
    with pytest.raises(ValueError):
        cache_config("memcached://x")


@pytest.mark.parametrize(
    "rate, ok",
    [("120/minute", True), ("", True), ("5/s", True), ("abc", False), ("120 per minute", False), ("1.5/minute", False)],
)
def test_a_malformed_throttle_rate_stops_start_up(rate, ok, tmp_path):
    import subprocess
    import sys

    from tests.helpers import ROOT

    out = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={
            "PATH": "/usr/bin:/bin",
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "THROTTLE_SUBMIT_RATE": rate,
            "SQLITE_PATH": str(tmp_path / "unused.sqlite3"),
            "LOG_LEVEL": "WARNING",
            "SECRET_KEY": "k" * 60,
        },
    )
    assert (out.returncode == 0) == ok, out.stderr[-500:]
    if not ok:
        assert "THROTTLE_SUBMIT_RATE" in out.stderr
