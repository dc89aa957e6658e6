"""Honest queue feedback (issue 8, point 4): warnings for jobs no registered
device can run, ?require_device=true, estimated_start and its reason."""

from __future__ import annotations

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from jobs import estimates
from jobs.estimates import DeviceSlot, estimate_start
from jobs.models import Job, JobStatus, Program
from tests.factories import make_device, make_job, make_program

pytestmark = pytest.mark.django_db

FLAT = {"priority": 3, "device_type": "analog"}
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=dt_timezone.utc)


# --- warnings -------------------------------------------------------------------


def test_a_job_of_a_type_with_no_device_is_accepted_with_a_warning_on_post_and_get(api):
    response = api.post("/jobs", {**FLAT, "id": "j1", "device_type": "photonic"}, format="json")
    assert response.status_code == 201
    [warning] = response.json()["warnings"]
    assert "No device of type 'photonic' is registered" in warning
    assert api.get("/jobs/j1").json()["warnings"] == [warning]


def test_min_size_above_every_registered_device_is_a_warning_naming_both_sizes(api):
    make_device(type="analog", size=4, status="offline")
    make_device(type="analog", size=6)
    body = api.post("/jobs", {**FLAT, "id": "big", "min_size": 9}, format="json").json()
    [warning] = body["warnings"]
    assert "at least 9 qubits" in warning and "has 6" in warning


def test_a_job_some_registered_device_can_run_has_no_warning_even_if_that_device_is_offline(api):
    make_device(type="analog", size=8, status="offline")
    body = api.post("/jobs", {**FLAT, "id": "ok", "min_size": 8}, format="json").json()
    assert body["warnings"] == []


def test_the_warning_goes_once_the_job_is_no_longer_queued(api, user):
    job = make_job(make_program(user, device_type="nowhere"), status=JobStatus.CANCELLED)
    assert api.get(f"/jobs/{job.key}").json()["warnings"] == []


def test_a_program_gets_its_warnings_once_and_each_job_its_own(api):
    make_device(type="analog", size=4)
    body = {**FLAT, "id": "p1", "jobs": [{"id": "a"}, {"id": "b", "min_size": 5}, {"id": "c", "min_size": 7}]}
    response = api.post("/programs", body, format="json")
    assert response.status_code == 201
    [warning] = response.json()["warnings"]
    assert warning.startswith("2 of 3 jobs need more qubits (min_size up to 7)") and "(4)" in warning
    assert api.get("/jobs/a").json()["warnings"] == []
    assert "at least 5 qubits" in api.get("/jobs/b").json()["warnings"][0]


def test_a_program_of_a_type_with_no_device_says_so(api):
    response = api.post("/programs", {**FLAT, "device_type": "none", "jobs": [{}, {}]}, format="json")
    assert response.status_code == 201
    assert response.json()["warnings"] == ["No device of type 'none' is registered: the job waits until one is."]


# --- ?require_device=true -------------------------------------------------------------


def test_require_device_refuses_a_job_of_a_type_with_no_device_and_creates_nothing(api):
    response = api.post("/jobs?require_device=true", {**FLAT, "id": "j1", "program_id": "p"}, format="json")
    assert response.status_code == 409
    assert "No device of type 'analog'" in response.json()["device_type"][0]
    assert not Job.objects.exists() and not Program.objects.exists()


def test_require_device_refuses_min_size_above_all_devices_naming_min_size(api):
    make_device(type="analog", size=4)
    response = api.post("/jobs?require_device=true", {**FLAT, "min_size": 5}, format="json")
    assert response.status_code == 409 and "at least 5 qubits" in response.json()["min_size"][0]
    response = api.post("/programs?require_device=1", {**FLAT, "jobs": [{}, {"min_size": 5}]}, format="json")
    assert response.status_code == 409 and "1 of 2 jobs" in response.json()["jobs[1].min_size"][0]
    assert not Job.objects.exists()


def test_require_device_accepts_what_a_device_can_run(api):
    make_device(type="analog", size=4)
    assert api.post("/jobs?require_device=true", {**FLAT, "min_size": 4}, format="json").status_code == 201
    assert api.post("/programs?require_device=true", {**FLAT, "jobs": [{}]}, format="json").status_code == 201


def test_require_device_must_be_a_boolean(api):
    response = api.post("/jobs?require_device=maybe", FLAT, format="json")
    assert response.status_code == 400 and "require_device" in response.json()
    assert not Job.objects.exists()


# --- estimated_start through the API ------------------------------------------------------


def _finished(program, *, seconds: float, n: int, now):
    for i in range(n):
        make_job(
            program,
            status=JobStatus.DONE,
            started_at=now - timedelta(seconds=seconds * (i + 2)),
            finished_at=now - timedelta(seconds=seconds * (i + 1)),
        )


