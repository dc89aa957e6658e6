"""API token authentication in one prepared SQL statement.

DRF's ``TokenAuthentication`` looks the key up through the ORM
(``Token.objects.select_related("user").get(key=...)``). Building and
compiling that query costs more CPU than everything else in a small API
request: measured in-process (docs/benchmarks.md), 0.86 ms per lookup
through the ORM against 0.22 ms for the same lookup as one string of SQL.
Every authenticated request pays it, so it is worth the few lines below.

Same behaviour as DRF's class (it is a subclass: the header parsing, the
``WWW-Authenticate`` challenge, the OpenAPI scheme and the messages are
DRF's): an unknown key is "Invalid token.", a key of an inactive user "User
inactive or deleted.". ``request.user`` is the user, ``request.auth`` the
``Token``; both are model instances as the ORM would have loaded them.
"""

from __future__ import annotations

from functools import cache

from django.contrib.auth import get_user_model
from django.db import connection
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions
from rest_framework.authtoken.models import Token

from core import prepared
from core.rows import RowReader

# Token keys are 40 hex characters; anything longer, or holding a NUL (which
# PostgreSQL refuses in a query), cannot match and is refused unread.
MAX_KEY_LENGTH = 40


@cache
def _lookup() -> tuple[str, RowReader, RowReader]:
    """The statement and its readers, built once from the models' metadata
    (a custom user model's columns are read too)."""
    users, tokens = RowReader.of(get_user_model()), RowReader.of(Token)
    quote = connection.ops.quote_name
    user_table = get_user_model()._meta
    sql = (
        f"SELECT {tokens.columns('t')}, {users.columns('u')} "
        f"FROM {quote(Token._meta.db_table)} t JOIN {quote(user_table.db_table)} u "
        f"ON u.{quote(str(user_table.pk.column))} = t.{quote(str(Token._meta.get_field('user').column))} "
        f"WHERE t.{quote(str(Token._meta.pk.column))} = %s"
    )
    return sql, tokens, users


def key_may_exist(key: str) -> bool:
    """False for a key no token can have (empty, too long, with a NUL): such
    keys are refused without a query, by every reader of tokens."""
    return bool(key) and len(key) <= MAX_KEY_LENGTH and "\x00" not in key


def token_user(key: str):
    """(user, token) for a key, or None when no token has it."""
    if not key_may_exist(key):
        return None
    sql, tokens, users = _lookup()
    with connection.cursor() as cursor:
        prepared.execute(cursor, sql, [key])
        row = cursor.fetchone()
    if row is None:
        return None
    split = len(tokens.fields)
    token, user = tokens.instance(row[:split]), users.instance(row[split:])
    token.user = user
    return user, token


class TokenAuthentication(authentication.TokenAuthentication):
    def authenticate_credentials(self, key):
        found = token_user(key)
        if found is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        user, token = found
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        return user, token
