"""A small run of `manage.py bench_queue`: every figure is produced and sane."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from core.dburl import current_database_url
from tests.e2e_helpers import manage
from tests.helpers import ROOT


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.timeout(330)  # its subprocess may take up to 300 s
@pytest.mark.django_db
def test_bench_queue_small_run_prints_all_figures(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": current_database_url(), "LOG_LEVEL": "WARNING"}
    out = manage(
        env,
        "bench_queue",
        "--queued",
        "3000",
        "--jobs",
        "300",
        "--enqueue-jobs",
        "10000",
        "--claim-samples",
        "50",
        "--wake-samples",
        "3",
        "--json",
        timeout=300,
    )
    figures = json.loads(out.strip().splitlines()[-1])
    for key in (
        "enqueue_per_s",
        "claims_per_s",
        "claim_p50_ms",
        "claim_p99_ms",
        "e2e_jobs_per_s",
        "wake_p50_ms",
        "wake_p99_ms",
    ):
        assert figures[key] > 0, key
    assert figures["claim_p50_ms"] <= figures["claim_p99_ms"]
    assert figures["wake_started"] == 3  # every submitted job started through a wake-up


def test_bench_queue_refuses_sqlite(settings, tmp_path):
    if not settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        pytest.skip("checks the SQLite refusal")
    out = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "bench_queue"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "SQLITE_PATH": str(tmp_path / "unused.sqlite3")},
    )
    assert out.returncode != 0 and "PostgreSQL" in out.stderr
