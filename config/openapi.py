"""How the OpenAPI schema describes input fields (see AutoSchema)."""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema as _SpectacularAutoSchema
from rest_framework import serializers


class AutoSchema(_SpectacularAutoSchema):
    """drf-spectacular's schema, plus a field's own ``schema_extra`` and what
    DRF's CharField refuses on input:
    a NUL anywhere (ProhibitNullCharactersValidator) and, unless blank is
    allowed, a value that is empty once trimmed. Without these, generated
    clients and fuzzers send values the API answers with a 400."""

    def _map_basic_serializer(self, serializer, direction):
        # A serializer that documents a closed object (``closed = True``: the
        # view refuses unknown fields) says so.
        schema = super()._map_basic_serializer(serializer, direction)
        if getattr(serializer, "closed", False):
            schema["additionalProperties"] = False
        return schema

    def _get_request_body(self, direction="request"):
        # A PATCH names what to change: its body is required (an empty JSON
        # object is a valid no-op; no body at all is a 400).
        body = super()._get_request_body(direction)
        if body is not None and self.method == "PATCH":
            body["required"] = True
        return body

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        # Bounds a field class states for itself (e.g. a list's minItems).
        schema.update(getattr(field, "schema_extra", {}))
        if isinstance(field, (serializers.ListSerializer, serializers.ListField)) and not field.allow_empty:
            schema.setdefault("minItems", 1)
        if isinstance(field, serializers.ListSerializer) and field.max_length is not None:
            schema.setdefault("maxItems", field.max_length)
        if direction != "request" or not isinstance(field, serializers.CharField) or field.read_only:
            return schema
        if schema.get("type") != "string" or {"pattern", "format", "enum"} & set(schema):
            return schema
        if field.allow_blank:
            schema["pattern"] = NO_NUL_PATTERN
        else:
            schema["pattern"] = NOT_BLANK_PATTERN if field.trim_whitespace else NON_EMPTY_PATTERN
            schema.setdefault("minLength", 1)
        return schema


NO_NUL_PATTERN = "^[^\x00]*$"
NON_EMPTY_PATTERN = "^[^\x00]+$"
# At least one character that is neither whitespace nor NUL.
NOT_BLANK_PATTERN = "^[^\x00]*[^\\s\x00][^\x00]*$"