def test_a_queued_job_gets_an_estimated_start_from_history_and_online_devices(api, user):
    now = timezone.now()
    make_device("d1", type="analog", size=4)
    make_device("d2", type="analog", size=4)
    program = make_program(user, priority=1)
    _finished(program, seconds=10, n=5, now=now)
    for i in range(5):
        make_job(program, key=f"q{i}")
    body = api.get("/jobs/q4").json()  # position 5, two idle devices: rounds 2, so about 20 s ahead
    assert body["queue_position"] == 5 and body["estimated_start_reason"] is None
    wait = (parse_datetime(body["estimated_start"]) - now).total_seconds()
    assert 19 <= wait <= 25


def test_no_history_gives_a_null_estimate_with_the_reason(api, user):
    make_device(type="analog", size=4)
    job = make_job(make_program(user))
    body = api.get(f"/jobs/{job.key}").json()
    assert body["estimated_start"] is None
    assert body["estimated_start_reason"] == "No 'analog' job has finished yet to learn run times from."


def test_no_online_device_able_to_run_it_gives_a_null_estimate_with_the_reason(api, user):
    now = timezone.now()
    make_device(type="analog", size=4, status="draining")
    make_device(type="analog", size=2)
    program = make_program(user)
    _finished(program, seconds=3, n=2, now=now)
    job = make_job(program, min_size=3)
    body = api.get(f"/jobs/{job.key}").json()
    assert body["estimated_start"] is None
    assert body["estimated_start_reason"] == "No online 'analog' device with at least 3 qubits can run it now."


def test_jobs_not_queued_have_neither_estimate_nor_reason(api, user):
    job = make_job(make_program(user), status=JobStatus.RUNNING)
    body = api.get(f"/jobs/{job.key}").json()
    assert body["queue_position"] is None and body["estimated_start"] is None
    assert body["estimated_start_reason"] is None and body["warnings"] == []


def test_the_median_reads_only_the_last_finished_jobs_of_the_type(user, settings):
    settings.JOB_ESTIMATE_SAMPLE_JOBS = 3
    now = timezone.now()
    program = make_program(user)
    other = make_program(user, device_type="other")
    # Older, slow jobs fall outside the sample of 3; another type never counts.
    for i, seconds in enumerate([100, 100, 100, 4, 6, 5]):
        finished = now - timedelta(minutes=10 - i)
        make_job(program, status=JobStatus.DONE, started_at=finished - timedelta(seconds=seconds), finished_at=finished)
    make_job(other, status=JobStatus.DONE, started_at=now - timedelta(seconds=50), finished_at=now)
    make_job(program, status=JobStatus.FAILED, started_at=now - timedelta(seconds=900), finished_at=now)
    assert estimates.recent_run_seconds("analog") == 5
    assert estimates.recent_run_seconds("nothing") is None


# --- the estimate's arithmetic on injected history -------------------------------------------


def test_idle_devices_take_the_first_jobs_at_once():
    devices = [DeviceSlot(size=4, online=True), DeviceSlot(size=4, online=True)]
    for position, wait in [(1, 0), (2, 0), (3, 10), (4, 10), (5, 20)]:
        estimate = estimate_start(
            device_type="a", position=position, min_size=None, shots=1, devices=devices, run_seconds=10, now=T0
        )
        assert estimate.start == T0 + timedelta(seconds=wait), position


def test_busy_devices_free_up_when_their_current_job_has_run_its_median():
    devices = [
        DeviceSlot(size=4, online=True, running_since=T0 - timedelta(seconds=7)),  # free in 3 s
        DeviceSlot(size=4, online=True, running_since=T0 - timedelta(seconds=1)),  # free in 9 s
        DeviceSlot(size=4, online=True, running_since=T0 - timedelta(seconds=60)),  # overdue: free now
    ]
    waits = [
        estimate_start(
            device_type="a", position=p, min_size=None, shots=1, devices=devices, run_seconds=10, now=T0
        ).start
        - T0
        for p in range(1, 7)
    ]
    assert [w.total_seconds() for w in waits] == [0, 3, 9, 10, 13, 19]


def test_only_online_devices_large_enough_count():
    devices = [DeviceSlot(size=2, online=True), DeviceSlot(size=8, online=False), DeviceSlot(size=8, online=True)]
    estimate = estimate_start(device_type="a", position=3, min_size=5, shots=1, devices=devices, run_seconds=4, now=T0)
    assert estimate.start == T0 + timedelta(seconds=8)  # one able device: two jobs ahead of it


def test_a_device_whose_result_could_not_hold_the_shots_does_not_count(settings):
    settings.RESULT_MAX_BITS = 100
    devices = [DeviceSlot(size=50, online=True)]  # 50 x 3 shots > 100 bits
    estimate = estimate_start(
        device_type="a", position=1, min_size=None, shots=3, devices=devices, run_seconds=1, now=T0
    )
    assert estimate.start is None and "can run it" in estimate.reason


def test_the_run_time_median_is_cached_briefly(user, settings, django_assert_num_queries):
    settings.JOB_ESTIMATE_CACHE_SECONDS = 60
    estimates.cached_run_seconds("analog")
    with django_assert_num_queries(0):
        assert estimates.cached_run_seconds("analog") is None
    settings.JOB_ESTIMATE_CACHE_SECONDS = 0
    with django_assert_num_queries(1):
        estimates.cached_run_seconds("analog")
