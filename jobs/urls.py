from django.urls import path

from jobs import views

# No trailing slashes: the brief's clients call `/jobs` and `/jobs/<id>`.
urlpatterns = [
    path("programs", views.ProgramListView.as_view(), name="program-list"),
    path("programs/<str:program_id>", views.ProgramDetailView.as_view(), name="program-detail"),
    path("programs/<str:program_id>/cancel", views.ProgramCancelView.as_view(), name="program-cancel"),
    path(
        "programs/<str:program_id>/webhook-secret",
        views.ProgramWebhookSecretView.as_view(),
        name="program-webhook-secret",
    ),
    path("jobs", views.JobListView.as_view(), name="job-list"),
    path("jobs/<str:job_id>", views.JobDetailView.as_view(), name="job-detail"),
    path("jobs/<str:job_id>/cancel", views.JobCancelView.as_view(), name="job-cancel"),
]
