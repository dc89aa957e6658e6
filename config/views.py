from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import AllowAny
from rest_framework.response import Response


@extend_schema(exclude=True)
@api_view(["GET"])
@permission_classes([AllowAny])
def index(request):
    """Entry point listing the API's main resources."""
    base = request.build_absolute_uri("/").rstrip("/")
    return Response(
        {
            "devices": f"{base}/devices",
            "programs": f"{base}/programs",
            "jobs": f"{base}/jobs",
            "exams": f"{base}/exams",
            "vms": f"{base}/vms",
            "admin": f"{base}{reverse('admin:index')}",
            "docs": f"{base}{reverse('docs')}",
            "schema": f"{base}{reverse('schema')}",
        }
    )


def not_found(request, exception=None):
    """JSON 404 for API clients (the admin keeps Django's HTML page).

    A path with a trailing slash whose bare form exists gets a hint: the API's
    paths have none (the brief's client calls `/jobs`, `/devices`)."""
    from django.http import JsonResponse
    from django.urls import Resolver404, resolve

    path = request.path
    detail = f"Not found: {path}"
    if path.endswith("/") and len(path) > 1:
        try:
            resolve(path.rstrip("/"))
            detail += f" (API paths have no trailing slash: try {path.rstrip('/')})"
        except Resolver404:
            pass
    if path.startswith("/admin/") or "text/html" in request.headers.get("Accept", ""):
        from django.views.defaults import page_not_found

        return page_not_found(request, exception)
    return JsonResponse({"detail": detail}, status=404)
