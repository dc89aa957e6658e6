from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from config.tokens import ObtainTokenView
from config.views import index

urlpatterns = [
    path("", index, name="index"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("api-auth/", include("rest_framework.urls")),
    path("api/token/", ObtainTokenView.as_view(), name="api-token"),
    path("", include("devices.urls")),
    path("", include("jobs.urls")),
    path("", include("exams.urls")),
    path("", include("vms.urls")),
]

handler404 = "config.views.not_found"
