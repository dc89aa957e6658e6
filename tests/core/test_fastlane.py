"""The API's fast lane (``core.fastlane``, ``jobs.fastlane``) against the full
stack as the oracle: for every request it answers, the status, headers and
body are exactly what Django and DRF answer for the same request; every
other request reaches Django untouched."""

from __future__ import annotations

import io
import json
import logging
from datetime import timedelta

import pytest
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections
from django.utils import timezone

from config import wsgi
from jobs.models import Job, JobStatus
from tests.factories import make_device, make_job, make_program, make_token, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _one_instant(monkeypatch):
    # Both answers estimate a start from "now": the same now for both.
    frozen = timezone.now()
    monkeypatch.setattr("jobs.selectors.timezone.now", lambda: frozen)


@pytest.fixture(autouse=True)
def _keep_the_test_transaction():
    # As Django's test client does: the request signals must not close the
    # connection that holds the test's transaction.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def _environ(path: str, *, token: str | None = None, method: str = "GET", **extra) -> dict:
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "HTTP_HOST": "127.0.0.1:8000",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.url_scheme": "http",
        "wsgi.errors": io.StringIO(),
    }
    if token is not None:
        environ["HTTP_AUTHORIZATION"] = f"Token {token}"
    environ.update(extra)
    return environ


class Recorder:
    """Django's application, counting the requests that reach it. Made per
    test, as a process makes it at its start: its middleware reads the
    settings of that moment (the test's)."""

    def __init__(self):
        self.calls = 0
        self.django = WSGIHandler()

    def __call__(self, environ, start_response):
        self.calls += 1
        return self.django(environ, start_response)


def _call(app, environ) -> tuple[str, dict[str, str], bytes]:
    got = {}

    def start_response(status, headers, exc_info=None):
        got["status"], got["headers"] = status, dict(headers)

    body = b"".join(app(environ, start_response))
    return got["status"], got["headers"], body


def _both(environ_factory) -> tuple[tuple, tuple, int]:
    """(lane's answer, Django's answer, requests the lane passed to Django)."""
    django = Recorder()
    lane = type(wsgi.application)(django, routes=wsgi.application.routes)
    fast = _call(lane, environ_factory())
    slow = _call(WSGIHandler(), environ_factory())
    return fast, slow, django.calls


@pytest.fixture
def jobs_of_every_kind(user):
    now = timezone.now()
    busy = make_device("busy", size=4)
    make_device("idle", size=8)
    program = make_program(user, priority=3, client_user_id="c-1", callback_url="https://client.example/r", jobs=2)
    make_program(user, priority=9, jobs=3)
    return [
        *program.jobs.order_by("id"),
        make_job(program, min_size=64, instructions=[{"op": "h", "q": 0}, "ünïcode"]),
        make_job(program, status=JobStatus.RUNNING, device=busy, started_at=now - timedelta(seconds=2)),
        make_job(program, status=JobStatus.DONE, device=busy, result=["0101"], started_at=now, finished_at=now),
        make_job(program, status=JobStatus.FAILED, error="device busy timed out", attempts=3),
        make_job(make_program(user, device_type="nowhere")),
    ]


def test_its_answers_are_the_full_stacks_byte_for_byte(user, staff_user, jobs_of_every_kind):
    for reader in (user, staff_user):
        token = make_token(reader)
        for job in jobs_of_every_kind:
            fast, slow, passed_on = _both(lambda key=job.key, token=token: _environ(f"/jobs/{key}", token=token))
            assert passed_on == 0, f"the lane declined {job.key}"
            assert fast == slow, job.key
            assert fast[0] == "200 OK"


@pytest.mark.parametrize(
    "settings_change, scheme",
    [
        ({"SECURE_HSTS_SECONDS": 3600, "SECURE_HSTS_INCLUDE_SUBDOMAINS": True}, "https"),
        ({"X_FRAME_OPTIONS": "SAMEORIGIN", "SECURE_REFERRER_POLICY": "no-referrer"}, "http"),
    ],
)
def test_security_headers_follow_the_settings_as_djangos_do(settings, user, settings_change, scheme):
    for name, value in settings_change.items():
        setattr(settings, name, value)
    job = make_job(make_program(user))
    token = make_token(user)
    fast, slow, passed_on = _both(lambda: _environ(f"/jobs/{job.key}", token=token, **{"wsgi.url_scheme": scheme}))
    assert passed_on == 0
    assert fast == slow


def test_a_request_django_would_redirect_to_https_is_left_to_django(settings, user):
    settings.SECURE_SSL_REDIRECT = True
    job = make_job(make_program(user))
    fast, slow, passed_on = _both(lambda: _environ(f"/jobs/{job.key}", token=make_token(user)))
    assert passed_on == 1
    assert fast == slow
    assert fast[0].startswith("301")


