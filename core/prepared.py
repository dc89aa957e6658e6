"""Server-side prepared statements for the API's hot statements (PostgreSQL).

PostgreSQL plans every statement it is sent as text, and for the statements
behind ``GET /jobs/<id>`` and ``POST /jobs`` (a join with subqueries, an
upsert through CTEs) planning costs several times the execution: 0.44 ms of
planning against 0.08 ms of execution for the job read (``EXPLAIN ANALYZE``,
docs/benchmarks.md). A prepared statement is planned once per connection
(then re-planned by PostgreSQL itself only when a table it reads changes).

``execute(cursor, sql, params)`` prepares ``sql`` the first time a
connection runs it and sends ``EXECUTE`` from then on. ``sql`` is written as
for ``cursor.execute``, with ``%s`` or ``%(name)s`` placeholders; its name carries a hash of
the text, so an edited statement is prepared anew, never mixed up with an
old one. What a connection has prepared is remembered per raw connection:
a reconnect (``CONN_MAX_AGE``, a health check that failed) starts afresh.
``PREPARE`` outlives a rolled-back transaction, so an error after it never
leaves the memo wrong.

Planned once means once: each new connection is told to keep the generic
plan (``plan_cache_mode = force_generic_plan``, set when the connection is
made, by ``use_generic_plans``). Otherwise PostgreSQL plans a statement
afresh for each call whenever it guesses that plans made for the values at
hand beat the generic one, as it did for the submission statement every
time: 0.59 ms of its CPU per call where the generic plan costs 0.37 ms and
is the same plan (docs/benchmarks.md). Our statements' parameters are values
an index looks up, for which one plan fits all. Only prepared statements
are affected: Django's own queries are sent as text, planned per call as
always.

Elsewhere (SQLite, or ``DB_PREPARED_STATEMENTS=false`` behind a
transaction-pooling proxy such as PgBouncer in ``pool_mode=transaction``,
where consecutive statements may reach different server sessions) the
statement is simply executed as text.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from functools import cache

from django.conf import settings
from django.db import connection

_PLACEHOLDER = re.compile(r"%(?:\((\w+)\))?(s|%)")


@cache
def _prepared_form(sql: str) -> tuple[str, str, int, tuple[str, ...]]:
    """(name, the text with $1..$n, n, the parameter names in $-order) for
    ``sql`` with ``%s`` placeholders (names: ()) or ``%(name)s`` ones (a name
    used twice is one parameter)."""
    count = 0
    names: dict[str, int] = {}

    def number(match: re.Match) -> str:
        nonlocal count
        name, kind = match.group(1), match.group(2)
        if kind == "%":
            return "%"
        if name is None:
            count += 1
            return f"${count}"
        if name not in names:
            names[name] = len(names) + 1
        return f"${names[name]}"

    text = _PLACEHOLDER.sub(number, sql)
    if count and names:
        raise ValueError("mixed %s and %(name)s placeholders")
    digest = "q_" + hashlib.sha1(sql.encode()).hexdigest()[:16]
    return digest, text, count or len(names), tuple(names)


def enabled(db=connection) -> bool:
    return db.vendor == "postgresql" and settings.DB_PREPARED_STATEMENTS


def use_generic_plans(sender, connection, **kwargs) -> None:
    """``connection_created`` receiver (``core.apps``): prepared statements of
    this session keep their generic plan. Sent while the new connection is
    in autocommit, so no rolled-back transaction can undo the setting."""
    if enabled(connection):
        with connection.cursor() as cursor:
            cursor.execute("SET plan_cache_mode = force_generic_plan")


def execute(cursor, sql: str, params: Sequence | Mapping) -> None:
    """``cursor.execute(sql, params)`` (a Django cursor), through a prepared
    statement where enabled: ``%s`` placeholders with a sequence, or
    ``%(name)s`` ones with a mapping."""
    db = cursor.db  # this thread's DatabaseWrapper (``connection`` is a proxy shared by threads)
    if not enabled(db):
        cursor.execute(sql, params)
        return
    name, text, count, names = _prepared_form(sql)
    if names:
        params = [params[n] for n in names]  # type: ignore[call-overload]
    if len(params) != count:
        raise ValueError(f"{count} placeholders, {len(params)} parameters")
    raw = db.connection
    memo = db.__dict__.get("_prepared_statements")
    if memo is None or memo[0] is not raw:
        memo = (raw, set())
        db.__dict__["_prepared_statements"] = memo
    if name not in memo[1]:
        cursor.execute(f"PREPARE {name} AS {text}")
        memo[1].add(name)
    cursor.execute(f"EXECUTE {name} ({', '.join(['%s'] * count)})" if count else f"EXECUTE {name}", params)
