"""/exams and /exams/<id> as the service serves them: the exams app's views,
with each write answered by the exam's VM plan (issue 9: a teacher knows at
once whether every student can have a VM at the start).

Here, not in ``exams``, because the plan is the VM scheduler's business and
the dependency points one way (vms -> exams).
"""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import extend_schema

from exams.serializers import ExamUpdateSerializer
from exams.views import R400, R403, R404, R409, ExamDetailView, ExamListCreateView
from vms.selectors import exam_plan_brief
from vms.serializers import ExamWithPlanSerializer


def _with_plan(response):
    response.data["plan"] = exam_plan_brief(exam_id=response.data["id"], now=timezone.now())
    return response


class ExamListCreateWithPlanView(ExamListCreateView):
    __doc__ = ExamListCreateView.__doc__

    @extend_schema(responses={201: ExamWithPlanSerializer, 400: R400, 403: R403, 409: R409})
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)

    def create(self, request, *args, **kwargs):
        return _with_plan(super().create(request, *args, **kwargs))


class ExamDetailWithPlanView(ExamDetailView):
    __doc__ = ExamDetailView.__doc__

    @extend_schema(
        request=ExamUpdateSerializer, responses={200: ExamWithPlanSerializer, 400: R400, 403: R403, 404: R404}
    )
    def put(self, request, *args, **kwargs):
        return super().put(request, *args, **kwargs)

    @extend_schema(
        request=ExamUpdateSerializer, responses={200: ExamWithPlanSerializer, 400: R400, 403: R403, 404: R404}
    )
    def patch(self, request, *args, **kwargs):
        return super().patch(request, *args, **kwargs)

    def update(self, request, *args, **kwargs):
        return _with_plan(super().update(request, *args, **kwargs))
