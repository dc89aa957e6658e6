"""/exams and /exams/<id>: operators (staff) manage the exams the VM scheduler provisions for.

Writes go through exams.services (via the serializer), which validates and
wakes the scheduler.
"""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics
from rest_framework.permissions import IsAdminUser

from exams.selectors import exam_list
from exams.serializers import ExamSerializer
from exams.services import exam_delete
from vms.serializers import ExamWithPlanSerializer

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

    @extend_schema(responses={201: ExamWithPlanSerializer, 400: R400, 403: R403, 409: R409})
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)

    def create(self, request, *args, **kwargs):
        return _with_plan(super().create(request, *args, **kwargs))


def _with_plan(response):
    """A write's answer carries the exam's VM plan summary (issue 9): the
    teacher knows at once whether every student can have a VM at the start."""
    from vms.selectors import exam_plan_brief

    response.data["plan"] = exam_plan_brief(exam_id=response.data["id"], now=timezone.now())
    return response


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

    @extend_schema(responses={200: ExamWithPlanSerializer, 400: R400, 403: R403, 404: R404})
    def put(self, request, *args, **kwargs):
        return super().put(request, *args, **kwargs)

    @extend_schema(responses={200: ExamWithPlanSerializer, 400: R400, 403: R403, 404: R404})
    def patch(self, request, *args, **kwargs):
        return super().patch(request, *args, **kwargs)

    def update(self, request, *args, **kwargs):
        return _with_plan(super().update(request, *args, **kwargs))

    def perform_destroy(self, instance):
        exam_delete(exam=instance)
