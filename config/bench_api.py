"""HTTP API benchmark (``manage.py bench_api``): prints figures, asserts nothing.

Against the real ``serve`` (a child process: waitress, workers, task cluster)
on a scratch PostgreSQL database, with ``wrk`` and 16 connections:

1. ``GET /healthz``: a trivial view, the ceiling of the stack;
2. ``POST /jobs``: the brief's single-job submission, every request a new id;
3. ``GET /jobs/<id>``: one of ``--queued`` queued jobs (random), with its exact
   queue position.

Each figure is requests/s and its ratio to the ceiling; a run where any answer
was not 2xx is reported as such (a benchmark of errors is no benchmark).

In rounds (``--rounds``, 3): each round measures the ceiling, then each
phase, and a closing ceiling follows the last round. A phase's ratio in a
round is its rate over the mean of the ceilings measured just before and
just after it; the figures printed are the medians over the rounds. Why:
on a shared 2-core machine the ceiling itself drifts by a quarter within
minutes, so a ratio against one measurement taken minutes earlier says as
much about the drift as about the API.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

import requests
from django.conf import settings

from config.http_server import free_local_port

POST_JOBS_LUA = """
local n = 0
local tid = 0
local counter = 0
function setup(thread) n = n + 1; thread:set("tid", n) end
function init(args) tid = tonumber(wrk.thread:get("tid")) or 0 end
request = function()
  counter = counter + 1
  local id = "wrk-" .. tid .. "-" .. counter .. "-" .. RUN
  local body = '{"id": "' .. id .. '", "priority": 5, "user_id": "u1", "program_id": "p-' .. id .. '", "device_type": "wrk"}'
  return wrk.format("POST", "/jobs", {["Authorization"] = TOKEN, ["Content-Type"] = "application/json"}, body)
end
"""

GET_JOB_LUA = """
math.randomseed(os.time())
request = function()
  local path = "/jobs/bench-fill-" .. math.random(1, QUEUED)
  return wrk.format("GET", path, {["Authorization"] = TOKEN})
end
"""


def wrk(url: str, *, script: str | None, seconds: int, connections: int, say) -> dict:
    """Run wrk; returns requests/s and the count of non-2xx/3xx answers."""
    args = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "--latency"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script or "")
    if script:
        args += ["-s", f.name]
    try:
        out = subprocess.run(args + [url], capture_output=True, text=True, timeout=seconds + 60).stdout
    finally:
        os.unlink(f.name)
    rate_line = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if rate_line is None:
        raise RuntimeError(f"wrk printed no Requests/sec line:\n{out}")
    rate = float(rate_line.group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    say(out.strip())
    return {
        "per_s": round(rate),
        "non_2xx": int(bad.group(1)) if bad else 0,
        "p50": p50.group(1) + p50.group(2) if p50 else "?",
    }


PHASES = ("healthz", "post_jobs", "get_job")


def run(
    *,
    database_url: str,
    queued: int,
    seconds: int,
    connections: int,
    token: str,
    say,
    phases: tuple[str, ...] = PHASES,
    serve_args: tuple[str, ...] = (),
    rounds: int = 3,
) -> dict:
    if not shutil.which("wrk"):
        raise RuntimeError("wrk is not installed (Debian: apt-get install wrk)")
    port = free_local_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "PYTHONUNBUFFERED": "1",
        "SECRET_KEY": os.environ.get("SECRET_KEY") or "bench-api-" + os.urandom(16).hex(),
        "THROTTLE_SUBMIT_RATE": "",
        "LOG_LEVEL": "WARNING",
        "DEBUG": "0",
    }
    log = open(Path(tempfile.gettempdir()) / "bench_api_serve.log", "w")
    proc = subprocess.Popen(
        [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "serve", "--port", str(port), *serve_args],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(base, proc)
        figures: dict[str, object] = {
            "queued": queued,
            "connections": connections,
            "seconds": seconds,
            "rounds": rounds,
        }

        def scripts():  # anew for every wrk run: each POST run submits ids of its own
            return {
                "healthz": ("/healthz", None),
                "post_jobs": ("/jobs", f'TOKEN = "Token {token}"\nRUN = "{time.time_ns()}"\n' + POST_JOBS_LUA),
                "get_job": ("/jobs/x", f'TOKEN = "Token {token}"\nQUEUED = {queued}\n' + GET_JOB_LUA),
            }

        results: dict[str, list[dict]] = {name: [] for name in phases}
        order = sorted(phases, key=PHASES.index)  # the ceiling first in every round
        for r in range(rounds):
            for name in order:
                path, script = scripts()[name]
                say(f"round {r + 1}, {name}: {path} ...")
                results[name].append(wrk(base + path, script=script, seconds=seconds, connections=connections, say=say))
        if "healthz" in phases:  # the closing ceiling: every phase has one before and one after it
            say("closing healthz ...")
            results["healthz"].append(
                wrk(base + "/healthz", script=None, seconds=seconds, connections=connections, say=say)
            )
        figures.update(summarize(results, rounds=rounds))
        figures["load_average"] = [round(x, 2) for x in os.getloadavg()]
        return figures
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def summarize(results: dict[str, list[dict]], *, rounds: int) -> dict[str, object]:
    """Medians over the rounds: requests/s per phase, and each phase's ratio
    to the mean of the ceilings measured just before and after it."""
    figures: dict[str, object] = {}
    for name, runs in results.items():
        figures[f"{name}_per_s"] = round(median(run["per_s"] for run in runs))
        figures[f"{name}_p50"] = runs[-1]["p50"]
        figures[f"{name}_non_2xx"] = sum(run["non_2xx"] for run in runs)
        figures[f"{name}_by_round"] = [run["per_s"] for run in runs]
    ceilings = [run["per_s"] for run in results.get("healthz", [])]
    if len(ceilings) == rounds + 1:
        for name in ("post_jobs", "get_job"):
            if name in results:
                by_round = [
                    round(run["per_s"] / ((ceilings[r] + ceilings[r + 1]) / 2), 3)
                    for r, run in enumerate(results[name])
                ]
                figures[f"{name}_ratio"] = round(median(by_round), 2)
                figures[f"{name}_ratio_by_round"] = by_round
    return figures


def _wait_until_up(base: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"serve exited ({proc.returncode}); see {tempfile.gettempdir()}/bench_api_serve.log")
        try:
            if requests.get(base + "/healthz", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError("serve did not answer within 60 s")
