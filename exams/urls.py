from django.urls import path

from exams.views import ExamDetailView, ExamListCreateView

urlpatterns = [
    path("exams", ExamListCreateView.as_view(), name="exam-list"),
    path("exams/<int:pk>", ExamDetailView.as_view(), name="exam-detail"),
]
