"""Event metrics the apps record as things happen (Prometheus client).

Only events live here: counters and histograms observed by the process that
does the work. State (queue depth, devices, VMs, shortfalls) is read from the
database at scrape time by ``config.metrics``, so every web process reports
the same numbers whichever machine did the work.

Processes of one machine share their events when ``METRICS_DIR`` is set
(prometheus-client's multiprocess mode; ``serve`` sets it for its children):
the web process then sums every process's files on each scrape.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

# Seconds, from a few milliseconds to a day: queue waits and QPU runs both.
WAIT_BUCKETS = (0.005, 0.025, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 86400)

JOBS_FINISHED = Counter(
    "qpu_jobs_finished_total", "Jobs that reached done or failed, by device type.", ["device_type", "status"]
)
JOB_WAIT = Histogram(
    "qpu_job_claim_to_start_seconds",
    "From submission to the claim that started the run on a device (a retried job counts from its submission).",
    ["device_type"],
    buckets=WAIT_BUCKETS,
)
JOB_RUN = Histogram(
    "qpu_job_run_seconds", "From start on a device to the stored outcome.", ["device_type"], buckets=WAIT_BUCKETS
)
WEBHOOK_DELIVERIES = Counter(
    "qpu_webhook_deliveries_total",
    "Result deliveries to callback URLs: delivered, failed (will retry), gave_up, refused (address policy).",
    ["outcome"],
)


def job_finished(*, device_type: str, status: str, waited_s: float | None, ran_s: float | None) -> None:
    JOBS_FINISHED.labels(device_type=device_type, status=status).inc()
    if waited_s is not None:
        JOB_WAIT.labels(device_type=device_type).observe(max(0.0, waited_s))
    if ran_s is not None:
        JOB_RUN.labels(device_type=device_type).observe(max(0.0, ran_s))


def webhook_delivery(*, outcome: str) -> None:
    WEBHOOK_DELIVERIES.labels(outcome=outcome).inc()


def clear_metrics_dir() -> int:
    """Remove the event files of earlier runs from METRICS_DIR (counters of
    dead processes would otherwise be summed forever). ``serve`` calls it at
    start, before it forks; returns how many files went."""
    import os
    from pathlib import Path

    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return 0
    removed = 0
    for path in Path(directory).glob("*.db"):
        path.unlink(missing_ok=True)
        removed += 1
    return removed
