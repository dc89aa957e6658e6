"""schemathesis against the live WSGI app: every operation of /api/schema/,
with every check (server errors, undocumented status codes, response
schemas, schema-valid requests rejected, schema-violating ones accepted...).

A small example budget keeps it to well under a minute; the full-budget run
(docs/api.md, "The schema tells the truth") uses the same hooks.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

import tests.api_conventions.st_hooks  # noqa: F401  (registers the exam-date hook)
from config.wsgi import application
from tests.factories import make_token, make_user

# The repository's schemathesis.toml (the CLI's settings), minus the coverage
# phase, whose exhaustive boundary cases are the full-budget run's job.
CONFIG = SchemathesisConfig.from_path(Path(__file__).resolve().parent.parent / "schemathesis.toml")
CONFIG.projects.default.phases.coverage.enabled = False
schema = schemathesis.openapi.from_wsgi("/api/schema/", application, config=CONFIG)


@pytest.fixture
def tokens(db, settings, monkeypatch):
    settings.THROTTLE_SUBMIT_RATE = ""  # the budget is spent on shapes, not on the rate limit
    # POST /api/token/: positive cases log in for real (st_hooks.login)
    make_user("st-login", password="st-login-pass-1")
    monkeypatch.setenv("ST_LOGIN_USERNAME", "st-login")
    monkeypatch.setenv("ST_LOGIN_PASSWORD", "st-login-pass-1")
    return {
        "staff": make_token(make_user("st-staff", is_staff=True)),
        "user": make_token(make_user("st-user")),
    }


@pytest.mark.django_db(transaction=True)
@schema.parametrize()
@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_the_api_keeps_its_schema(case, tokens):
    for role in ("staff", "user"):
        case.call_and_validate(headers={"Authorization": f"Token {tokens[role]}"})
