from django.urls import path

from devices import views

# No trailing slashes: the brief's clients call `/devices` and `/devices/<id>`.
urlpatterns = [
    path("devices", views.DeviceListView.as_view(), name="device-list"),
    path("devices/<str:device_id>", views.DeviceDetailView.as_view(), name="device-detail"),
    path("devices/<str:device_id>/heartbeat", views.DeviceHeartbeatView.as_view(), name="device-heartbeat"),
    path("devices/<str:device_id>/drain", views.DeviceDrainView.as_view(), name="device-drain"),
    path("devices/<str:device_id>/resume", views.DeviceResumeView.as_view(), name="device-resume"),
]
