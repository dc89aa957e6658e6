"""Issue 6, bounded work at the door: a job whose result (device size x shots
bits) could not be stored on any device it may run on is refused at
submission, naming ``shots`` and the cap; a device larger than
DEVICE_MAX_SIZE cannot register."""

from __future__ import annotations

import pytest

from jobs.models import Job
from tests.factories import make_device

pytestmark = pytest.mark.django_db


def program(jobs, device_type="analog"):
    return {"priority": 1, "device_type": device_type, "jobs": jobs}


def test_default_cap_refuses_the_largest_shots_on_the_largest_device(api, settings):
    assert settings.RESULT_MAX_BITS == 16_000_000 and settings.DEVICE_MAX_SIZE == 2048
    make_device("big", type="analog", size=1024)
    response = api.post("/programs", program([{"shots": 1}, {"shots": 100_000}]), format="json")
    assert response.status_code == 400, response.content
    message = response.json()["jobs[1].shots"][0]
    assert "16,000,000 bits" in message and "RESULT_MAX_BITS" in message and "at most 15,625 shots" in message
    assert not Job.objects.exists()  # nothing of the program was created
    assert api.post("/programs", program([{"shots": 15_625}]), format="json").status_code == 201


def test_programs_judge_each_job_by_the_smallest_device_it_can_run_on(api, settings):
    settings.RESULT_MAX_BITS = 100
    make_device("small", type="analog", size=4)
    make_device("large", type="analog", size=8)
    make_device("other", type="digital", size=1)
    # 20 shots fit the 4-qubit device (80 bits): accepted even though the 8-qubit one could not store it.
    assert api.post("/programs", program([{"shots": 20}]), format="json").status_code == 201
    # With min_size 5 only the 8-qubit device qualifies: 160 bits > 100.
    response = api.post("/programs", program([{"shots": 1}, {"shots": 20, "min_size": 5}]), format="json")
    assert response.status_code == 400
    message = response.json()["jobs[1].shots"][0]
    assert "at most 100 bits" in message and "8 qubits" in message and "at most 12 shots" in message
    assert api.post("/programs", program([{"shots": 12, "min_size": 5}]), format="json").status_code == 201


def test_without_a_registered_device_the_minimum_size_decides(api, settings):
    settings.RESULT_MAX_BITS = 100
    response = api.post("/programs", program([{"shots": 3, "min_size": 50}], "none-yet"), format="json")
    assert response.status_code == 400 and "jobs[0].shots" in response.json()
    assert "at least 50 qubit(s)" in response.json()["jobs[0].shots"][0]
    assert api.post("/programs", program([{"shots": 2, "min_size": 50}], "none-yet"), format="json").status_code == 201
    assert api.post("/programs", program([{"shots": 100}], "none-yet"), format="json").status_code == 201


def test_flat_jobs_are_refused_naming_shots_with_the_cap(api, settings):
    settings.RESULT_MAX_BITS = 1000
    make_device("d", type="analog", size=10)
    body = {"priority": 1, "device_type": "analog", "user_id": "u1", "program_id": "p1", "shots": 101}
    response = api.post("/jobs", body, format="json")
    assert response.status_code == 400, response.content
    assert "1,000 bits" in response.json()["shots"][0] and "at most 100 shots" in response.json()["shots"][0]
    assert not Job.objects.exists()
    assert api.post("/jobs", {**body, "shots": 100}, format="json").status_code == 201


def test_a_device_larger_than_the_maximum_size_cannot_register(staff_api, settings):
    body = {"id": "huge", "address": "sim", "type": "analog", "size": settings.DEVICE_MAX_SIZE + 1}
    response = staff_api.post("/devices", body, format="json")
    assert response.status_code == 400
    assert "DEVICE_MAX_SIZE" in response.json()["size"][0]
    settings.DEVICE_MAX_SIZE = 16
    assert staff_api.post("/devices", {**body, "size": 17}, format="json").status_code == 400
    assert staff_api.post("/devices", {**body, "size": 16}, format="json").status_code == 201
