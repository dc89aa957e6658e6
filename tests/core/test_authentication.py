"""Token authentication in one SQL statement (``core.authentication``):
the same answers as DRF's ORM lookup, on both databases."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from core.authentication import TokenAuthentication, token_user
from tests.factories import make_token, make_user

pytestmark = pytest.mark.django_db


def _client(header: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    return client


def test_the_user_and_token_are_what_the_orm_loads(user):
    key = make_token(user)
    user.first_name, user.email = "Ada", "ada@example.org"
    user.save()
    found_user, found_token = token_user(key)
    expected = get_user_model().objects.get(pk=user.pk)
    for field in get_user_model()._meta.concrete_fields:
        assert getattr(found_user, field.attname) == getattr(expected, field.attname), field.name
    assert found_user.date_joined.tzinfo is not None
    assert found_token == Token.objects.get(key=key)
    assert found_token.created == Token.objects.get(key=key).created
    assert found_token.user is found_user
    assert not found_user._state.adding  # as loaded from the database: saving it updates


def test_a_valid_token_authenticates_an_api_request(user):
    response = _client(f"Token {make_token(user)}").get("/jobs")
    assert response.status_code == 200


@pytest.mark.parametrize(
    "header",
    [
        "Token 0000000000000000000000000000000000000000",  # no such key
        "Token " + "a" * 41,  # longer than any key: refused unread
        "Token abc\x00def",  # NUL: PostgreSQL would refuse the query
    ],
)
def test_an_unknown_key_is_a_401_saying_invalid_token(user, header):
    make_token(user)
    response = _client(header).get("/jobs")
    assert response.status_code == 401
    assert "Invalid token" in response.json()["detail"]
    assert response["WWW-Authenticate"] == "Token"


def test_a_refused_key_costs_no_query():
    with CaptureQueriesContext(connection) as queries:
        assert token_user("x" * 41) is None
        assert token_user("") is None
        assert token_user("a\x00") is None
    assert len(queries) == 0


def test_an_inactive_users_token_is_refused(db):
    sleeper = make_user(is_active=False)
    response = _client(f"Token {make_token(sleeper)}").get("/jobs")
    assert response.status_code == 401
    assert response.json()["detail"].startswith("User inactive or deleted.")


def test_a_deleted_token_stops_working_at_once(user):
    key = make_token(user)
    client = _client(f"Token {key}")
    assert client.get("/jobs").status_code == 200
    Token.objects.filter(key=key).delete()
    assert client.get("/jobs").status_code == 401


def test_it_is_the_configured_api_authentication():
    from rest_framework.settings import api_settings

    assert api_settings.DEFAULT_AUTHENTICATION_CLASSES[0] is TokenAuthentication
