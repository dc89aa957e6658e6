from django.urls import path

from vms import exam_views, views

# No trailing slashes, like the rest of the API. The exam API itself is the
# exams app's, served here with the VM plan added to each write's answer.
urlpatterns = [
    path("exams", exam_views.ExamListCreateWithPlanView.as_view(), name="exam-list"),
    path("exams/preview", views.ExamPreviewView.as_view(), name="exam-preview"),
    path("exams/<int:pk>", exam_views.ExamDetailWithPlanView.as_view(), name="exam-detail"),
    path("exams/<int:pk>/plan", views.ExamPlanView.as_view(), name="exam-plan"),
    path("vms", views.VMListView.as_view(), name="vm-list"),
]
