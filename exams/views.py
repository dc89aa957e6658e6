"""/exams and /exams/<id>: operators (staff) manage the exams the VM scheduler provisions for.

Writes go through exams.services (via the serializer), which validates and
wakes the scheduler.
"""

from __future__ import annotations

from rest_framework import generics
from rest_framework.permissions import IsAdminUser

from exams.selectors import exam_list
from exams.serializers import ExamSerializer
from exams.services import exam_delete


class ExamListCreateView(generics.ListCreateAPIView):
    """List exams (earliest start first) or create one."""

    permission_classes = [IsAdminUser]
    serializer_class = ExamSerializer

    def get_queryset(self):
        return exam_list()


class ExamDetailView(generics.RetrieveUpdateDestroyAPIView):
    """Read, change (PUT/PATCH) or delete one exam."""

    permission_classes = [IsAdminUser]
    serializer_class = ExamSerializer

    def get_queryset(self):
        return exam_list()

    def perform_destroy(self, instance):
        exam_delete(exam=instance)
