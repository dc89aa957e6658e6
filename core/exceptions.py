"""One error shape for the whole API.

DRF already turns validation problems into 400s naming the field. This handler
adds the domain exceptions of our apps (each carries its HTTP status and, when
it concerns one input, the field name) and Django's own ValidationError, so a
bad request is never a 500.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler


class DomainError(Exception):
    """Base class of the apps' domain exceptions."""

    status_code: int = status.HTTP_400_BAD_REQUEST  # subclasses choose their own status

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field

    def as_data(self) -> dict:
        if self.field:
            return {self.field: [self.message]}
        return {"detail": self.message}


class NotFound(DomainError):
    status_code = status.HTTP_404_NOT_FOUND


class Conflict(DomainError):
    status_code = status.HTTP_409_CONFLICT


def api_exception_handler(exc, context):
    if isinstance(exc, DomainError):
        retry_after = getattr(exc, "retry_after", None)
        headers = {"Retry-After": str(retry_after)} if retry_after else None
        return Response(exc.as_data(), status=exc.status_code, headers=headers)
    if isinstance(exc, DjangoValidationError):
        data = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        return Response(data, status=status.HTTP_400_BAD_REQUEST)
    response = exception_handler(exc, context)
    if response is not None and response.status_code == status.HTTP_401_UNAUTHORIZED:
        response.data = {"detail": f"{response.data.get('detail', '')} {AUTH_HINT}".strip()}
    return response


AUTH_HINT = (
    "Send the header 'Authorization: Token <key>'; get a key with POST /api/token/ "
    "(username and password) or `manage.py create_api_user NAME`."
)
