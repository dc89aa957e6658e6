"""Shared fixtures.

Tests that need PostgreSQL (row locks, SKIP LOCKED, LISTEN/NOTIFY, advisory
locks, several processes) carry ``@pytest.mark.postgres``: on SQLite they are
skipped with a reason naming DATABASE_URL; with ``REQUIRE_POSTGRES=1`` (set by
CI) running without PostgreSQL is an error instead of a skip.
"""

from __future__ import annotations

import os
import secrets

import pytest
from django.db import connection

# The services tests start as subprocesses (`serve`, `runworkers`,
# `schedule_vms`) refuse to run without a SECRET_KEY: they inherit this one,
# like a configured deployment. Tests of the refusal set their own environment.
os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Real hashers take ~100 ms per user; tests create many users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_cache(monkeypatch):
    # The submission throttle counts in the (process-wide) cache: each test
    # starts with a clean slate, as if its users had never submitted.
    from django.core.cache import cache

    from jobs import estimates

    cache.clear()
    # Recent run times per device type are kept per process for a few
    # seconds; one test's history must not be another's estimate.
    monkeypatch.setattr(estimates, "_cache", {})


def is_postgres() -> bool:
    return connection.vendor == "postgresql"


def pytest_collection_modifyitems(config, items):
    from django.conf import settings

    on_postgres = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
    if on_postgres:
        return
    if os.environ.get("REQUIRE_POSTGRES") == "1":
        raise pytest.UsageError("REQUIRE_POSTGRES=1 but DATABASE_URL does not point at PostgreSQL")
    skip = pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL=postgres://... to run")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def user(db):
    from tests.factories import make_user

    return make_user("alice", password="pw-alice-123")


@pytest.fixture
def other_user(db):
    from tests.factories import make_user

    return make_user("bob", password="pw-bob-123")


@pytest.fixture
def staff_user(db):
    from tests.factories import make_user

    return make_user("operator", password="pw-op-123", is_staff=True)


@pytest.fixture
def admin_client_(db):
    """A Django test client logged into the admin as a superuser."""
    from django.test import Client

    from tests.factories import make_user

    client = Client()
    client.force_login(make_user("root-op", password="pw-root-op", is_superuser=True))
    return client


def _client_for(u):
    from rest_framework.test import APIClient

    from tests.factories import make_token

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {make_token(u)}")
    client.user = u
    return client


@pytest.fixture
def api(user):
    """An API client authenticated as an ordinary user."""
    return _client_for(user)


@pytest.fixture
def other_api(other_user):
    return _client_for(other_user)


@pytest.fixture
def staff_api(staff_user):
    """An API client authenticated as staff (operators, devices)."""
    return _client_for(staff_user)


@pytest.fixture
def anon_api():
    from rest_framework.test import APIClient

    return APIClient()
