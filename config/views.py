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
