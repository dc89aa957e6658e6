"""The OpenAPI schema (drf-spectacular) documents the QPU API cleanly."""

from __future__ import annotations

import pytest
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema

pytestmark = pytest.mark.django_db

QPU_PATHS = {
    "/devices": {"get", "post"},
    "/devices/{device_id}": {"get", "delete"},
    "/devices/{device_id}/heartbeat": {"post"},
    "/devices/{device_id}/drain": {"post"},
    "/devices/{device_id}/resume": {"post"},
    "/programs": {"get", "post"},
    "/programs/{program_id}": {"get"},
    "/programs/{program_id}/cancel": {"post"},
    "/jobs": {"get", "post"},
    "/jobs/{job_id}": {"get"},
    "/jobs/{job_id}/cancel": {"post"},
}


def test_schema_endpoint_lists_the_qpu_paths(api):
    response = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path, methods in QPU_PATHS.items():
        assert path in paths, path
        assert methods <= set(paths[path]), (path, set(paths[path]))


def test_docs_page_renders(api):
    response = api.get("/api/docs/")
    assert response.status_code == 200
    assert b"swagger" in response.content.lower()


def test_qpu_views_generate_a_valid_schema_without_warnings():
    GENERATOR_STATS.reset()
    with GENERATOR_STATS.silence():
        schema = SchemaGenerator().get_schema(request=None, public=True)
    validate_schema(schema)
    ours = [
        msg
        for msg in [*GENERATOR_STATS._warn_cache, *GENERATOR_STATS._error_cache]
        if "devices/" in msg or "jobs/" in msg
    ]
    assert ours == []
    program_create = schema["paths"]["/programs"]["post"]
    body = program_create["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert "jobs" in schema["components"]["schemas"][body]["properties"]
    assert "queue_position" in schema["components"]["schemas"]["JobDetail"]["properties"]
