"""Time the pure planner on many exams: ``manage.py bench_planner [--exams 1000] [--json]``.

Exams are random but reproducible (``--seed``): ``--per-day`` exams a day
starting 08:00-17:00, up to ``--students`` each, so dense days reach back
across many others. ``--vms`` adds that many live VMs (fresh ones of the
first exams, some in the provider's queue) to show the O(live VMs) part.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from datetime import datetime, timezone

from django.core.management.base import BaseCommand, CommandError

from vms.planner import ExamIn, PlannerConfig, VmIn, plan, to_ms

H = 3_600_000


def make_inputs(*, exams: int, per_day: int, students: int, vms: int, seed: int):
    rng = random.Random(seed)
    now = to_ms(datetime(2030, 1, 7, tzinfo=timezone.utc))
    out = []
    for i in range(exams):
        day = 1 + i // per_day
        start = now + day * 24 * H + 8 * H + rng.randrange(0, 18) * H // 2
        out.append(
            ExamIn(
                id=i + 1, start_ms=start, end_ms=start + rng.choice([1, 2, 3]) * H, students=rng.randint(1, students)
            )
        )
    live = []
    interval = 6_000
    for j in range(vms):
        exam = out[j % min(len(out), 20)]
        ready = now - interval * (vms - j)
        live.append(VmIn(id=j + 1, exam_id=exam.id, requested_ms=ready - interval, ready_ms=ready))
    return out, live, now


class Command(BaseCommand):
    help = "Measure how long planning takes (p50 / max over repeats)."

    def add_arguments(self, parser):
        parser.add_argument("--exams", type=int, default=1000, help="Number of exams (default 1000).")
        parser.add_argument("--students", type=int, default=2500, help="Most students per exam (default 2500).")
        parser.add_argument("--per-day", type=int, default=24, help="Exams per day (default 24).")
        parser.add_argument("--vms", type=int, default=0, help="Live VMs in the input (default 0).")
        parser.add_argument("--repeats", type=int, default=20, help="Timed runs (default 20).")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--json", action="store_true", help="Print one JSON object.")
        parser.add_argument(
            "--preview",
            action="store_true",
            help="Time a what-if preview instead (POST /exams/preview: one exam enlarged, plans before and after, compared).",
        )

    def handle(self, *args, **opts):
        if opts["exams"] < 1 or opts["repeats"] < 1 or opts["per_day"] < 1 or opts["students"] < 1 or opts["vms"] < 0:
            raise CommandError("--exams, --repeats, --per-day and --students must be positive, --vms not negative")
        exams, vms, now = make_inputs(
            exams=opts["exams"], per_day=opts["per_day"], students=opts["students"], vms=opts["vms"], seed=opts["seed"]
        )
        config = PlannerConfig()
        run = lambda: plan(exams=exams, vms=vms, now_ms=now, config=config)  # noqa: E731
        if opts["preview"]:
            from vms.preview import ExamChange, exam_changes_impact

            target = exams[len(exams) // 2]
            changes = [ExamChange("update", target.id, {"students": target.students + 100})]

            def run():
                exam_changes_impact(exams=exams, vms=vms, now_ms=now, config=config, changes=changes)
                return plan(exams=exams, vms=vms, now_ms=now, config=config) if result is None else result

        result = None
        result = run()  # warm-up
        times, cpu = [], []
        for _ in range(opts["repeats"]):
            t0, c0 = time.perf_counter(), time.process_time()
            result = run()
            times.append((time.perf_counter() - t0) * 1000)
            # CPU time too: on a shared machine wall time mostly measures the neighbours
            cpu.append((time.process_time() - c0) * 1000)
        figures = {
            "exams": len(exams),
            "students": sum(e.students for e in exams),
            "live_vms": len(vms),
            "planned_requests": result.total_requests,
            "runs": len(result.runs),
            "exams_short": sum(1 for e in result.exams if e.shortfall),
            "what": "preview (two plans + comparison)" if opts["preview"] else "plan",
            "repeats": len(times),
            "p50_ms": round(statistics.median(times), 3),
            "max_ms": round(max(times), 3),
            "mean_ms": round(statistics.fmean(times), 3),
            "cpu_p50_ms": round(statistics.median(cpu), 3),
        }
        if opts["json"]:
            self.stdout.write(json.dumps(figures))
            return
        self.stdout.write(
            f"planned {figures['exams']} exams ({figures['students']:,} students, {figures['live_vms']:,} live VMs): "
            f"{figures['planned_requests']:,} requests in {figures['runs']} runs, {figures['exams_short']} exams short\n"
            f"{figures['what']} time over {figures['repeats']} runs: p50 {figures['p50_ms']:.2f} ms, max {figures['max_ms']:.2f} ms, "
            f"mean {figures['mean_ms']:.2f} ms; CPU p50 {figures['cpu_p50_ms']:.2f} ms"
        )
