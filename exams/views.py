"""/exams and /exams/<id>: operators (staff) manage the exams the VM scheduler provisions for.

Writes go through exams.services (via the serializer), which validates and
announces the change (``exams.signals.exam_changed``). The service routes
these views as extended by ``vms.exam_views`` (each write's answer carries the
exam's VM plan); ``exams`` itself knows nothing of VMs.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAdminUser

from exams.selectors import exam_list
from exams.serializers import ExamSerializer
from exams.services import exam_delete

R400 = OpenApiResponse(description="Invalid input; the body names the field (e.g. `end` not after `start`).")
R403 = OpenApiResponse(description="Staff only.")
R404 = OpenApiResponse(description="No such exam.")
R409 = OpenApiResponse(description="An exam with this `id` already exists.")


@extend_schema_view(get=extend_schema(responses={200: ExamSerializer(many=True), 400: R400, 403: R403}))
class ExamListCreateView(generics.ListCreateAPIView):
    """List exams (earliest start first) or create one."""

    permission_classes = [IsAdminUser]
    serializer_class = ExamSerializer

    def get_queryset(self):
        return exam_list()


@extend_schema_view(
    get=extend_schema(responses={200: ExamSerializer, 403: R403, 404: R404}),
    delete=extend_schema(responses={204: None, 403: R403, 404: R404}),
)
class ExamDetailView(generics.RetrieveUpdateDestroyAPIView):
    """Read, change (PUT/PATCH) or delete one exam."""

    permission_classes = [IsAdminUser]
    serializer_class = ExamSerializer

    def get_queryset(self):
        return exam_list()

    def partial_update(self, request, *args, **kwargs):
        if request.META.get("CONTENT_LENGTH", "").strip() in ("", "0"):  # no body (never int(): hostile headers)
            raise ValidationError(
                {"body": ['A PATCH needs a JSON object with the fields to change, e.g. {"students": 40}.']}
            )
        return super().partial_update(request, *args, **kwargs)

    def perform_destroy(self, instance):
        exam_delete(exam=instance)
