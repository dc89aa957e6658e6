"""Benchmark the HTTP API against `serve` on PostgreSQL with wrk (docs/benchmarks.md)."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, connections


class Command(BaseCommand):
    help = "Requests/s of /healthz (ceiling), POST /jobs and GET /jobs/<id> with a deep queue, 16 connections."

    def add_arguments(self, parser):
        parser.add_argument("--queued", type=int, default=1_000_000)
        parser.add_argument("--seconds", type=int, default=10, help="per phase and round")
        parser.add_argument(
            "--rounds", type=int, default=3, help="rounds of all phases (the figures are medians over them)"
        )
        parser.add_argument("--connections", type=int, default=16)
        parser.add_argument("--json", action="store_true")
        parser.add_argument("--keepdb", action="store_true", help="keep (and reuse) the scratch database")
        parser.add_argument(
            "--phases",
            default="healthz,post_jobs,get_job",
            help="comma-separated subset of healthz, post_jobs, get_job",
        )
        parser.add_argument(
            "--no-workers", action="store_true", help="serve without workers (to tell their share of the cost apart)"
        )

    def handle(self, *args, **o):
        from django.contrib.auth import get_user_model
        from rest_framework.authtoken.models import Token

        from config import bench_api
        from jobs.bench import _fill

        phases = tuple(p.strip() for p in o["phases"].split(",") if p.strip())
        unknown = set(phases) - set(bench_api.PHASES)
        if unknown or not phases:
            raise CommandError(f"--phases: choose among {', '.join(bench_api.PHASES)}")
        if connection.vendor != "postgresql":
            raise CommandError("bench_api measures PostgreSQL: set DATABASE_URL=postgres://...")
        say = (lambda m: self.stderr.write(m)) if o["json"] else (lambda m: self.stdout.write(m))
        creation = connection.creation
        old_name = connection.settings_dict["NAME"]
        test_name = creation.create_test_db(
            verbosity=0, autoclobber=not o["keepdb"], keepdb=o["keepdb"], serialize=False
        )  # a kept 1M-job database is never dumped
        try:
            user, _ = get_user_model().objects.get_or_create(username="bench-api", defaults={"is_staff": True})
            token = Token.objects.get_or_create(user=user)[0].key
            _fill(user.id, o["queued"], say)
            url = _database_url(test_name)
            connections.close_all()
            figures = bench_api.run(
                database_url=url,
                queued=o["queued"],
                seconds=o["seconds"],
                connections=o["connections"],
                token=token,
                say=say,
                phases=phases,
                serve_args=("--no-workers",) if o["no_workers"] else (),
                rounds=max(1, o["rounds"]),
            )
        finally:
            connections.close_all()
            if not o["keepdb"]:
                with connection._nodb_cursor() as cursor:
                    cursor.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                        [test_name],
                    )
                creation.destroy_test_db(old_name, verbosity=0)
        self.stdout.write(json.dumps(figures) if o["json"] else "\n".join(f"{k:>20}: {v}" for k, v in figures.items()))


def _database_url(name: str) -> str:
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "") + "@" if s["USER"] else ""
    return f"postgres://{auth}{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{name}"