def _declined_cases(user, other, job, others_job):
    token, inactive = make_token(user), make_token(make_user(is_active=False))
    return {
        "someone else's job": _environ(f"/jobs/{others_job.key}", token=token),
        "no such job": _environ("/jobs/nope", token=token),
        "unknown token": _environ(f"/jobs/{job.key}", token="f" * 40),
        "inactive user": _environ(f"/jobs/{job.key}", token=inactive),
        "no credentials": _environ(f"/jobs/{job.key}"),
        "lowercase keyword": _environ(f"/jobs/{job.key}", HTTP_AUTHORIZATION=f"token {token}"),
        "browsable API": _environ(f"/jobs/{job.key}", token=token, HTTP_ACCEPT="text/html"),
        "a query string": _environ(f"/jobs/{job.key}", token=token, QUERY_STRING="format=json"),
        "a cookie": _environ(f"/jobs/{job.key}", token=token, HTTP_COOKIE="sessionid=x"),
        "a host not allowed": _environ(f"/jobs/{job.key}", token=token, HTTP_HOST="evil.example"),
        "HEAD": _environ(f"/jobs/{job.key}", token=token, method="HEAD"),
        "POST": _environ(f"/jobs/{job.key}", token=token, method="POST"),
        "trailing slash": _environ(f"/jobs/{job.key}/", token=token),
        "the cancel route": _environ(f"/jobs/{job.key}/cancel", token=token),
        "a NUL in the id": _environ("/jobs/a\x00b", token=token),
    }


def test_every_other_request_is_answered_by_django_unchanged(user, other_user):
    job, others_job = make_job(make_program(user)), make_job(make_program(other_user))
    names = list(_declined_cases(user, other_user, job, others_job))
    for name in names:
        fast, slow, passed_on = _both(lambda name=name: _declined_cases(user, other_user, job, others_job)[name])
        assert passed_on == 1, name
        assert fast[0] == slow[0], name
        assert fast[1]["Content-Type"] == slow[1]["Content-Type"], name
        if "json" in fast[1]["Content-Type"]:  # (an HTML page carries a fresh CSRF token)
            assert fast[2] == slow[2], name


def test_a_forwarded_host_django_would_check_is_left_to_django(settings, user):
    settings.USE_X_FORWARDED_HOST = True
    job = make_job(make_program(user))
    environ = {"HTTP_X_FORWARDED_HOST": "evil.example"}
    fast, slow, passed_on = _both(lambda: _environ(f"/jobs/{job.key}", token=make_token(user), **environ))
    assert passed_on == 1
    assert fast[0] == slow[0] == "400 Bad Request"


def test_switched_off_everything_goes_to_django(settings, user):
    settings.API_FAST_LANE = False
    job = make_job(make_program(user))
    fast, slow, passed_on = _both(lambda: _environ(f"/jobs/{job.key}", token=make_token(user)))
    assert passed_on == 1
    assert fast == slow


def test_an_error_in_the_lane_is_left_to_django(monkeypatch, user):
    from jobs import selectors

    job = make_job(make_program(user))

    def broken(**kwargs):
        raise RuntimeError("a bug in the fast path")

    monkeypatch.setattr(selectors, "job_get_detail_by_token", broken)
    fast, slow, passed_on = _both(lambda: _environ(f"/jobs/{job.key}", token=make_token(user)))
    # Declined, not answered with an error of its own: Django's view (which
    # reads through job_get_detail) answers as usual.
    assert passed_on == 1
    assert fast == slow
    assert fast[0] == "200 OK"


def test_it_writes_the_same_request_log_line(caplog, user):
    job = make_job(make_program(user))
    token = make_token(user)
    with caplog.at_level(logging.INFO, logger="http.request"):
        _both(lambda: _environ(f"/jobs/{job.key}", token=token))
    fast_line, slow_line = [r for r in caplog.records if r.name == "http.request"]
    for key in ("method", "path", "status", "user"):
        assert getattr(fast_line, key) == getattr(slow_line, key), key
    assert fast_line.getMessage().split()[:3] == ["GET", f"/jobs/{job.key}", "200"]


def test_a_declined_request_reaches_django_with_its_path_as_sent(user, other_user):
    """PEP 3333: PATH_INFO holds the path's bytes as latin-1. The lane reads
    it without changing it, so Django decodes the same UTF-8 path (a job id
    beyond latin-1 included) and answers about the same id."""
    mine, theirs = make_job(make_program(user)), make_job(make_program(other_user))
    Job.objects.filter(pk=mine.pk).update(key="mïne-Ā")
    Job.objects.filter(pk=theirs.pk).update(key="théirs-Ā")
    token = make_token(user)
    for key, declined in (("mïne-Ā", 0), ("théirs-Ā", 1)):
        path = "/jobs/" + key.encode().decode("latin-1")
        fast, slow, passed_on = _both(lambda path=path: _environ(path, token=token))
        assert passed_on == declined, key
        assert fast == slow, key
        assert fast[0] == ("200 OK" if not declined else "404 Not Found")
        assert key in json.dumps(json.loads(fast[2]), ensure_ascii=False)  # the id asked for, not a re-decoded one
