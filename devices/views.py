"""HTTP entry points of the device pool: parse, call one service, answer."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response

from core.pagination import non_empty_params, single_value
from devices import selectors, services
from devices.models import DeviceStatus
from devices.permissions import DevicePoolPermission
from devices.serializers import DeviceRegisterSerializer, DeviceSerializer

DEVICE_ID = OpenApiParameter("device_id", str, OpenApiParameter.PATH, description="The device's id.")
ERRORS = {
    400: OpenApiResponse(description="Invalid input; the body names the field."),
    401: OpenApiResponse(description="Not authenticated."),
    403: OpenApiResponse(
        description="Needs staff or the device permission; a device account acts only on the devices it registered."
    ),
}
NOT_FOUND = {404: OpenApiResponse(description="No such device.")}


def _show(device_id: str, viewer) -> dict:
    # A plain dict: the browsable API would otherwise build its POST form
    # from the output serializer.
    return dict(DeviceSerializer(selectors.device_get(device_id=device_id), context={"viewer": viewer}).data)


class _NoBody(serializers.Serializer):
    """Device actions take no body (the browsable API shows an empty form)."""


class DeviceListView(generics.GenericAPIView):
    permission_classes = [DevicePoolPermission]
    device_permissions = {"POST": "devices.add_device"}
    serializer_class = DeviceRegisterSerializer

    def get_serializer_class(self):
        return DeviceRegisterSerializer if self.request.method == "POST" else DeviceSerializer

    def get_queryset(self):
        return selectors.device_list()

    @extend_schema(
        summary="List the device pool",
        responses={200: DeviceSerializer(many=True), 400: ERRORS[400], 401: ERRORS[401]},
        parameters=[
            OpenApiParameter("type", {"type": "string", "maxLength": 100}, description="Only devices of this type."),
            OpenApiParameter(
                "status",
                str,
                enum=[c.value for c in DeviceStatus],
                description="Status as shown (busy = online and running a job).",
            ),
        ],
    )
    def get(self, request):
        query = non_empty_params(request.query_params, ("status",))
        device_type = single_value(request.query_params, "type")
        if device_type and len(device_type) > 100:
            raise serializers.ValidationError({"type": ["Ensure this value has at most 100 characters."]})
        qs = selectors.device_list(type=device_type or None, status=query.get("status"))
        page = self.paginate_queryset(qs)
        return self.get_paginated_response(DeviceSerializer(page, many=True, context={"viewer": request.user}).data)

    @extend_schema(
        summary="Register a device (or register it again after a restart)",
        description=(
            "201 when the id is new, 200 when it re-registers: address, type and size are updated, the "
            "device is online again, and a job it was running is put back in the queue in its original place. "
            "A new id registered by a device account belongs to that account; registering an existing id "
            "again is only for its own account and staff (403 otherwise, nothing changed)."
        ),
        request=DeviceRegisterSerializer,
        responses={201: DeviceSerializer, 200: DeviceSerializer, **ERRORS},
    )
    def post(self, request):
        serializer = DeviceRegisterSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        device, created = services.device_register(
            device_id=data["id"], address=data["address"], type=data["type"], size=data["size"], actor=request.user
        )
        return Response(
            _show(device.pk, request.user), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class DeviceDetailView(generics.GenericAPIView):
    permission_classes = [DevicePoolPermission]
    device_permissions = {"DELETE": "devices.delete_device"}
    serializer_class = DeviceSerializer

    @extend_schema(
        summary="Show a device",
        parameters=[DEVICE_ID],
        responses={200: DeviceSerializer, 401: ERRORS[401], **NOT_FOUND},
    )
    def get(self, request, device_id: str):
        return Response(_show(device_id, request.user))

    @extend_schema(
        summary="Remove a device from the pool",
        description="A job it was running goes back to the queue in its original place.",
        parameters=[DEVICE_ID],
        responses={204: None, 401: ERRORS[401], 403: ERRORS[403], **NOT_FOUND},
    )
    def delete(self, request, device_id: str):
        services.device_remove(device_id=device_id, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class _DeviceActionView(generics.GenericAPIView):
    """POST-only action on one device; answers with the device."""

    permission_classes = [DevicePoolPermission]
    device_permissions = {"POST": "devices.change_device"}
    serializer_class = _NoBody

    def act(self, device_id: str, actor) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def post(self, request, device_id: str):
        self.act(device_id, request.user)
        return Response(_show(device_id, request.user))


def _action_schema(summary: str):
    """The schema the device actions share: no body; the device comes back."""
    return extend_schema(
        summary=summary,
        request=None,
        parameters=[DEVICE_ID],
        responses={200: DeviceSerializer, 401: ERRORS[401], 403: ERRORS[403], **NOT_FOUND},
    )


class DeviceHeartbeatView(_DeviceActionView):
    @_action_schema("Record contact with a device (an offline device comes back online)")
    def post(self, request, device_id: str):
        return super().post(request, device_id)

    def act(self, device_id: str, actor) -> None:
        services.device_heartbeat(device_id=device_id, actor=actor)


class DeviceDrainView(_DeviceActionView):
    @_action_schema("Drain a device: it finishes its current job and takes no more")
    def post(self, request, device_id: str):
        return super().post(request, device_id)

    def act(self, device_id: str, actor) -> None:
        services.device_drain(device_id=device_id, actor=actor)


class DeviceResumeView(_DeviceActionView):
    @_action_schema("Undo a drain: the device takes jobs again")
    def post(self, request, device_id: str):
        return super().post(request, device_id)

    def act(self, device_id: str, actor) -> None:
        services.device_resume(device_id=device_id, actor=actor)
