"""The whole service in one program: API + admin on waitress in this
process, and the roles of ``runworkers`` (the QPU workers; the django-q2
cluster, which runs the VM scheduler loop) as supervised child processes,
restarted with backoff when one dies (config/supervisor.py).

The HTTP server's configuration (connection limit, idle and request-read
timeouts, poll loop, open-files limit, trusted proxy, heap freeze) and why:
config/http_server.py."""

from __future__ import annotations

import logging
import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from config.supervisor import Supervisor, service_roles, supervisor_options
from core.metrics import clear_metrics_dir
from core.secret_key import require_configured_secret_key

# How long a stop waits for the requests in progress to be answered.
HTTP_STOP_GRACE_SECONDS = 10.0

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Serve the HTTP API and admin on a production WSGI server and run every worker, until Ctrl-C."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--threads", type=int, default=None, help="HTTP worker threads (default: HTTP_THREADS)")
        parser.add_argument("--no-workers", action="store_true", help="HTTP only (workers run elsewhere)")

    def handle(self, *args, host: str, port: int, threads: int | None, no_workers: bool, **options):
        require_configured_secret_key(stderr=self.stderr)
        from config.http_server import create_http_server, freeze_startup_heap, stop_gracefully
        from config.wsgi import application

        executor = MigrationExecutor(connection)
        if executor.migration_plan(executor.loader.graph.leaf_nodes()):
            self.stderr.write(self.style.WARNING("Unapplied migrations: run `python manage.py migrate` first."))
        clear_metrics_dir()  # before any child exists: only this run's processes are summed
        server = create_http_server(application, host=host, port=port, threads=threads)
        # The children are new programs (fork + exec, close_fds): they inherit
        # neither the HTTP socket nor this process's threads.
        roles = None if no_workers else _start_roles()
        base = f"http://{host}:{server.effective_port}"
        db = settings.DATABASES["default"]
        self.stdout.write(
            "\n".join(
                [
                    f"Service running on {base}/  (database: {db['ENGINE'].rsplit('.', 1)[-1]} {db['NAME']})",
                    f"  API root:    {base}/",
                    f"  Admin:       {base}/admin/",
                    f"  API docs:    {base}/api/docs/   (schema: {base}/api/schema/)",
                    "  Log in with the admin user printed above (kept in .admin-credentials);",
                    "  API calls take 'Authorization: Token <token>' (manage.py create_api_user NAME, or POST /api/token/).",
                    "Ctrl-C to stop.",
                ]
            ),
        )
        self.stdout.flush()
        # The HTTP server runs in this (main) thread: SIGINT and SIGTERM raise
        # KeyboardInterrupt here, which ends waitress's loop in its own thread,
        # so its sockets are never closed under a running loop.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        freeze_startup_heap()
        try:
            server.run()
        except KeyboardInterrupt:
            pass
        finally:
            self.stdout.write("stopping ...")
            self.stdout.flush()
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean stop short
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            stop_gracefully(server, grace=HTTP_STOP_GRACE_SECONDS)  # answers in progress still go out
            if roles is not None:
                stop_roles, supervising = roles
                stop_roles.set()
                supervising.join()  # every child stopped (or killed after the grace)
            self.stdout.write("stopped.")


def _start_roles() -> tuple[threading.Event, threading.Thread]:
    """The background roles, supervised from a thread of this process (the
    main thread runs the HTTP server). Set the event, join the thread: stopped."""
    supervisor, stop = Supervisor(service_roles(), **supervisor_options()), threading.Event()
    thread = threading.Thread(target=supervisor.run, args=(stop,), name="supervisor")
    thread.start()
    return stop, thread


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt
