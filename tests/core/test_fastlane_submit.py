"""``POST /jobs`` on the fast lane (``jobs.fastlane.job_submit``) against the
full stack as the oracle. Each submission is made twice from the same state
- by Django inside a savepoint that is then rolled back, and by the lane -
so both answers are about the same job at the same place in the queue: for
every request the lane answers, status, headers and body are Django's byte
for byte; every other request reaches Django with its body whole, once, and
is counted once by the submission rate limit."""

from __future__ import annotations

import io
import itertools
import json
import logging

import pytest
from django.core.cache import cache
from django.core.handlers.wsgi import WSGIHandler
from django.utils import timezone

from config import wsgi
from core.throttling import COUNTED_BY_LANE
from jobs.models import Job, Program
from tests.core.test_fastlane import Recorder, _call, _environ, _keep_the_test_transaction  # noqa: F401
from tests.factories import make_device, make_program, make_token, make_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _one_instant(monkeypatch):
    # Both answers carry created_at and an estimate from "now": the same now for both.
    frozen = timezone.now()
    monkeypatch.setattr("jobs.selectors.timezone.now", lambda: frozen)
    monkeypatch.setattr("jobs.services.timezone.now", lambda: frozen)


_generated = itertools.count()


@pytest.fixture(autouse=True)
def _same_generated_ids(monkeypatch):
    # Ids the client leaves out are generated: the same ones for both answers.
    monkeypatch.setattr("jobs.services.new_key", lambda: f"gen-{next(_generated)}")


