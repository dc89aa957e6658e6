from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularSwaggerView

from config.metrics import metrics_view
from config.schema import CachedSchemaView
from config.tokens import ObtainTokenView
from config.views import index
from core.views import healthz, readyz

admin.site.site_header = "QPU & exam VM scheduling"
admin.site.site_title = "QPU & exam VM scheduling"
admin.site.index_title = "Operations"

urlpatterns = [
    path("", index, name="index"),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/schema/", CachedSchemaView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("api-auth/", include("rest_framework.urls")),
    path("api/token/", ObtainTokenView.as_view(), name="api-token"),
    path("", include("devices.urls")),
    path("", include("jobs.urls")),
    path("", include("vms.urls")),
]

handler404 = "config.views.not_found"
