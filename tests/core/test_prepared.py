"""Prepared statements (``core.prepared``): planned once per connection on
PostgreSQL, never confused between threads or reconnections; plain text
elsewhere."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from core import prepared

pytestmark = pytest.mark.django_db(transaction=True)

SQL = "SELECT CAST(%s AS integer) + 1, '100%%'"


def _run(value: int):
    with connection.cursor() as cursor:
        prepared.execute(cursor, SQL, [value])
        return cursor.fetchone()


def _server_side_statements() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_prepared_statements")
        return {row[0] for row in cursor.fetchall()}


def test_the_answer_is_the_plain_statements_answer():
    assert _run(41) == (42, "100%")
    assert _run(1) == (2, "100%")


@pytest.mark.postgres
def test_placeholders_and_parameters_must_agree():
    with pytest.raises(ValueError, match="1 placeholders, 2 parameters"):
        _run_params([1, 2])


def _run_params(params):
    with connection.cursor() as cursor:
        prepared.execute(cursor, SQL, params)


@pytest.mark.postgres
def test_prepared_once_then_executed_by_name():
    name = prepared._prepared_form(SQL)[0]
    with CaptureQueriesContext(connection) as queries:
        _run(1)
        _run(2)
        _run(3)
    sent = [q["sql"] for q in queries.captured_queries]
    assert [s.split()[0] for s in sent] == ["PREPARE", "EXECUTE", "EXECUTE", "EXECUTE"]
    assert name in _server_side_statements()


@pytest.mark.postgres
def test_a_new_connection_prepares_again():
    _run(1)
    connection.close()
    with CaptureQueriesContext(connection) as queries:
        assert _run(5) == (6, "100%")
    assert [q["sql"].split()[0] for q in queries.captured_queries] == ["PREPARE", "EXECUTE"]


@pytest.mark.postgres
def test_each_threads_connection_prepares_its_own():
    """Threads have connections of their own: one thread having prepared a
    statement must not make another skip its PREPARE (the error that would
    follow: 'prepared statement ... does not exist')."""
    _run(1)
    errors: list[BaseException] = []
    answers: list[tuple] = []
    start = threading.Barrier(4)

    def worker(i: int) -> None:
        try:
            start.wait(timeout=10)
            for j in range(20):
                answers.append(_run(i * 100 + j))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert sorted(a[0] for a in answers) == sorted(i * 100 + j + 1 for i in range(4) for j in range(20))


@pytest.mark.postgres
def test_a_rolled_back_transaction_keeps_the_statement():
    from django.db import transaction

    with pytest.raises(RuntimeError):
        with transaction.atomic():
            _run(1)
            raise RuntimeError("rolled back")
    assert _run(2) == (3, "100%")  # the memo said prepared; the server agrees


@pytest.mark.postgres
def test_switched_off_it_sends_plain_text(settings):
    settings.DB_PREPARED_STATEMENTS = False
    connection.close()
    with CaptureQueriesContext(connection) as queries:
        assert _run(1) == (2, "100%")
    assert queries.captured_queries[-1]["sql"].startswith("SELECT")
    assert _server_side_statements() == set()


def test_named_placeholders_map_to_one_parameter_each():
    sql = "SELECT CAST(%(a)s AS integer) + CAST(%(b)s AS integer) + CAST(%(a)s AS integer)"
    with connection.cursor() as cursor:
        prepared.execute(cursor, sql, {"a": 1, "b": 10, "unused": 99})
        assert cursor.fetchone()[0] == 12
    assert prepared._prepared_form(sql)[1:] == (
        "SELECT CAST($1 AS integer) + CAST($2 AS integer) + CAST($1 AS integer)",
        2,
        ("a", "b"),
    )


def _plan_cache_mode() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW plan_cache_mode")
        return cursor.fetchone()[0]


@pytest.mark.postgres
def test_each_new_connection_keeps_generic_plans(settings):
    connection.close()
    assert _plan_cache_mode() == "force_generic_plan"
    # ... and a prepared statement is then planned once, not per call.
    for value in range(8):
        _run(value)
    with connection.cursor() as cursor:
        cursor.execute("SELECT generic_plans, custom_plans FROM pg_prepared_statements")
        assert cursor.fetchall() == [(8, 0)]
    settings.DB_PREPARED_STATEMENTS = False  # statements as text: PostgreSQL's default is left alone
    connection.close()
    assert _plan_cache_mode() == "auto"
