from django.urls import path

from vms import views

# No trailing slashes, like the rest of the API.
urlpatterns = [
    path("exams/<int:pk>/plan", views.ExamPlanView.as_view(), name="exam-plan"),
    path("exams/preview", views.ExamPreviewView.as_view(), name="exam-preview"),
    path("vms", views.VMListView.as_view(), name="vm-list"),
]
