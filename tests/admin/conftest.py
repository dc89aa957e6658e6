from __future__ import annotations

import pytest
from django.test import Client


@pytest.fixture
def admin_client_(django_user_model):
    client = Client()
    client.force_login(django_user_model.objects.create_superuser(username="root-op", password="pw-root-op"))
    return client
