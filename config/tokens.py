"""POST /api/token/: a username and password in, the user's API token out.

The password goes through ``django.contrib.auth.authenticate`` with the
Django request, so django-axes counts a wrong one and refuses a locked-out
username + address exactly as on the admin login (429, see config.lockout).
"""

from __future__ import annotations

from django.contrib.auth import authenticate
from django.contrib.auth.signals import user_logged_in
from django.http import HttpRequest
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.authtoken.models import Token
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from config.lockout import lockout_message, retry_after_seconds
from core.exceptions import DomainError


class LoginLockedOut(DomainError):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS

    def __init__(self):
        super().__init__(lockout_message())
        self.retry_after = retry_after_seconds()


class LoginFailed(DomainError):
    """Wrong username or password; which of the two is not said."""


def token_for_login(*, request: HttpRequest, username: str, password: str) -> Token:
    """The user's token (created on first use) for a correct password."""
    user = authenticate(request=request, username=username, password=password)
    if user is None:
        # Set by django-axes on this request when the pair is (now) locked out.
        if getattr(request, "axes_locked_out", False):
            raise LoginLockedOut()
        raise LoginFailed("Unable to log in with the given username and password.")
    # A token login is a login: axes resets the failure count (as after a form
    # login) and Django records last_login.
    user_logged_in.send(sender=type(user), request=request, user=user)
    token, _ = Token.objects.get_or_create(user=user)
    return token


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    # Bounded so one request cannot make the server hash megabytes.
    password = serializers.CharField(max_length=4096, trim_whitespace=False, style={"input_type": "password"})


class TokenResponseSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="Send as `Authorization: Token <token>`.")


class ObtainTokenView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    serializer_class = TokenRequestSerializer

    @extend_schema(
        summary="Exchange a username and password for your API token",
        request=TokenRequestSerializer,
        responses={
            200: TokenResponseSerializer,
            400: OpenApiResponse(description="Wrong username or password, or a missing field."),
            429: OpenApiResponse(description="Too many wrong passwords for this account from this address."),
        },
    )
    def post(self, request):
        serializer = TokenRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        # django-axes needs Django's request (DRF's wraps it) to count and flag.
        token = token_for_login(request=request._request, **serializer.validated_data)
        return Response({"token": token.key})
