"""How good is ``estimated_start``? (``manage.py bench_estimates``)

A simulated mixed workload on the real worker: device types with known
run-time distributions (log-normal around a median per type), devices of
several sizes, jobs of several priorities and ``min_size`` submitted in
random bursts through ``jobs.services.job_submit``. For each job the
estimate the API would have answered right after submission is recorded,
then compared with the job's actual start. Prints the median and p90 of the
absolute error, and the signed median (bias). Asserts nothing.

Devices are simulated in-process through ``Worker(client_factory=...)``: the
client sleeps for the job's drawn run time and returns bit strings.
"""

from __future__ import annotations

import random
import statistics
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TypedDict


class TypeWorkload(TypedDict):
    median: float  # run seconds
    sigma: float  # log-normal
    sizes: list[int]  # one device of each size


# Per device type: median run seconds, log-normal sigma, device sizes.
WORKLOAD: dict[str, TypeWorkload] = {
    "fast": {"median": 0.08, "sigma": 0.3, "sizes": [4, 4, 8]},
    "slow": {"median": 0.30, "sigma": 0.5, "sizes": [8, 16]},
    "mixed": {"median": 0.15, "sigma": 0.8, "sizes": [4, 16]},
}
MIN_SIZES = [None, None, 4, 8, 16]


class SimulatedDevice:
    """A device client whose run time follows its type's distribution."""

    def __init__(self, rng: random.Random, lock: threading.Lock, stop_event=None):
        self.rng, self.lock, self.stop_event = rng, lock, stop_event

    def run(self, *, device, job):
        spec = WORKLOAD[device.type]
        with self.lock:
            seconds = self.rng.lognormvariate(0, spec["sigma"]) * spec["median"]
        if self.stop_event is not None and self.stop_event.wait(seconds):
            raise RuntimeError("stopped")
        if self.stop_event is None:
            time.sleep(seconds)
        return ["0" * device.size for _ in range(job.shots)]


@dataclass
class Sample:
    key: str
    submitted: datetime
    estimate: datetime | None
    reason: str | None
    actual: datetime | None = None  # started_at, filled in at the end

    def started(self) -> datetime:
        if self.actual is None:
            raise RuntimeError(f"job {self.key} finished without a start time")
        return self.actual


def run(*, owner, jobs: int, warmup: int, seed: int, say) -> dict:
    from jobs.bench import _make_device
    from jobs.runner import Worker

    rng = random.Random(seed)
    lock = threading.Lock()
    for device_type, spec in WORKLOAD.items():
        for i, size in enumerate(spec["sizes"]):
            _make_device(f"est-{device_type}-{i}", device_type, size)
    worker = Worker(
        client_factory=lambda device, stop_event=None: SimulatedDevice(rng, lock, stop_event),
        listen=False,
        idle_wait=0.5,
    )
    thread = threading.Thread(target=worker.run, name="bench-estimates-worker", daemon=True)
    thread.start()
    try:
        say(f"warm-up: {warmup} jobs to learn run times ...")
        _submit_and_wait(owner, [_draw(rng) for _ in range(warmup)], rng, record=False)
        say(f"measured: {jobs} jobs in random bursts ...")
        samples = _submit_and_wait(owner, [_draw(rng) for _ in range(jobs)], rng, record=True)
    finally:
        worker.stop()
        thread.join(timeout=30)
    return _figures(samples)


def _draw(rng: random.Random) -> tuple[str, int, int | None]:
    device_type = rng.choice(list(WORKLOAD))
    largest = max(WORKLOAD[device_type]["sizes"])
    min_size = rng.choice([m for m in MIN_SIZES if m is None or m <= largest])
    return device_type, rng.randint(0, 3), min_size


def _submit_and_wait(owner, draws, rng: random.Random, *, record: bool) -> list[Sample]:
    from jobs.models import Job, JobStatus
    from jobs.selectors import job_queue_info
    from jobs.services import job_submit

    samples, keys = [], []
    index = 0
    while index < len(draws):
        burst = draws[index : index + rng.randint(1, 30)]
        index += len(burst)
        for device_type, priority, min_size in burst:
            job = job_submit(owner=owner, priority=priority, device_type=device_type, min_size=min_size)
            keys.append(job.key)
            if record:
                info = job_queue_info(job)
                samples.append(Sample(job.key, job.created_at, info.estimated_start, info.estimate_reason))
        time.sleep(rng.uniform(0.05, 0.6))
    deadline = time.monotonic() + 600
    while Job.objects.filter(key__in=keys).exclude(status__in=[JobStatus.DONE, JobStatus.FAILED]).exists():
        if time.monotonic() > deadline:
            raise RuntimeError("the simulated workload did not finish within 10 minutes")
        time.sleep(0.2)
    started = dict(Job.objects.filter(key__in=keys).values_list("key", "started_at"))
    for sample in samples:
        sample.actual = started[sample.key]
    return samples


def _figures(samples: list[Sample]) -> dict:
    estimated = [s for s in samples if s.estimate is not None]
    errors = [(s.started() - s.estimate).total_seconds() for s in estimated if s.estimate is not None]
    absolute = sorted(abs(e) for e in errors)
    waits = [(s.started() - s.submitted).total_seconds() for s in samples]
    figures = {
        "jobs": len(samples),
        "estimated": len(estimated),
        "not_estimated": len(samples) - len(estimated),
        "reasons": sorted({s.reason for s in samples if s.reason}),
        "median_abs_error_s": round(statistics.median(absolute), 3) if absolute else None,
        "p90_abs_error_s": round(absolute[min(len(absolute) - 1, int(0.9 * len(absolute)))], 3) if absolute else None,
        "median_signed_error_s": round(statistics.median(errors), 3) if errors else None,
        "median_actual_wait_s": round(statistics.median(waits), 3) if waits else None,
        "p90_actual_wait_s": round(sorted(waits)[min(len(waits) - 1, int(0.9 * len(waits)))], 3) if waits else None,
    }
    return figures
