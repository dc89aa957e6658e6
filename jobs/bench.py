"""Queue benchmark (``manage.py bench_queue``): prints figures, asserts nothing.

Runs in a scratch database created next to the configured one (Django's test
database machinery: created, migrated, dropped at the end), so the real data is
never touched. Phases:

1. enqueue: ``POST /programs`` over real HTTP (waitress in-process), 10,000 jobs
   per request;
2. fill the queue up to ``--queued`` jobs with one INSERT ... SELECT;
3. claim latency and claims/s against that queue (the production claim SQL);
4. end to end: ``--jobs`` jobs on ``--devices`` zero-latency simulated devices
   run by the real ``Worker`` (one process, one thread per device), plus the
   free-device-to-next-start gap measured from the jobs' own timestamps;
5. wake-up: one idle device, a job submitted through ``POST /programs``; the
   time from the job's insert to its start (commit + NOTIFY + claim).
"""

from __future__ import annotations

import threading
import time

import requests
from django.db import connection

from jobs.models import new_webhook_secret


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


class Progress:
    def __init__(self, out):
        self.out = out

    def __call__(self, msg: str) -> None:
        if self.out is not None:
            self.out.write(msg + "\n")
            self.out.flush()


class _Api(requests.Session):
    """A session with the user's token that knows the API's base URL."""

    def __init__(self, user_token: str, base: str):
        super().__init__()
        self.headers["Authorization"] = f"Token {user_token}"
        self.base = base


def run_bench(
    *, queued: int, jobs: int, devices: int, enqueue_jobs: int, claim_samples: int, wake_samples: int, log=None
) -> dict:
    from django.contrib.auth import get_user_model
    from django.core.wsgi import get_wsgi_application
    from django.test import override_settings
    from rest_framework.authtoken.models import Token
    from waitress.server import create_server

    application = get_wsgi_application()

    say = Progress(log)
    figures: dict = {"queued": queued, "jobs": jobs, "devices": devices}
    user = get_user_model().objects.create_user(username="bench", password="bench-pass-1", is_staff=True)
    token = Token.objects.create(user=user).key
    server = create_server(application, host="127.0.0.1", port=0, threads=4)
    threading.Thread(target=server.run, daemon=True).start()
    api = _Api(token, f"http://127.0.0.1:{server.effective_port}")
    # The bench user is staff (no priority ceiling or queued cap); the
    # submission throttle would still count its hundreds of POSTs: off here.
    throttle_off = override_settings(THROTTLE_SUBMIT_RATE="")
    throttle_off.enable()
    try:
        figures.update(_enqueue(api, enqueue_jobs, say))
        _fill(user.id, queued, say)
        figures.update(_claims(claim_samples, say))
        figures.update(_end_to_end(user.id, jobs, devices, say))
        figures.update(_wake(api, wake_samples, say))
    finally:
        server.close()
        throttle_off.disable()
    return figures


