from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def run(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("create_api_user", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_create_api_user_prints_a_working_token(django_user_model):
    out, err = run("carol")
    key = out.strip().splitlines()[-1]
    user = django_user_model.objects.get(username="carol")
    assert not user.is_staff and not user.has_usable_password()
    assert Token.objects.get(user=user).key == key
    assert f"Authorization: Token {key}" in err
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get("/jobs").status_code == 200


def test_staff_flag_reuse_and_rotation(django_user_model):
    first = run("dave", "--staff")[0].strip().splitlines()[-1]
    assert django_user_model.objects.get(username="dave").is_staff
    again = run("dave")[0]
    assert again.startswith("Existing staff 'dave'") and again.strip().endswith(first)
    rotated = run("dave", "--rotate")[0].strip().splitlines()[-1]
    assert rotated != first and not Token.objects.filter(key=first).exists()


def test_401_says_how_to_authenticate(client):
    response = client.get("/jobs")
    assert response.status_code == 401
    assert "Authorization: Token <key>" in response.json()["detail"]
    assert response["WWW-Authenticate"] == "Token"


def test_a_wrong_token_gets_the_same_hint(client):
    response = client.get("/jobs", HTTP_AUTHORIZATION="Token nope")
    assert response.status_code == 401
    assert response.json()["detail"].startswith("Invalid token.")
    assert "POST /api/token/" in response.json()["detail"]


def test_runserver_says_workers_do_not_run_in_it(monkeypatch):
    from django.core.management import get_commands, load_command_class

    from config.management.commands import runserver

    command = load_command_class(get_commands()["runserver"], "runserver")
    assert isinstance(command, runserver.Command)
    served = []
    monkeypatch.setattr(runserver.StaticRunserver, "inner_run", lambda self, *a, **kw: served.append(True))
    command.stdout = io.StringIO()
    command.inner_run()
    printed = command.stdout.getvalue()
    assert served == [True]
    assert "do not run in it" in printed and "manage.py runworkers" in printed and "manage.py serve" in printed


def test_the_schema_is_generated_once_per_process(client, monkeypatch):
    from drf_spectacular.generators import SchemaGenerator

    from config import schema

    monkeypatch.setattr(schema, "_cache", {})
    calls = []
    original = SchemaGenerator.get_schema

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SchemaGenerator, "get_schema", counting)
    first = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    second = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    yaml = client.get("/api/schema/")
    assert first.status_code == second.status_code == yaml.status_code == 200
    assert first.content == second.content and "/jobs" in first.json()["paths"]
    assert yaml.content.startswith(b"openapi:")
    assert len(calls) == 1
