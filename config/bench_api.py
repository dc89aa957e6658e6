"""HTTP API benchmark (``manage.py bench_api``): prints figures, asserts nothing.

Against the real ``serve`` (a child process: waitress, workers, task cluster)
on a scratch PostgreSQL database, with ``wrk`` and 16 connections:

1. ``GET /healthz``: a trivial view, the ceiling of the stack;
2. ``POST /jobs``: the brief's single-job submission, every request a new id;
3. ``GET /jobs/<id>``: one of ``--queued`` queued jobs (random), with its exact
   queue position.

Each figure is requests/s and its ratio to the ceiling; a run where any answer
was not 2xx is reported as such (a benchmark of errors is no benchmark).
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
        figures: dict[str, object] = {"queued": queued, "connections": connections, "seconds": seconds}
        scripts = {
            "healthz": ("/healthz", None),
            "post_jobs": ("/jobs", f'TOKEN = "Token {token}"\nRUN = "{time.time_ns()}"\n' + POST_JOBS_LUA),
            "get_job": ("/jobs/x", f'TOKEN = "Token {token}"\nQUEUED = {queued}\n' + GET_JOB_LUA),
        }
        results = {}
        for name in phases:
            path, script = scripts[name]
            say(f"{name}: {path} ...")
            results[name] = r = wrk(base + path, script=script, seconds=seconds, connections=connections, say=say)
            figures[f"{name}_per_s"] = r["per_s"]
            figures[f"{name}_p50"] = r["p50"]
            figures[f"{name}_non_2xx"] = r["non_2xx"]
        if "healthz" in results:
            for name in ("post_jobs", "get_job"):
                if name in results:
                    figures[f"{name}_ratio"] = round(results[name]["per_s"] / results["healthz"]["per_s"], 2)
        figures["load_average"] = [round(x, 2) for x in os.getloadavg()]
        return figures
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


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
