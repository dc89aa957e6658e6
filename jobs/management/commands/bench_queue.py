"""Benchmark the QPU queue on PostgreSQL; prints figures (see docs/benchmarks.md)."""

from __future__ import annotations

import json
import sys

from django.core.management.base import BaseCommand, CommandError
from django.db import connection


class Command(BaseCommand):
    help = "Measure enqueue rate, claim latency at depth, end-to-end throughput and wake-up latency."

    def add_arguments(self, parser):
        parser.add_argument("--queued", type=int, default=1_000_000, help="queue depth for the claim figures")
        parser.add_argument("--jobs", type=int, default=20_000, help="jobs for the end-to-end figure")
        parser.add_argument("--devices", type=int, default=8, help="zero-latency simulated devices end to end")
        parser.add_argument("--enqueue-jobs", type=int, default=100_000, help="jobs sent through POST /programs")
        parser.add_argument("--claim-samples", type=int, default=2000)
        parser.add_argument("--wake-samples", type=int, default=100)
        parser.add_argument("--json", action="store_true", help="print one JSON object with the figures")
        parser.add_argument("--keepdb", action="store_true", help="keep the scratch database afterwards")

    def handle(self, *args, **o):
        from jobs.bench import run_bench

        if connection.vendor != "postgresql":
            raise CommandError("bench_queue measures PostgreSQL: set DATABASE_URL=postgres://...")
        creation = connection.creation
        old_name = connection.settings_dict["NAME"]
        log = sys.stderr if o["json"] else self.stdout
        log.write(f"creating scratch database test_{old_name} ...\n")
        creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
        try:
            figures = run_bench(
                queued=o["queued"],
                jobs=o["jobs"],
                devices=o["devices"],
                enqueue_jobs=o["enqueue_jobs"],
                claim_samples=o["claim_samples"],
                wake_samples=o["wake_samples"],
                log=log,
            )
        finally:
            if not o["keepdb"]:
                from django.db import connections

                connections.close_all()
                # Threads of the benchmark (HTTP server, workers) may still hold
                # sessions on the scratch database: end them so it can be dropped.
                with connection._nodb_cursor() as cursor:
                    cursor.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                        [connection.settings_dict["NAME"]],
                    )
                creation.destroy_test_db(old_name, verbosity=0)
        if o["json"]:
            self.stdout.write(json.dumps(figures))
        else:
            self.stdout.write("\n".join(f"{k:>18}: {v}" for k, v in figures.items()))
