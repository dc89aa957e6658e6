"""Parsers that accept the brief's example client, and refuse what JSON or
the database cannot hold with a 400 naming where it is.

`curl -d '<json>' host/jobs` sends a JSON body labelled
``application/x-www-form-urlencoded``. We read such a body as JSON when it is
JSON, and as an ordinary form otherwise, so browsable-API forms keep working.

Both JSON parsers refuse, naming the place (``{"jobs[0].instructions[2]":
[...]}``): numbers JSON cannot represent (``NaN``, ``Infinity``, and
literals beyond the double range such as ``1e309``, which Python would read
as infinity and PostgreSQL's ``jsonb`` cannot store), and lone UTF-16
surrogates (``"\\ud800"``), which no UTF-8 column can store.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from django.http import QueryDict
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser, FormParser, JSONParser

NON_FINITE_MESSAGE = (
    "Numbers must be finite: NaN, Infinity and values beyond the double range (e.g. 1e309) are not valid JSON."
)
SURROGATE_MESSAGE = "Strings may not contain lone UTF-16 surrogates (\\ud800-\\udfff)."
# Any escaped surrogate; only then are the strings checked (pairs are fine).
_SURROGATE_ESCAPE_RE = re.compile(r"\\u[dD][89a-fA-F]")


class _NonFinite:
    """Stands in for a non-finite number while parsing, so it can be found."""

    __slots__ = ()


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _bad_place(value: Any, is_bad) -> str | None:
    """Path (``a.b[2].c``) of the first value or key for which ``is_bad`` is
    true; iterative, so depth costs no recursion."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if is_bad(item):
            return path or "non_field_errors"
        if isinstance(item, dict):
            for key, child in reversed(list(item.items())):
                child_path = f"{path}.{key}" if path else str(key)
                if is_bad(key):
                    return child_path
                stack.append((child_path, child))
        elif isinstance(item, list):
            stack.extend((f"{path}[{i}]", child) for i, child in reversed(list(enumerate(item))))
    return None


def loads(text: str) -> Any:
    """``json.loads`` that raises ParseError naming the place of a non-finite
    number or a lone surrogate."""
    found: list[_NonFinite] = []

    def non_finite(_: str) -> _NonFinite:
        found.append(_NonFinite())
        return found[-1]

    def number(literal: str) -> float | _NonFinite:
        value = float(literal)
        return value if math.isfinite(value) else non_finite(literal)

    try:
        data = json.loads(text, parse_constant=non_finite, parse_float=number)
    except (ValueError, RecursionError) as exc:
        raise ParseError(f"JSON parse error - {exc}") from exc
    if found:
        # A _NonFinite was built, so it is somewhere in data: the place is found.
        place = _bad_place(data, lambda v: isinstance(v, _NonFinite)) or "non_field_errors"
        raise ParseError({place: [NON_FINITE_MESSAGE]})
    if _SURROGATE_ESCAPE_RE.search(text):
        surrogate_place = _bad_place(data, lambda v: isinstance(v, str) and _has_lone_surrogate(v))
        if surrogate_place is not None:
            raise ParseError({surrogate_place: [SURROGATE_MESSAGE]})
    return data


def _decode(raw: bytes, parser_context) -> tuple[str, str]:
    encoding = (parser_context or {}).get("encoding") or "utf-8"
    try:
        return raw.decode(encoding), encoding
    except (UnicodeDecodeError, LookupError) as exc:
        raise ParseError(f"Body is not valid {encoding} text") from exc


class SafeJSONParser(JSONParser):
    """DRF's JSON parser with the refusals above; a body nested deeper than
    Python's recursion limit is a 400 too, not a 500."""

    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream is not None else b""
        text, _ = _decode(raw, parser_context)
        return loads(text)


class LenientJSONParser(BaseParser):
    media_type = "application/x-www-form-urlencoded"

    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream is not None else b""
        text, encoding = _decode(raw, parser_context)
        stripped = text.lstrip()
        if stripped.startswith("{") or stripped.startswith("["):
            return loads(text)
        return QueryDict(text, encoding=encoding)


__all__ = ["LenientJSONParser", "SafeJSONParser", "FormParser", "loads"]
