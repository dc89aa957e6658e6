"""A small run of `manage.py bench_estimates`: it runs, and every job of the
workload gets an estimate or a reason (accuracy figures: docs/benchmarks.md)."""

from __future__ import annotations

import json

import pytest

from core.dburl import current_database_url
from jobs.bench_estimates import Sample, _figures
from tests.e2e_helpers import manage


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.timeout(330)  # its subprocess may take up to 300 s
@pytest.mark.django_db
def test_bench_estimates_small_run_prints_its_figures():
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": current_database_url(), "LOG_LEVEL": "WARNING"}
    out = manage(env, "bench_estimates", "--jobs", "20", "--warmup", "6", "--json", timeout=300)
    figures = json.loads(out.strip().splitlines()[-1])
    assert figures["jobs"] == 20 and figures["estimated"] + figures["not_estimated"] == 20
    assert figures["estimated"] > 0 and figures["median_abs_error_s"] >= 0


def test_the_figures_are_the_median_and_p90_of_the_absolute_errors():
    from datetime import datetime, timedelta, timezone

    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    errors = [-3, -1, 0, 1, 2, 5, 8, 9, 10, 20]
    samples = [Sample(f"j{i}", t0, t0, None, t0 + timedelta(seconds=e)) for i, e in enumerate(errors)]
    samples.append(Sample("x", t0, None, "No online 'a' device can run it now.", t0))
    figures = _figures(samples)
    assert figures["estimated"] == 10 and figures["not_estimated"] == 1
    assert figures["median_abs_error_s"] == 4  # |errors| sorted: 0 1 1 2 3 5 8 9 10 20
    assert figures["p90_abs_error_s"] == 20
    assert figures["median_signed_error_s"] == 3.5
    assert figures["reasons"] == ["No online 'a' device can run it now."]
