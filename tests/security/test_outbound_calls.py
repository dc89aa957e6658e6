"""Callbacks and device calls: total deadlines against trickling peers, no
redirects, bounded answers, and nothing a peer wrote reaching the user."""

from __future__ import annotations

import time

import pytest

from devices.clients import DeviceError, DeviceRef, HttpQPU, JobPayload
from jobs.webhooks import callback_deliver
from tests.factories import make_device, make_job, make_program
from tests.helpers import wait_until
from tests.security.conftest import answer, hold, trickle

pytestmark = pytest.mark.django_db
SECRET = b"db-password=hunter2; internal build 4711"


@pytest.fixture(autouse=True)
def _local_peers(settings):
    settings.CALLBACK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.CALLBACK_TIMEOUT_SECONDS = 1


def device_at(url: str, size: int = 2) -> DeviceRef:
    return DeviceRef(id="qpu-x", type="analog", size=size, address=url)


JOB = JobPayload(key="j1", instructions=[], shots=1)


# --- total deadlines ------------------------------------------------------------


def test_a_receiver_trickling_its_status_line_is_cut_off_at_the_deadline(finished_job, peer):
    receiver = peer(trickle(every=0.2))  # one byte every 0.2 s: never idle for 1 s
    job = finished_job(receiver.url + "/hook")
    started = time.monotonic()
    assert callback_deliver(job_id=job.pk) == "pending"
    assert time.monotonic() - started < 10  # sanity bound only; the reason says it was the deadline
    job.refresh_from_db()
    assert job.callback_error == "timed out after 1 s"
    assert wait_until(receiver.cut_off.is_set, timeout=10)


def test_a_receiver_that_never_answers_times_out(finished_job, peer):
    receiver = peer(hold)
    job = finished_job(receiver.url + "/hook")
    callback_deliver(job_id=job.pk)
    job.refresh_from_db()
    assert job.callback_error == "timed out after 1 s" and receiver.got_request.is_set()


def test_a_device_trickling_its_answer_body_is_cut_off_at_the_deadline(peer):
    device = peer(trickle(b'HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n{"result": [', every=0.2))
    started = time.monotonic()
    with pytest.raises(DeviceError) as caught:
        HttpQPU(timeout=1).run(device=device_at(device.url), job=JOB)
    assert str(caught.value) == "device qpu-x: timed out after 1 s"
    assert time.monotonic() - started < 10
    assert wait_until(device.cut_off.is_set, timeout=10)


def test_a_device_trickling_its_headers_is_cut_off_too(peer):
    device = peer(trickle(every=0.2))
    with pytest.raises(DeviceError, match="timed out after 1 s"):
        HttpQPU(timeout=1).run(device=device_at(device.url), job=JOB)


def test_a_huge_device_answer_is_not_read_into_memory(peer):
    device = peer(answer(200, b"[" + b"0" * (3 * 1024 * 1024)))
    with pytest.raises(DeviceError) as caught:
        HttpQPU(timeout=5).run(device=device_at(device.url), job=JOB)
    assert str(caught.value) == "device qpu-x: answer too large"


# --- no redirects --------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirecting_receiver_is_not_followed(finished_job, peer, status):
    target = peer(answer(204))
    receiver = peer(answer(status, headers={"Location": target.url + "/elsewhere"}))
    job = finished_job(receiver.url + "/hook")
    assert callback_deliver(job_id=job.pk) == "pending"
    job.refresh_from_db()
    assert job.callback_error == f"receiver answered with a redirect (HTTP {status}), not followed"
    assert len(receiver.requests) == 1 and target.accepted == 0


def test_a_redirecting_device_is_not_followed(peer):
    target = peer(answer(200, b'{"result": ["01"]}'))
    device = peer(answer(307, headers={"Location": target.url + "/run"}))
    with pytest.raises(DeviceError) as caught:
        HttpQPU(timeout=5).run(device=device_at(device.url), job=JOB)
    assert str(caught.value) == "device qpu-x answered with a redirect (HTTP 307), not followed"
    assert target.accepted == 0


# --- what users get to read ------------------------------------------------------


def test_a_receivers_error_body_never_reaches_the_jobs_owner(api, finished_job, peer, user):
    receiver = peer(answer(500, SECRET))
    job = finished_job(receiver.url + "/hook", owner=user)
    callback_deliver(job_id=job.pk)
    body = api.get(f"/jobs/{job.key}").content
    assert b"receiver answered HTTP 500" in body
    assert b"hunter2" not in body and b"4711" not in body


@pytest.mark.parametrize(
    "status, body, reason",
    [
        (500, SECRET, "answered HTTP 500"),
        (200, SECRET, "answered invalid JSON"),
        (200, b'{"result": ["' + SECRET + b'"]}', "returned a bad shot 0, expected 2 bits of 0/1"),
        (200, b'{"result": "' + SECRET + b'"}', "returned no list of bit strings"),
        (409, SECRET, None),  # busy: handed back, tried again later
    ],
)
def test_a_devices_answer_never_reaches_the_jobs_owner(api, user, peer, settings, status, body, reason):
    from jobs.runner import Worker

    settings.JOB_MAX_ATTEMPTS = 1
    device = peer(answer(status, body))
    make_device("qpu-x", size=2, address=device.url)
    job = make_job(make_program(user, key="p"), key="j")
    Worker(listen=False).run_once()
    assert wait_until(lambda: device.got_request.is_set())
    response = api.get("/jobs/j").content
    assert b"hunter2" not in response and b"4711" not in response
    job.refresh_from_db()
    if reason:
        assert job.status == "failed" and job.error == f"device qpu-x {reason}"
