"""Serializer fields and id rules shared by every API: client-given public ids
(devices, jobs, programs) and JSON-string-only text.

Kept here, not in one app, so that ``jobs``, ``devices`` and ``exams`` use one
rule without importing each other.
"""

from __future__ import annotations

import re
import unicodedata

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

# Ids travel in URL paths (`/devices/<id>`, `/jobs/<id>`): a slash would split
# the path, and whitespace, control or invisible characters are never what a
# client meant (two ids that look the same must not be two devices).
PUBLIC_ID_MAX_LENGTH = 100
# Unicode categories refused in ids: controls (Cc, including U+0080-U+009F)
# and format characters such as zero-width spaces and bidi marks (Cf); lone
# surrogates (Cs) cannot arrive in UTF-8 at all. Listed once as ranges so the
# check and the schema's `pattern` are the same regular expression.
_INVISIBLE_RANGES = [
    (0x00, 0x1F),
    (0x7F, 0x9F),
    (0xAD, 0xAD),
    (0x600, 0x605),
    (0x61C, 0x61C),
    (0x6DD, 0x6DD),
    (0x70F, 0x70F),
    (0x890, 0x891),
    (0x8E2, 0x8E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x13438),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
]
_INVISIBLE_CLASS = "".join(chr(a) if a == b else f"{chr(a)}-{chr(b)}" for a, b in _INVISIBLE_RANGES)
# No '/', no whitespace, no invisible character; not "." or ".." (a
# character other than '.' somewhere, or three dots or more). No lookahead:
# generators of test data (hypothesis, schemathesis) do not support one.
_ID_CHAR = rf"[^/\s{_INVISIBLE_CLASS}]"
_ID_NON_DOT = rf"[^./\s{_INVISIBLE_CLASS}]"
PUBLIC_ID_PATTERN = rf"^(?:{_ID_CHAR}*{_ID_NON_DOT}{_ID_CHAR}*|\.\.\.+)$"
PUBLIC_ID_RE = re.compile(PUBLIC_ID_PATTERN)
# A JSON number given as an id is kept as its decimal string: at most 18 digits.
ID_INT_LIMIT = 10**18
INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs"})


def _has_invisible(value: str) -> bool:
    # Cs (lone surrogates) only, in practice: the pattern covers Cc and Cf.
    return not value.isascii() and any(unicodedata.category(ch) in INVISIBLE_CATEGORIES for ch in value)


INT32_MAX = 2**31 - 1
INT32_MIN = -(2**31)


def public_id_error(value: str) -> str | None:
    """Why ``value`` cannot be a public id, or None when it can."""
    if not value:
        return "This field may not be blank."
    if len(value) > PUBLIC_ID_MAX_LENGTH:
        return f"Ensure this field has no more than {PUBLIC_ID_MAX_LENGTH} characters."
    if not PUBLIC_ID_RE.fullmatch(value) or _has_invisible(value):
        return (
            "Ids may not contain '/', spaces, control or invisible characters (Unicode Cc, Cf, Cs), nor be '.' or '..'."
        )
    return None


def int_id_error() -> str:
    return f"A number given as an id has at most {len(str(ID_INT_LIMIT)) - 1} digits; send longer ids as strings."


class StringOrIntegerField(serializers.CharField):
    """A string, or a JSON integer kept as its decimal string (at most
    ID_INT_LIMIT in size); floats would round-trip badly ("1e3", "1.0"), so
    only str and int. Taken as given: no trimming."""

    default_error_messages = {"invalid": "Must be a string or an integer."}

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", PUBLIC_ID_MAX_LENGTH)
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (str, int)):
            self.fail("invalid")
        if isinstance(data, int) and abs(data) >= ID_INT_LIMIT:
            raise serializers.ValidationError(int_id_error())
        return super().to_internal_value(data)


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "minLength": 1, "maxLength": PUBLIC_ID_MAX_LENGTH, "pattern": PUBLIC_ID_PATTERN},
            {"type": "integer", "minimum": 1 - ID_INT_LIMIT, "maximum": ID_INT_LIMIT - 1},
        ]
    }
)
class PublicIdField(StringOrIntegerField):
    """A client-given id: a string, or a JSON number kept as its string; the
    schema's pattern is the whole rule (``public_id_error``)."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        error = public_id_error(value)
        if error:
            raise serializers.ValidationError(error)
        return value


class TextField(serializers.CharField):
    """A CharField taking JSON strings only (DRF's also turns numbers into
    text): the schema says string, so a number is a 400."""

    default_error_messages = {"invalid": "Must be a string."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)
