"""Liveness and readiness, for load balancers and orchestrators.

``/healthz`` answers while the process can run Python: no database, no auth.
``/readyz`` answers 200 only when this deployment can do its work: the
database answers, every migration is applied, and each expected background
role (READY_EXPECTED_ROLES) has beaten recently. Each check is named in the
JSON so an operator sees at once what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from core import heartbeats


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


_migrations_applied = False


def check_database() -> Check:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        return Check("database", False, f"unreachable: {type(exc).__name__}")
    return Check("database", True, connection.vendor)


def check_migrations() -> Check:
    # Once applied they stay applied for this process's code: checked until
    # true, then remembered (the migration graph is costly to load).
    global _migrations_applied
    if not _migrations_applied:
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
        if pending:
            return Check("migrations", False, f"{len(pending)} unapplied: run `manage.py migrate`")
        _migrations_applied = True
    return Check("migrations", True, "all applied")


def role_max_age(role: str) -> timedelta:
    """How stale a role's heartbeat may be: three of its beat intervals."""
    if role == heartbeats.QPU_WORKERS:  # beats on each lease renewal
        renew = min(settings.JOB_LEASE_SECONDS, settings.DEVICE_TIMEOUT_SECONDS) / 3
        return timedelta(seconds=max(30.0, 3 * renew))
    if role == heartbeats.TASK_CLUSTER:  # a one-minute schedule, checked every ~30 s
        return timedelta(seconds=180)
    return timedelta(seconds=90)  # the VM scheduler's loop wakes at least every 30 s


def check_role(role: str) -> Check:
    age = heartbeats.heartbeat_age(name=role)
    if age is None:
        return Check(role, False, "never seen: is it running?")
    limit = role_max_age(role)
    if age > limit:
        return Check(role, False, f"last seen {age.total_seconds():.0f} s ago (limit {limit.total_seconds():.0f} s)")
    return Check(role, True, f"last seen {age.total_seconds():.1f} s ago")


def readiness() -> list[Check]:
    checks = [check_database()]
    if not checks[0].ok:
        return checks
    checks.append(check_migrations())
    if checks[-1].ok:
        checks += [check_role(role) for role in settings.READY_EXPECTED_ROLES]
    return checks


def as_json(checks: list[Check]) -> dict:
    ready = all(c.ok for c in checks)
    return {
        "status": "ready" if ready else "not ready",
        "checks": {c.name: {"ok": c.ok, "detail": c.detail} for c in checks},
    }
