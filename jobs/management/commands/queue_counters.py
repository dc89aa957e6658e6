"""Check, rebuild or prune the queue counters (jobs.queue_counters, docs/operations.md)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from jobs import queue_counters


class Command(BaseCommand):
    help = "Queue counters (PostgreSQL): --check against a recount (exit 1 on drift), --rebuild, --prune."

    def add_arguments(self, parser):
        action = parser.add_mutually_exclusive_group(required=True)
        action.add_argument("--check", action="store_true", help="compare every counter with a recount")
        action.add_argument("--rebuild", action="store_true", help="recount every counter (writers wait meanwhile)")
        action.add_argument("--prune", action="store_true", help="delete the counters at zero")

    def handle(self, *args, **o):
        if not queue_counters.counters_kept():
            self.stdout.write("No queue counters on this database (SQLite counts positions directly).")
            return
        if o["rebuild"]:
            self.stdout.write(f"Rebuilt: {queue_counters.queue_counters_rebuild()} counters.")
        elif o["prune"]:
            self.stdout.write(f"Pruned: {queue_counters.queue_counters_prune()} counters at zero.")
        else:
            drift = queue_counters.queue_counters_drift()
            for d in drift:
                self.stdout.write(
                    f"{d.device_type} level {d.level} priority {d.priority} bucket {d.bucket}: "
                    f"counter {d.counted}, queued {d.actual}"
                )
            if drift:
                raise CommandError(f"{len(drift)} queue counters drifted; repair with --rebuild.")
            self.stdout.write("Queue counters match the queued jobs.")
