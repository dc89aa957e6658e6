"""``bench_api``'s arithmetic: each phase's ratio is against the ceilings
measured just before and after it, and the figures are medians over rounds."""

from __future__ import annotations

from config.bench_api import summarize


def _runs(*rates):
    return [{"per_s": rate, "p50": "1ms", "non_2xx": 0} for rate in rates]


def test_ratios_use_the_bracketing_ceilings_and_the_median_round():
    figures = summarize(
        {
            "healthz": _runs(1000, 1200, 800, 1000),  # drifts between rounds
            "get_job": _runs(550, 500, 450),
            "post_jobs": _runs(100, 100, 100),
        },
        rounds=3,
    )
    # round 1: 550 / 1100, round 2: 500 / 1000, round 3: 450 / 900
    assert figures["get_job_ratio_by_round"] == [0.5, 0.5, 0.5]
    assert figures["get_job_ratio"] == 0.5
    assert figures["post_jobs_ratio_by_round"] == [0.091, 0.1, 0.111]
    assert figures["post_jobs_ratio"] == 0.1
    assert figures["healthz_per_s"] == 1000
    assert figures["get_job_per_s"] == 500
    assert figures["get_job_by_round"] == [550, 500, 450]


def test_without_the_ceiling_there_is_no_ratio():
    figures = summarize({"get_job": _runs(500)}, rounds=1)
    assert "get_job_ratio" not in figures
    assert figures["get_job_per_s"] == 500


def test_errors_are_counted_over_all_rounds():
    runs = _runs(10, 20)
    runs[1]["non_2xx"] = 3
    assert summarize({"get_job": runs}, rounds=2)["get_job_non_2xx"] == 3
