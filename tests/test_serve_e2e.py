"""End to end: `manage.py serve` as a real program, driven over real HTTP.

The service runs as a subprocess (waitress, and the QPU workers and the
django-q2 cluster with the VM scheduler loop as its supervised children,
exactly what `python3 dev.py run` starts) and is used the way
the brief's client uses it: JSON bodies sent with `curl -d`, i.e. labelled
`application/x-www-form-urlencoded`, to paths without a trailing slash.

Database choice:
- ``sqlite``: always runs, on a temporary SQLite file of its own, whatever
  DATABASE_URL the suite runs with (the subprocess gets its own DATABASE_URL
  and is migrated with `manage.py migrate`).
- ``postgres``: runs only when the suite itself runs on PostgreSQL (marked
  ``postgres``, so CI always runs it). The subprocess then uses the suite's
  PostgreSQL test database (``core.dburl.current_database_url``, set up by
  ``django_db(transaction=True)`` and flushed afterwards), which exercises
  SKIP LOCKED claims and LISTEN/NOTIFY wake-ups through the real program.

The priority check is deterministic: one job keeps the device busy, the
operator drains the device (it finishes that job and takes no more), jobs of
several programs with different priorities are submitted, and on resume the
device must start them strictly by priority, oldest first among equals.
"""

from __future__ import annotations

import json
from datetime import datetime

import pytest
import requests

from tests.e2e_helpers import ServeProcess, create_user_tokens, manage, service_env
from tests.helpers import wait_until

DEVICE = "e2e-qpu-1"
TYPE = "e2e-analog"
SIZE = 5
SIM_SECONDS = 0.2


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class Client:
    """The brief's client: `curl -H 'Authorization: Token T' -d '<json>' host/path`."""

    def __init__(self, base: str, token: str | None):
        self.base = base
        self.http = requests.Session()
        if token:
            self.http.headers["Authorization"] = f"Token {token}"

    def post(self, path: str, body: dict | None = None) -> requests.Response:
        data = json.dumps(body) if body is not None else None
        return self.http.post(
            self.base + path,
            data=data,
            timeout=10,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )

    def get(self, path: str) -> requests.Response:
        return self.http.get(self.base + path, timeout=10)


def _wait_job(client: Client, job_id: str, statuses: set[str], timeout: float) -> dict:
    """The job as last seen: in one of ``statuses``, or as it was at the timeout."""
    last: dict = {}

    def settled() -> bool:
        last.update(client.get(f"/jobs/{job_id}").json())
        return last["status"] in statuses

    wait_until(settled, timeout=timeout, interval=0.01)
    return last


@pytest.fixture
def service_database_url(request, tmp_path):
    if request.param == "postgres":
        # The django_db(transaction=True) mark of this variant has set up the
        # suite's test database (e.g. test_qa) and flushes it afterwards.
        from django.db import connection

        from core.dburl import current_database_url

        url = current_database_url()
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_database()")
            assert url.endswith("/" + cursor.fetchone()[0]), url
        assert connection.settings_dict["NAME"].startswith("test_"), url  # never a live database
        return url
    return f"sqlite:///{tmp_path / 'e2e.sqlite3'}"


