"""The OpenAPI schema, generated once per process.

Generating it walks every view and serializer (~40 ms); it only changes with
the code, and it is public (the same for every caller), so the first request
builds it and later ones reuse it. Rendering to JSON or YAML still follows
the request's content negotiation.
"""

from __future__ import annotations

import threading

from drf_spectacular.views import SpectacularAPIView
from rest_framework.response import Response

_cache: dict[tuple, dict] = {}
_lock = threading.Lock()


class CachedSchemaView(SpectacularAPIView):
    def _get_schema_response(self, request):
        version = self.api_version or request.version or self._get_version_parameter(request)
        key = (version, request.GET.get("lang") or "")
        schema = _cache.get(key)
        if schema is None:
            with _lock:
                schema = _cache.get(key)
                if schema is None:
                    generator = self.generator_class(urlconf=self.urlconf, api_version=version, patterns=self.patterns)
                    schema = _cache[key] = generator.get_schema(request=request, public=self.serve_public)
        return Response(
            data=schema,
            headers={"Content-Disposition": f'inline; filename="{self._get_filename(request, version)}"'},
        )
