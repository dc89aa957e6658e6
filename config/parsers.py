"""Parsers that accept the brief's example client.

`curl -d '<json>' host/jobs` sends a JSON body labelled
``application/x-www-form-urlencoded``. We read such a body as JSON when it is
JSON, and as an ordinary form otherwise, so browsable-API forms keep working.
"""

from __future__ import annotations

import json

from django.http import QueryDict
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser, FormParser, JSONParser


class SafeJSONParser(JSONParser):
    """DRF's JSON parser, but a body nested deeper than Python's recursion
    limit is a 400, not a 500."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise ParseError("JSON nested too deeply") from exc


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


class LenientJSONParser(BaseParser):
    media_type = "application/x-www-form-urlencoded"

    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream is not None else b""
        encoding = (parser_context or {}).get("encoding", "utf-8")
        try:
            text = raw.decode(encoding or "utf-8")
        except (UnicodeDecodeError, LookupError) as exc:
            raise ParseError(f"Body is not valid {encoding or 'utf-8'} text") from exc
        stripped = text.lstrip()
        if stripped.startswith("{") or stripped.startswith("["):
            try:
                # Like DRF's JSONParser: NaN and Infinity are not JSON.
                return json.loads(text, parse_constant=_reject_constant)
            except (ValueError, RecursionError) as exc:
                raise ParseError(f"JSON parse error - {exc}") from exc
        return QueryDict(text, encoding=encoding)


__all__ = ["LenientJSONParser", "SafeJSONParser", "FormParser"]
