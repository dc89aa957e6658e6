"""Accuracy of estimated_start on a simulated mixed workload (docs/benchmarks.md)."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, connections


class Command(BaseCommand):
    help = "Run a simulated mixed workload and print the median/p90 absolute error of estimated_start."

    def add_arguments(self, parser):
        parser.add_argument("--jobs", type=int, default=400, help="measured jobs")
        parser.add_argument("--warmup", type=int, default=60, help="jobs run first to learn run times")
        parser.add_argument("--seed", type=int, default=8)
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **o):
        from django.contrib.auth import get_user_model

        from jobs import bench_estimates

        if connection.vendor != "postgresql":
            raise CommandError("bench_estimates runs the real workers on PostgreSQL: set DATABASE_URL=postgres://...")
        if not (1 <= o["jobs"] <= 100_000 and 0 <= o["warmup"] <= 100_000):
            raise CommandError("--jobs: 1 to 100,000; --warmup: 0 to 100,000")
        say = (lambda m: self.stderr.write(m)) if o["json"] else (lambda m: self.stdout.write(m))
        creation = connection.creation
        old_name = connection.settings_dict["NAME"]
        creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
        try:
            owner = get_user_model().objects.create(username="bench-estimates", is_staff=True)
            figures = bench_estimates.run(owner=owner, jobs=o["jobs"], warmup=o["warmup"], seed=o["seed"], say=say)
        finally:
            connections.close_all()
            creation.destroy_test_db(old_name, verbosity=0)
        self.stdout.write(json.dumps(figures) if o["json"] else "\n".join(f"{k:>22}: {v}" for k, v in figures.items()))
