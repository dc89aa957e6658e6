"""Operators' read-only view of VM provisioning (staff only)."""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from core.pagination import non_empty_params
from exams.selectors import exam_get
from vms.preview import parse_changes
from vms.selectors import exam_changes_preview, exam_plan_report, vm_list
from vms.serializers import (
    ExamPlanSerializer,
    ExamPreviewRequestSerializer,
    ExamPreviewSerializer,
    VMListQuerySerializer,
    VMSerializer,
)

R400 = OpenApiResponse(description="Invalid input; the body names the field.")
R403 = OpenApiResponse(description="Staff only.")
R404 = OpenApiResponse(description="No such exam.")
R409_PREVIEW = OpenApiResponse(
    description="A change does not fit the exams as they are (it creates an id that exists, or updates or "
    "deletes one that does not); the body names the change (`changes[1].exam.id`)."
)


class ExamPlanView(APIView):
    """GET /exams/<id>/plan: students, VM counts, when requesting starts, the
    expected ready count at the start and shortfall, and the planned and
    actual ready-VM timelines (``planned`` is empty once the exam is over).
    Plan figures are the VM scheduler's stored summary (``planned_at``): a
    read never runs the planner."""

    permission_classes = [IsAdminUser]

    @extend_schema(responses={200: ExamPlanSerializer, 403: R403, 404: R404})
    def get(self, request, pk: int):
        exam = exam_get(exam_id=pk)
        return Response(ExamPlanSerializer(exam_plan_report(exam=exam, now=timezone.now())).data)


class ExamPreviewView(APIView):
    """POST /exams/preview ``{"changes": [{"action": "create"|"update"|"delete",
    "exam": {...}}]}``: what the changes would do to every exam's VMs (the
    pure planner, before and after), saving nothing. Lists every exam whose
    on-time count, shortfall or first request changes, and the ones named."""

    permission_classes = [IsAdminUser]

    @extend_schema(
        request=ExamPreviewRequestSerializer,
        responses={200: ExamPreviewSerializer, 400: R400, 403: R403, 409: R409_PREVIEW},
    )
    def post(self, request):
        changes = parse_changes(request.data)
        return Response({"exams": exam_changes_preview(changes=changes, now=timezone.now())})


class VMListView(generics.ListAPIView):
    """GET /vms?exam=<id>&state=<state>: VMs in request order."""

    permission_classes = [IsAdminUser]
    serializer_class = VMSerializer

    @extend_schema(parameters=[VMListQuerySerializer], responses={200: VMSerializer(many=True), 400: R400, 403: R403})
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        query = VMListQuerySerializer(data=non_empty_params(self.request.query_params, ("exam", "state")))
        query.is_valid(raise_exception=True)
        return vm_list(now=self._now, **query.validated_data)

    def list(self, request, *args, **kwargs):
        self._now = timezone.now()
        return super().list(request, *args, **kwargs)

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "now": getattr(self, "_now", None)}
