"""Run the VM scheduler.

The live loop is ``vms.tasks.vm_loop_run``, the one the task cluster runs as
a chained django-q2 task; this command is its other way in, a process of its
own (see vms/tasks.py).

    python manage.py schedule_vms                  # the live loop alone (Ctrl-C / SIGTERM stops it cleanly)
    python manage.py schedule_vms --once           # one pass, then exit
    python manage.py schedule_vms --simulate SCENARIO.json --report REPORT.json
    python manage.py schedule_vms --make-scenario 24 --days 3 --vms 20000 --out big.json
"""

from __future__ import annotations

import json
import sys
import threading
from datetime import datetime

from django.core.management.base import BaseCommand, CommandError

from core.secret_key import require_configured_secret_key
from core.stopping import install_stop_signals
from vms import signals
from vms.planner import from_ms
from vms.scheduler import live_scheduler
from vms.simulation import Progress, ScenarioError, load_scenario, make_scenario, simulate
from vms.tasks import vm_loop_run


class Command(BaseCommand):
    help = "Provision exam VMs: the live scheduler loop, one pass, or a simulation of a scenario."

    def add_arguments(self, parser):
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--once", action="store_true", help="Do one pass (the calls due now), then exit.")
        mode.add_argument("--simulate", metavar="SCENARIO.json", help="Simulate a scenario on a virtual clock.")
        mode.add_argument("--make-scenario", metavar="N_EXAMS", type=int, help="Write a random scenario with N exams.")
        parser.add_argument(
            "--report", metavar="REPORT.json", help="With --simulate: where to write the report ('-' for stdout)."
        )
        parser.add_argument(
            "--seed", type=int, default=None, help="Seed (uuids of a simulation; the generated scenario)."
        )
        parser.add_argument("--quiet", action="store_true", help="With --simulate: no progress line.")
        parser.add_argument(
            "--days", type=int, default=3, help="With --make-scenario: days the exams span (default 3)."
        )
        parser.add_argument(
            "--vms", type=int, default=None, help="With --make-scenario: total students (= VMs) to aim for."
        )
        parser.add_argument("--changes", type=int, default=0, help="With --make-scenario: number of random changes.")
        parser.add_argument("--start", default=None, help="With --make-scenario: first day (ISO date, UTC).")
        parser.add_argument("--out", default=None, help="With --make-scenario: output file (default stdout).")

    def handle(self, *args, **opts):
        if opts["make_scenario"] is not None:
            return self._make(opts)
        if opts["simulate"]:
            return self._simulate(opts)
        if opts["report"]:
            raise CommandError("--report goes with --simulate")
        if opts["once"]:
            return self._once()
        return self._live()

    def _make(self, opts):
        start = None
        if opts["start"]:
            try:
                start = datetime.fromisoformat(opts["start"])
            except ValueError:
                raise CommandError(f"--start: {opts['start']!r} is not an ISO date") from None
            if start.tzinfo is None:
                from datetime import timezone

                start = start.replace(tzinfo=timezone.utc)
        try:
            scenario = make_scenario(
                opts["make_scenario"],
                days=opts["days"],
                vms=opts["vms"],
                changes=opts["changes"],
                seed=1 if opts["seed"] is None else opts["seed"],
                start=start,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        text = json.dumps(scenario, indent=1)
        if opts["out"] and opts["out"] != "-":
            with open(opts["out"], "w", encoding="utf-8") as fh:
                fh.write(text + "\n")
            total = sum(e["students"] for e in scenario["exams"])
            self.stdout.write(
                f"wrote {opts['out']}: {len(scenario['exams'])} exams, {total} students, {len(scenario['changes'])} changes"
            )
        else:
            self.stdout.write(text)

    def _simulate(self, opts):
        if not opts["report"]:
            raise CommandError("--simulate needs --report REPORT.json (or --report -)")
        try:
            scenario = load_scenario(opts["simulate"])
        except ScenarioError as exc:
            raise CommandError(exc.message) from None
        progress = Progress(enabled=False if opts["quiet"] else None)
        report = simulate(scenario, seed=opts["seed"] or 0, progress=progress)
        text = json.dumps(report, indent=None, separators=(",", ":"))
        if opts["report"] == "-":
            self.stdout.write(text)
        else:
            with open(opts["report"], "w", encoding="utf-8") as fh:
                fh.write(text + "\n")
        s = report["summary"]
        short = [e for e in report["exams"] if e["shortfall"]]
        lines = [
            f"simulated {s['simulated_from']} .. {s['simulated_until']} in {s['wall_seconds']} s ({s['database']})",
            f"calls {s['calls']}: {s['starts']} starts, {s['stops']} stops, {s['assigns']} assigns, "
            f"{s['rate_limited']} rate-limited, {s['errors']} errors; {s['vms']} VMs, {s['never_stopped']} never stopped",
            f"exams {len(report['exams'])}: {len(short)} with a shortfall"
            + (
                ": "
                + ", ".join(
                    f"#{e['id']} {e['ready_at_start']}/{e['students_at_start']} ({e.get('shortfall_cause') or 'cause unknown'})"
                    for e in short
                )
                if short
                else ""
            )
            + f"; surplus at start {s['surplus_at_start']}; vm_seconds {report['vm_seconds']:.0f}",
        ]
        stream = self.stderr if opts["report"] == "-" else self.stdout
        for line in lines:
            stream.write(line)

    def _once(self):
        scheduler = live_scheduler()
        try:
            due = scheduler.run_pass()
            acted = scheduler.lock.held
        finally:
            scheduler.close()
        if not acted:
            self.stdout.write("another VM scheduler holds the lock: nothing done")
            return
        s = scheduler.stats
        self.stdout.write(
            f"pass done: {s.starts} starts, {s.stops} stops, {s.assigns} assigns, {s.rate_limited} rate-limited, "
            f"{s.errors} errors; next due {from_ms(due).isoformat() if due else 'nothing'}"
        )

    def _live(self):
        require_configured_secret_key(stderr=self.stderr)  # the service; --once and --simulate are one-offs
        stop_event = threading.Event()
        install_stop_signals(stop_event, on_stop=signals.wake_local)
        self.stdout.write("VM scheduler running (Ctrl-C to stop)")
        sys.stdout.flush()
        scheduler = vm_loop_run(stop_event=stop_event)  # as a standby while another scheduler holds the lock
        s = scheduler.stats
        self.stdout.write(
            f"VM scheduler stopped: {s.starts} starts, {s.stops} stops, {s.assigns} assigns in {s.passes} passes"
        )