def _post(token: str | None, body, **extra) -> dict:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    fields = {"CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(raw)), "wsgi.input": io.BytesIO(raw)}
    return _environ("/jobs", token=token, method="POST", **{**fields, **extra})


def _lane_and_django(environ_factory) -> tuple[tuple, tuple, int]:
    """(lane's answer, Django's answer from the same state, requests the
    lane passed to Django). Django answers first; what it wrote is deleted
    (the counters follow), so the lane starts from the same queue. Outside
    any test transaction (``transaction=True``), so the lane takes the path
    production takes: its one statement on PostgreSQL."""
    global _generated
    _generated = itertools.count()
    programs = Program.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    jobs = Job.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    slow = _call(WSGIHandler(), environ_factory())
    Job.objects.filter(pk__gt=jobs).delete()
    Program.objects.filter(pk__gt=programs).delete()
    cache.clear()  # Django's request counted against the rate limit: forget it
    _generated = itertools.count()
    django = Recorder()
    lane = type(wsgi.application)(django, routes=wsgi.application.routes)
    fast = _call(lane, environ_factory())
    return fast, slow, django.calls


@pytest.fixture
def setting(user, staff_user):
    make_device("g-4", type="gate", size=4)
    make_device("g-16", type="gate", size=16)
    joined = make_program(user, key="shared", priority=5, device_type="gate", jobs=2)
    make_program(staff_user, priority=7, device_type="gate", jobs=3)
    return joined


SUBMISSIONS = {
    "minimal": {"priority": 5, "device_type": "gate"},
    "the brief's shape": {"id": "j-1", "priority": 5, "user_id": "u1", "program_id": "p-new", "device_type": "gate"},
    "joining a program": {"id": "j-2", "priority": 5, "program_id": "shared", "device_type": "gate"},
    "numbers as ids": {"id": 42, "priority": 5, "user_id": 7, "device_type": "gate"},
    "everything": {
        "id": "j-3",
        "priority": -2,
        "device_type": "gate",
        "instructions": [{"op": "h", "q": 0}, "ünïcode"],
        "shots": 1000,
        "min_size": 8,
        "unknown": "ignored",
    },
    "null instructions": {"id": "j-4", "priority": 5, "device_type": "gate", "instructions": None},
    "no device of its type": {"id": "j-5", "priority": 5, "device_type": "nowhere"},
    "too big for every device": {"id": "j-6", "priority": 5, "device_type": "gate", "min_size": 64},
}


@pytest.mark.parametrize("name", list(SUBMISSIONS))
def test_its_answers_are_the_full_stacks_byte_for_byte(user, staff_user, setting, name):
    for submitter in (user, staff_user):  # a user under the queued-jobs cap, and staff (no cap)
        body = SUBMISSIONS[name]
        if name == "joining a program" and submitter == staff_user:
            continue  # someone else's program: a 409, see the declined cases
        token = make_token(submitter)
        fast, slow, passed_on = _lane_and_django(lambda body=body, token=token: _post(token, body))
        assert passed_on == 0, f"the lane declined {name}"
        assert slow[0] == "201 Created", slow[2]
        assert fast == slow, name
        key = json.loads(fast[2])["id"]
        assert Job.objects.filter(key=key).count() == 1
        Job.objects.filter(key=key).delete()  # the next submitter uses the same ids ...
        Program.objects.filter(jobs__isnull=True).delete()  # ... and program ids


def _declined(user, other_user) -> dict:
    token = make_token(user)
    ok = {"id": "d-1", "priority": 5, "device_type": "gate"}
    form = b"id=d-1&priority=5&device_type=gate"
    return {
        # Taken by the serializer or the view, as they always were:
        "a numeric string": _post(token, {**ok, "priority": "5"}),
        "an integral float": _post(token, {**ok, "shots": 2.0}),
        "text to trim": _post(token, {**ok, "device_type": " gate "}),
        "a form body": _post(token, form, CONTENT_TYPE="application/x-www-form-urlencoded"),
        "JSON labelled as a form (curl -d)": _post(
            token, json.dumps(ok).encode(), CONTENT_TYPE="application/x-www-form-urlencoded"
        ),
        "a charset parameter": _post(token, ok, CONTENT_TYPE="application/json; charset=utf-8"),
        "require_device=false": _post(token, ok, QUERY_STRING="require_device=false"),
        # Refused, in the view's words:
        "invalid JSON": _post(token, b'{"priority": 5,'),
        "not UTF-8": _post(token, b'{"priority": 5, "device_type": "\xff"}'),
        "NaN": _post(token, b'{"priority": 5, "device_type": "gate", "shots": NaN}'),
        "a field missing": _post(token, {"device_type": "gate"}),
        "a bad id": _post(token, {**ok, "id": "a/b"}),
        "a NUL in instructions": _post(token, {**ok, "instructions": ["a\x00b"]}),
        "a list": _post(token, [ok]),
        "an empty body": _post(token, b""),
        "a taken id": _post(token, {**ok, "id": "taken"}),
        "someone else's program": _post(token, {**ok, "program_id": "theirs"}),
        "a program of another priority": _post(token, {**ok, "priority": 6, "program_id": "mine"}),
        "a priority above the user's ceiling": _post(token, {**ok, "priority": 10**6}),
        "too many shots for every device": _post(token, {**ok, "shots": 100_000, "device_type": "huge"}),
        "require_device=true without a device": _post(
            token, {**ok, "device_type": "nowhere"}, QUERY_STRING="require_device=true"
        ),
        "no credentials": _post(None, ok),
        "an unknown token": _post("f" * 40, ok),
        "an inactive user": _post(make_token(make_user(is_active=False)), ok),
        "a session cookie": _post(token, ok, HTTP_COOKIE="sessionid=x"),
        "a host not allowed": _post(token, ok, HTTP_HOST="evil.example"),
        "the browsable API": _post(token, ok, HTTP_ACCEPT="text/html"),
        "PUT": _post(token, ok, REQUEST_METHOD="PUT"),
        "trailing slash": _post(token, ok, PATH_INFO="/jobs/"),
    }


# What Django answers each of them (so the comparison is not of two failures).
EXPECTED_STATUS = {
    **dict.fromkeys(["a numeric string", "an integral float", "text to trim", "a form body"], 201),
    **dict.fromkeys(["JSON labelled as a form (curl -d)", "a charset parameter", "require_device=false"], 201),
    **dict.fromkeys(["a session cookie", "the browsable API"], 201),
    **dict.fromkeys(["invalid JSON", "not UTF-8", "NaN", "a field missing", "a bad id", "a list"], 400),
    **dict.fromkeys(["a NUL in instructions", "an empty body", "a host not allowed"], 400),
    **dict.fromkeys(["a priority above the user's ceiling", "too many shots for every device"], 400),
    **dict.fromkeys(["a taken id", "someone else's program", "a program of another priority"], 409),
    "require_device=true without a device": 409,
    **dict.fromkeys(["no credentials", "an unknown token", "an inactive user"], 401),
    "PUT": 405,
    "trailing slash": 404,
}


def test_every_other_request_is_answered_by_django_unchanged(settings, user, other_user):
    settings.RESULT_MAX_BITS = 1_000_000
    make_device("huge", type="huge", size=2048)
    make_program(user, key="mine", priority=5, device_type="gate")
    make_program(other_user, key="theirs", priority=5, device_type="gate")
    taken = make_program(user, priority=5, device_type="gate", jobs=1).jobs.get()
    Job.objects.filter(pk=taken.pk).update(key="taken")
    names = list(_declined(user, other_user))
    assert set(names) == set(EXPECTED_STATUS)
    for name in names:
        fast, slow, passed_on = _lane_and_django(lambda name=name: _declined(user, other_user)[name])
        assert passed_on == 1, name
        assert fast[0].split()[0] == str(EXPECTED_STATUS[name]), (name, fast[2])
        assert fast[0] == slow[0], (name, fast[2], slow[2])
        assert fast[1].get("Content-Type") == slow[1].get("Content-Type"), name
        if "json" in fast[1].get("Content-Type", ""):  # (an HTML page carries a fresh CSRF token)
            assert fast[2] == slow[2], name
        # Nothing was left behind by the lane's attempt: at most Django's own job.
        assert Job.objects.filter(key="d-1").count() == (1 if fast[0].startswith("201") else 0), name
        Job.objects.filter(key="d-1").delete()


def test_a_refused_submission_is_counted_once_by_the_rate_limit(settings, user):
    settings.THROTTLE_SUBMIT_RATE = "2/minute"
    token = make_token(user)
    make_program(user, priority=5, device_type="gate", jobs=1).jobs.update(key="taken")
    django = Recorder()
    lane = type(wsgi.application)(django, routes=wsgi.application.routes)

    first = _call(lane, _post(token, {"id": "new", "priority": 5, "device_type": "gate"}))
    environ = _post(token, {"id": "taken", "priority": 5, "device_type": "gate"})
    second = _call(lane, environ)  # counted by the lane, then answered by Django
    third = _call(lane, _post(token, {"id": "later", "priority": 5, "device_type": "gate"}))

    assert (first[0], second[0], third[0]) == ("201 Created", "409 Conflict", "429 Too Many Requests")
    assert environ[COUNTED_BY_LANE] is True
    assert django.calls == 2  # the 409, and the 429 (refused by DRF's throttle, which the lane consults)
    assert "Retry-After" in third[1]
    assert not Job.objects.filter(key="later").exists()


def test_a_client_cannot_claim_its_request_was_counted(settings, user):
    """Request headers reach the environ under HTTP_* names only, so the
    lane's mark cannot be sent; a header of that name changes nothing."""
    settings.THROTTLE_SUBMIT_RATE = "1/minute"
    token = make_token(user)
    lane = type(wsgi.application)(Recorder(), routes=wsgi.application.routes)
    header = "HTTP_" + COUNTED_BY_LANE.upper().replace(".", "_")
    answers = [
        _call(lane, _post(token, {"id": f"x-{i}", "priority": 5, "device_type": "gate"}, **{header: "1"}))[0]
        for i in range(2)
    ]
    assert answers == ["201 Created", "429 Too Many Requests"]


def test_an_error_after_the_write_is_answered_by_the_lane_not_repeated(monkeypatch, user):
    from jobs import fastlane

    def broken(job):
        raise RuntimeError("a bug in the answer")

    monkeypatch.setattr(fastlane, "job_detail_data", broken)
    django = Recorder()
    lane = type(wsgi.application)(django, routes=wsgi.application.routes)
    status, headers, body = _call(lane, _post(make_token(user), {"priority": 5, "device_type": "gate"}))
    assert status == "500 Internal Server Error"
    assert django.calls == 0
    assert Job.objects.filter(owner=user).count() == 1  # submitted once, not once more by Django
    assert headers["X-Frame-Options"] == "DENY"


def test_an_error_before_the_write_is_left_to_django(monkeypatch, user):
    from jobs import selectors

    def broken(**kwargs):
        raise RuntimeError("a bug in the read")

    monkeypatch.setattr(selectors, "submitter_by_token", broken)
    django = Recorder()
    lane = type(wsgi.application)(django, routes=wsgi.application.routes)
    status, _, body = _call(lane, _post(make_token(user), {"id": "k", "priority": 5, "device_type": "gate"}))
    assert (status, django.calls) == ("201 Created", 1)
    assert Job.objects.filter(key="k").count() == 1


def test_it_writes_the_same_request_log_line(caplog, user):
    token = make_token(user)
    with caplog.at_level(logging.INFO, logger="http.request"):
        _lane_and_django(lambda: _post(token, {"id": "logged", "priority": 5, "device_type": "gate"}))
    slow_line, fast_line = [r for r in caplog.records if r.name == "http.request"]
    for key in ("method", "path", "status", "user"):
        assert getattr(fast_line, key) == getattr(slow_line, key), key
    assert fast_line.getMessage().split()[:3] == ["POST", "/jobs", "201"]


@pytest.fixture
def production_signals():
    """close_old_connections on the request signals, as in production (the
    test-transaction fixture above takes them off): Django's per-request
    connection check is due again at each request."""
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)
    yield
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_connection_that_died_while_idle_is_replaced_before_the_submission(monkeypatch, user, production_signals):
    """The lane health-checks a connection it has not used for a while
    (core.fastlane.HEALTH_CHECK_IDLE_SECONDS; 0 here, so: always), so a
    connection that died meanwhile is replaced before anything is sent.
    Nothing is lost, nothing submitted twice."""
    import psycopg2
    from django.db import connection

    from core import fastlane

    monkeypatch.setattr(fastlane, "HEALTH_CHECK_IDLE_SECONDS", 0.0)
    token = make_token(user)
    django = Recorder()
    lane = type(wsgi.application)(django, routes=wsgi.application.routes)
    assert _call(lane, _post(token, {"id": "before", "priority": 5, "device_type": "gate"}))[0] == "201 Created"
    assert connection.connection is not None  # kept open between requests (CONN_MAX_AGE)
    backend = connection.connection.get_backend_pid()
    killer = psycopg2.connect(**connection.get_connection_params())
    try:
        killer.autocommit = True
        killer.cursor().execute("SELECT pg_terminate_backend(%s)", [backend])
    finally:
        killer.close()
    status, _, _ = _call(lane, _post(token, {"id": "after", "priority": 5, "device_type": "gate"}))
    assert (status, django.calls) == ("201 Created", 0)  # answered by the lane, on a new connection
    assert connection.connection.get_backend_pid() != backend
    assert sorted(Job.objects.values_list("key", flat=True)) == ["after", "before"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_connection_used_a_moment_ago_is_not_checked_again(monkeypatch, user, production_signals):
    from django.db import connections

    from core import fastlane

    checks = []
    token = make_token(user)
    lane = type(wsgi.application)(Recorder(), routes=wsgi.application.routes)
    wrapper = type(connections["default"])
    real = wrapper.is_usable
    monkeypatch.setattr(wrapper, "is_usable", lambda self: checks.append(1) or real(self))
    _call(lane, _post(token, {"id": "first", "priority": 5, "device_type": "gate"}))
    checks.clear()
    assert _call(lane, _post(token, {"id": "second", "priority": 5, "device_type": "gate"}))[0] == "201 Created"
    assert checks == []
    monkeypatch.setattr(fastlane, "HEALTH_CHECK_IDLE_SECONDS", 0.0)  # as if a while had passed
    assert _call(lane, _post(token, {"id": "third", "priority": 5, "device_type": "gate"}))[0] == "201 Created"
    assert checks == [1]


@pytest.mark.postgres
def test_on_postgresql_a_submission_is_one_statement(staff_user):
    """Outside the queued-jobs cap (staff here), once the process knows the
    token's user (for the rate limit): one statement, then the workers'
    wake-up in a transaction of its own."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    token = make_token(staff_user)
    lane = type(wsgi.application)(Recorder(), routes=wsgi.application.routes)
    for warm in ("warm-1", "warm-2"):  # the token's user learnt, then the statement prepared
        _call(lane, _post(token, {"id": warm, "priority": 5, "device_type": "gate"}))
    with CaptureQueriesContext(connection) as statements:
        status = _call(lane, _post(token, {"id": "one", "priority": 5, "device_type": "gate"}))[0]
    assert status == "201 Created"
    executed = [q["sql"] for q in statements.captured_queries]
    assert len(executed) == 2 and executed[0].startswith("EXECUTE "), executed
    assert executed[1].startswith("SELECT pg_notify("), executed


def test_what_the_statement_may_not_write_goes_through_every_rule(settings, user):
    """A priority above USER_MAX_PRIORITY is written only for staff by the
    lane's statement; a user holding jobs.high_priority gets it through
    job_submit's own check - the same answer as Django's."""
    from django.contrib.auth.models import Permission

    user.user_permissions.add(Permission.objects.get(codename="high_priority"))
    token = make_token(user)
    body = {"id": "urgent", "priority": settings.USER_MAX_PRIORITY + 1, "device_type": "gate"}
    fast, slow, passed_on = _lane_and_django(lambda: _post(token, body))
    assert (fast[0], passed_on) == ("201 Created", 0)
    assert fast == slow


@pytest.mark.parametrize("min_size, smallest", [(5, 16), (20, 20)])
@pytest.mark.parametrize("over", [0, 1])
def test_the_result_size_limit_is_the_views_to_the_bit(settings, user, min_size, smallest, over):
    """RESULT_MAX_BITS against the smallest registered device the job could
    run on (or its min_size when none is large enough): at the limit the lane
    writes it, one shot over it the view refuses it."""
    settings.RESULT_MAX_BITS = 16 * 20 * 10
    make_device("g-4", type="gate", size=4)
    make_device("g-16", type="gate", size=16)
    shots = settings.RESULT_MAX_BITS // smallest + over
    body = {"id": "edge", "priority": 5, "device_type": "gate", "min_size": min_size, "shots": shots}
    token = make_token(user)
    fast, slow, passed_on = _lane_and_django(lambda: _post(token, body))
    assert fast == slow
    assert (fast[0], passed_on) == (("201 Created", 0) if not over else ("400 Bad Request", 1))


def test_the_rate_limit_charges_each_token_to_its_own_user(settings, user, other_user):
    settings.THROTTLE_SUBMIT_RATE = "1/minute"
    tokens = {"alice": make_token(user), "bob": make_token(other_user)}
    lane = type(wsgi.application)(Recorder(), routes=wsgi.application.routes)
    answers = [
        (name, _call(lane, _post(tokens[name], {"id": f"{name}-{i}", "priority": 5, "device_type": "gate"}))[0])
        for i in range(2)
        for name in ("alice", "bob")
    ]
    assert answers == [
        ("alice", "201 Created"),
        ("bob", "201 Created"),
        ("alice", "429 Too Many Requests"),
        ("bob", "429 Too Many Requests"),
    ]
