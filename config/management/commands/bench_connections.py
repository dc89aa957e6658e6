"""Connection flood benchmark (docs/benchmarks.md, "Connection flood")."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from config.connection_bench import BenchError, ServeChild, run_connection_bench


class Command(BaseCommand):
    help = (
        "Hold N half-open connections against `serve` (started here on a scratch SQLite database, or --url "
        "on this machine) and time M normal authenticated requests meanwhile."
    )

    def add_arguments(self, parser):
        parser.add_argument("--half-open", type=int, default=1000, help="stalled connections to hold (max 20,000)")
        parser.add_argument("--requests", type=int, default=100, help="timed GET /devices calls per phase")
        parser.add_argument("--request-timeout", type=float, default=5.0, help="a call slower than this failed")
        parser.add_argument("--max-seconds", type=float, default=180.0, help="the whole run stops after this")
        parser.add_argument(
            "--close-wait",
            type=float,
            default=0.0,
            help="then wait up to this long for the server to close the stalled connections",
        )
        parser.add_argument("--url", help="a running server on a loopback address (needs --token)")
        parser.add_argument("--token", help="API token for --url")
        parser.add_argument("--database-url", help="database for the started serve (default: a scratch SQLite file)")
        parser.add_argument("--no-workers", action="store_true", help="start serve with --no-workers")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, url, token, database_url, no_workers, **options):
        as_json = options["json"]
        say = (lambda msg: None) if as_json else self.stdout.write
        bench = dict(
            half_open=options["half_open"],
            requests_count=options["requests"],
            request_timeout=options["request_timeout"],
            max_seconds=options["max_seconds"],
            close_wait=options["close_wait"],
            say=say,
        )
        if url and not token:
            raise CommandError("--url needs --token")
        child = None if url else ServeChild(database_url=database_url, no_workers=no_workers)
        try:
            if child is not None:
                token = child.prepare()
                url = child.start()
                say(f"serve started on {url}")
            figures = run_connection_bench(base_url=url, token=token, **bench)
        except BenchError as exc:
            raise CommandError(str(exc)) from None
        finally:
            if child is not None:
                child.stop()
        self.stdout.write(json.dumps(figures) if as_json else _table(figures))


def _table(f: dict) -> str:
    rows = [f"half-open connections held: {f.get('half_open_held', 0)} of {f['half_open_requested']}"]
    for phase in ("quiet", "flood"):
        if phase in f:
            p = f[phase]
            rows.append(
                f"{phase:>5}: answered {p['answered']}/{p['attempted']} (planned {p['planned']}), "
                f"p50 {p['p50_ms']} ms, p99 {p['p99_ms']} ms, max {p['max_ms']} ms"
                + (f", first failure: {p['first_failure']}" if p["first_failure"] else "")
            )
    if "closed_by_server" in f:
        rows.append(f"closed by the server: {f['closed_by_server']} (all after {f['all_closed_after_s']} s)")
    return "\n".join(rows)