def _enqueue(api, total: int, say) -> dict:
    per_request = 10_000
    requests_needed = max(1, total // per_request)
    say(f"enqueue: {requests_needed} x POST /programs with {per_request} jobs ...")
    started = time.perf_counter()
    for i in range(requests_needed):
        body = {
            "id": f"bench-enqueue-{i}",
            "priority": i % 10,
            "device_type": "bench",
            "jobs": [{"instructions": [{"op": "h", "q": j % 8}], "shots": 1} for j in range(per_request)],
        }
        r = api.post(api.base + "/programs", json=body, timeout=120)
        if r.status_code != 201:
            raise RuntimeError(f"POST /programs answered {r.status_code}: {r.text[:300]}")
    elapsed = time.perf_counter() - started
    rate = requests_needed * per_request / elapsed
    say(f"  {rate:,.0f} jobs/s")
    return {"enqueue_per_s": round(rate)}


def _fill(owner_id: int, queued: int, say) -> None:
    with connection.cursor() as c:
        c.execute("SELECT count(*) FROM jobs_job WHERE status = 'queued'")
        missing = queued - c.fetchone()[0]
    if missing > 0:
        say(f"fill: inserting {missing:,} queued jobs ...")
        _insert_jobs(owner_id, missing, "bench", "bench-fill", priorities=10)
    with connection.cursor() as c:
        # Fresh statistics, as autovacuum would have them on a long-lived queue.
        c.execute("VACUUM ANALYZE jobs_job")


def _make_device(device_id: str, type: str, size: int = 4) -> None:
    from django.utils import timezone

    from devices.models import Device

    now = timezone.now()
    Device.objects.update_or_create(
        id=device_id,
        defaults={
            "type": type,
            "size": size,
            "address": "sim",
            "status": "online",
            "registered_at": now,
            "last_seen_at": now,
            "runner": "",
        },
    )


def _claims(samples: int, say) -> dict:
    from devices.models import Device
    from jobs import claims

    say(f"claims: {samples} sequential claims against the full queue ...")
    _make_device("bench-claim", "bench")
    Device.objects.filter(pk="bench-claim").update(runner="bench")
    latencies = []
    for _ in range(samples):
        t = time.perf_counter()
        job = claims.job_claim(
            device_id="bench-claim", device_type="bench", device_size=4, runner="bench", lease_seconds=60
        )
        latencies.append((time.perf_counter() - t) * 1000)
        if job is None:
            break
        claims.job_finish(job_id=job.id, token=job.token, result=["0000"])
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    say(f"  claim p50 {p50:.2f} ms, p99 {p99:.2f} ms")

    # Throughput: 4 claimers at once (each its own device and connection), 3 s.
    threads: list[threading.Thread] = []
    counts: list[int] = []
    stop = threading.Event()

    def claimer(i: int) -> None:
        from django.db import connections

        device_id = f"bench-claim-{i}"
        n = 0
        try:
            while not stop.is_set():
                job = claims.job_claim(
                    device_id=device_id, device_type="bench", device_size=4, runner="bench", lease_seconds=60
                )
                if job is None:
                    break
                n += 1
                # Leave nothing running behind (a later phase would requeue it).
                claims.job_finish(job_id=job.id, token=job.token, result=["0000"])
        finally:
            counts.append(n)
            connections.close_all()

    for i in range(4):
        _make_device(f"bench-claim-{i}", "bench")
    Device.objects.filter(pk__startswith="bench-claim-").update(runner="bench")
    started = time.perf_counter()
    for i in range(4):
        threads.append(threading.Thread(target=claimer, args=(i,)))
        threads[-1].start()
    time.sleep(3)
    stop.set()
    for thread in threads:
        thread.join()
    rate = sum(counts) / (time.perf_counter() - started)
    Device.objects.filter(pk__startswith="bench-claim").delete()
    say(f"  {rate:,.0f} claims/s with 4 concurrent claimers (each claim followed by its result)")
    return {"claim_p50_ms": round(p50, 3), "claim_p99_ms": round(p99, 3), "claims_per_s": round(rate)}


def _insert_jobs(owner_id: int, n: int, device_type: str, key: str, *, priorities: int = 3) -> None:
    """One program of ``n`` queued jobs in one INSERT ... SELECT, priorities
    spread over 0..priorities-1 (much faster than the API for filling)."""
    with connection.cursor() as c:
        c.execute(
            "INSERT INTO jobs_program (key, owner_id, client_user_id, priority, device_type, callback_url, created_at,"
            " webhook_secret) VALUES (%s, %s, '', 0, %s, '', now(), %s) RETURNING id",
            [key, owner_id, device_type, new_webhook_secret()],
        )
        pid = c.fetchone()[0]
        c.execute(
            """
            INSERT INTO jobs_job (key, program_id, owner_id, priority, device_type, instructions, shots, status,
                                  attempts, created_at, error, lease_token, callback_status, callback_attempts, callback_error,
                                  requeues)
            SELECT %s || '-' || g, %s, %s, (g::bigint * 7919) %% %s, %s, '[]'::jsonb, 1, 'queued', 0, now(),
                   '', '', '', 0, '', 0
              FROM generate_series(1, %s) AS g
            """,
            [key, pid, owner_id, priorities, device_type, n],
        )


def _end_to_end(owner_id: int, jobs: int, devices: int, say) -> dict:
    from devices.clients import SimulatedQPU
    from jobs.models import Job
    from jobs.runner import Worker

    say(f"end to end: {jobs:,} jobs on {devices} zero-latency simulated devices ...")
    _insert_jobs(owner_id, jobs, "e2e", "e2e")
    for i in range(devices):
        _make_device(f"bench-e2e-{i}", "e2e")
    gaps: list[float] = []
    freed_at: dict[str, float] = {}

    class TimedQPU(SimulatedQPU):
        """Zero-latency device that measures, on the device's side, the time
        from handing back a result to receiving its next job."""

        def run(self, *, device, job):
            now = time.perf_counter()
            if device.id in freed_at:
                gaps.append((now - freed_at[device.id]) * 1000)
            result = super().run(device=device, job=job)
            freed_at[device.id] = time.perf_counter()
            return result

    worker = Worker(
        client_factory=lambda d, stop_event=None: TimedQPU(seconds=0, stop_event=stop_event),
        idle_wait=1,
        tick_seconds=0.5,
        listen=False,
    )
    thread = threading.Thread(target=worker.run, daemon=True)
    started = time.perf_counter()
    thread.start()
    while Job.objects.filter(device_type="e2e", status__in=["queued", "running"]).exists():
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    worker.stop()
    thread.join(timeout=30)
    done = Job.objects.filter(device_type="e2e", status="done").count()
    from devices.models import Device

    Device.objects.filter(pk__startswith="bench-e2e").delete()
    rate = done / elapsed
    say(f"  {rate:,.0f} jobs/s ({done:,} done in {elapsed:.1f} s, including device pick-up)")
    p50, p99 = percentile(gaps, 50), percentile(gaps, 99)
    say(f"  free device -> next job start (device side, under full load): p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    return {"e2e_jobs_per_s": round(rate), "free_next_p50_ms": round(p50, 3), "free_next_p99_ms": round(p99, 3)}


def _wake(api, samples: int, say) -> dict:
    import os
    import subprocess
    import sys

    from django.conf import settings

    from core.dburl import current_database_url
    from jobs.models import Job

    say(
        f"wake-up: {samples} jobs submitted through POST /programs to an idle device of a separate runworkers process ..."
    )
    _make_device("bench-wake", "wake")
    # The worker refuses to start without a key: it gets this process's (a
    # random one unless SECRET_KEY is set), which is all a benchmark needs.
    env = {
        **os.environ,
        "DATABASE_URL": current_database_url(),
        "DEVICE_SIM_SECONDS": "0",
        "LOG_LEVEL": "WARNING",
        "SECRET_KEY": settings.SECRET_KEY,
    }
    worker = subprocess.Popen(
        [sys.executable, str(settings.BASE_DIR / "manage.py"), "runworkers", "--no-task-cluster", "--no-vm-scheduler"],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    latencies = []
    try:
        deadline = time.monotonic() + 30
        from devices.models import Device

        while not Device.objects.filter(pk="bench-wake").exclude(runner="").exists():
            if time.monotonic() > deadline or worker.poll() is not None:
                raise RuntimeError("runworkers did not take the device")
            time.sleep(0.05)
        time.sleep(0.5)
        for i in range(samples):
            r = api.post(
                api.base + "/programs",
                json={"id": f"wake-{i}", "priority": 0, "device_type": "wake", "jobs": [{"id": f"wake-{i}-0"}]},
                timeout=30,
            )
            if r.status_code != 201:
                raise RuntimeError(f"POST /programs answered {r.status_code}: {r.text[:300]}")
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                job = Job.objects.filter(key=f"wake-{i}-0").values("created_at", "started_at").first()
                if job and job["started_at"]:
                    latencies.append((job["started_at"] - job["created_at"]).total_seconds() * 1000)
                    break
                time.sleep(0.002)
            time.sleep(0.05)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    say(f"  job insert -> start on the device: p50 {p50:.2f} ms, p99 {p99:.2f} ms ({len(latencies)}/{samples} started)")
    return {"wake_p50_ms": round(p50, 3), "wake_p99_ms": round(p99, 3), "wake_started": len(latencies)}


__all__ = ["run_bench", "percentile"]