@pytest.mark.slow
@pytest.mark.parametrize(
    "service_database_url",
    ["sqlite", pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.django_db(transaction=True)])],
    indirect=True,
)
def test_serve_runs_jobs_by_priority_over_http_and_stops_on_ctrl_c(service_database_url, tmp_path):
    env = service_env(service_database_url, DEVICE_SIM_SECONDS=str(SIM_SECONDS))
    if service_database_url.startswith("sqlite"):
        manage(env, "migrate", "--noinput", "-v", "0")
    tokens = create_user_tokens(env, ("e2e-operator", True), ("e2e-alice", False))

    service = ServeProcess(env, tmp_path / "serve.log")
    try:
        service.start()
        op = Client(service.base, tokens["e2e-operator"])
        me = Client(service.base, tokens["e2e-alice"])

        # The background roles run as supervised child processes.
        assert "role qpu-workers started" in service.log() and "role task-cluster started" in service.log(), (
            service.log()
        )

        # No token: 401, never a 500 or an HTML page.
        assert Client(service.base, None).get("/jobs").status_code == 401

        # The device joins the pool (the brief's `curl -d` registration).
        r = op.post("/devices", {"id": DEVICE, "address": "sim", "type": TYPE, "size": SIZE})
        assert r.status_code == 201, r.text
        assert r.json()["status"] == "online"

        # A job submitted while the device is idle starts at once (wake-up, not a poll).
        r = me.post(
            "/jobs",
            {
                "id": "blocker",
                "priority": 0,
                "user_id": "u-1",
                "program_id": "e2e-blocker",
                "device_type": TYPE,
                "instructions": [{"op": "h", "q": 0}],
            },
        )
        assert r.status_code == 201, r.text
        blocker = _wait_job(me, "blocker", {"running", "done", "failed"}, timeout=5)
        assert blocker["status"] in {"running", "done"}, blocker
        # While it runs, the operator drains the device: the job finishes, nothing new starts.
        r = op.post(f"/devices/{DEVICE}/drain")
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "draining"
        blocker = _wait_job(me, "blocker", {"done", "failed"}, timeout=10)
        assert blocker["status"] == "done", blocker

        # Several programs with different priorities, submitted while the device takes nothing.
        submitted = [  # (id, priority, program, shots, how)
            ("low-1", 1, "e2e-low", 1, "jobs"),
            ("mid-1", 5, "e2e-mid", 2, "jobs"),
            ("high-1", 9, "e2e-high", 3, "jobs"),
            ("mid-2", 5, "e2e-mid", 1, "jobs"),  # joins e2e-mid
            ("midb-1", 5, "e2e-mid-b", 3, "programs"),  # same priority, another program, later
            ("mid-3", 5, "e2e-mid", 2, "jobs"),  # joins e2e-mid again, latest of priority 5
        ]
        for job_id, priority, program, shots, how in submitted:
            if how == "jobs":
                r = me.post(
                    "/jobs",
                    {
                        "id": job_id,
                        "priority": priority,
                        "user_id": "u-1",
                        "program_id": program,
                        "device_type": TYPE,
                        "shots": shots,
                        "instructions": [{"op": "x", "q": 1}],
                    },
                )
            else:
                r = me.post(
                    "/programs",
                    {
                        "id": program,
                        "priority": priority,
                        "device_type": TYPE,
                        "user_id": "u-1",
                        "jobs": [{"id": job_id, "shots": shots, "instructions": ["h 0", "measure"]}],
                    },
                )
            assert r.status_code == 201, (job_id, r.text)
        expected_order = ["high-1", "mid-1", "mid-2", "midb-1", "mid-3", "low-1"]

        # A job whose device type differs from its program's: 409 naming the field.
        r = me.post("/jobs", {"id": "wrong-type", "priority": 5, "program_id": "e2e-mid", "device_type": "other"})
        assert r.status_code == 409 and "device_type" in r.json(), r.text

        # Nothing started while draining; the queue positions announce the order.
        positions = {}
        for job_id in expected_order:
            job = me.get(f"/jobs/{job_id}").json()
            assert job["status"] == "queued", job
            positions[job_id] = job["queue_position"]
        assert sorted(positions, key=positions.get) == expected_order, positions
        assert sorted(positions.values()) == list(range(1, len(expected_order) + 1)), positions

        r = op.post(f"/devices/{DEVICE}/resume")
        assert r.status_code == 200, r.text

        jobs = {job_id: _wait_job(me, job_id, {"done", "failed", "cancelled"}, timeout=15) for job_id in expected_order}
        shots_of = {job_id: shots for job_id, _, _, shots, _ in submitted}
        for job_id, job in jobs.items():
            assert job["status"] == "done", job
            assert job["device"] == DEVICE and job["attempts"] == 1 and job["error"] == "", job
            assert job["queue_position"] is None
            result = job["result"]
            assert isinstance(result, list) and len(result) == shots_of[job_id], job
            assert all(len(bits) == SIZE and set(bits) <= {"0", "1"} for bits in result), job

        # Strict priority order, oldest first among equals, one job at a time.
        started = sorted(jobs.values(), key=lambda j: _ts(j["started_at"]))
        assert [j["id"] for j in started] == expected_order
        # consecutive pairs: the shifted copy is one element shorter
        for before, after in zip(started, started[1:], strict=False):
            assert _ts(after["started_at"]) >= _ts(before["finished_at"]), (before, after)

        device = op.get(f"/devices/{DEVICE}").json()
        assert device["status"] == "online" and device["current_job"] is None, device
        assert device["jobs_done"] == len(expected_order) + 1, device
        shown_to_user = me.get(f"/devices/{DEVICE}").json()  # no address, no running job id
        assert shown_to_user["simulated"] is True and {"address", "current_job"}.isdisjoint(shown_to_user)

        # Ctrl-C: the whole program stops cleanly and promptly, nothing left
        # behind (requests still in progress are answered first:
        # config.http_server.stop_gracefully, tested in tests/test_http_server.py).
        me.http.close()
        op.http.close()
        code, took = service.interrupt(timeout=20)
        log = service.log()
        assert code == 0, log
        assert took < 20, log
        shutdown = log[log.rindex("stopping ...") :] if "stopping ..." in log else ""
        assert "stopped." in shutdown and "Traceback" not in shutdown, log
        assert wait_until(lambda: not service.group_alive(), timeout=5), (
            "processes of the service (django-q2 cluster?) outlived it"
        )
    finally:
        service.kill()
        print(f"---- serve log ({service.log_path}) ----\n{service.log()[-20000:]}")  # shown when the test fails
