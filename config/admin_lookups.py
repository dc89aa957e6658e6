"""Admin change lists refuse odd query strings instead of failing on them.

Django's admin turns most bad filter values into its "invalid lookup" page
(``IncorrectLookupParameters`` -> redirect to ``?e=1``), but not all: a year
of 400 digits in a date-hierarchy link overflows, ``start__year=9999`` runs
past ``datetime.max``, and a database may refuse a value outright. Those
escaped as 500s. ``RobustLookupsMixin`` maps exactly these errors, raised
while the change list reads its query string, to that same page.
``harden_registered_admins`` mixes it into every registered admin, the
apps' own and third-party ones (django-axes' logs).
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.db import DataError

LOOKUP_ERRORS = (ValueError, OverflowError, DataError)


class RobustLookupsMixin:
    def get_changelist_instance(self, request):
        try:
            return super().get_changelist_instance(request)
        except LOOKUP_ERRORS as exc:
            raise IncorrectLookupParameters(exc) from exc


def harden_registered_admins(site: admin.AdminSite = admin.site) -> None:
    for model, current in list(site._registry.items()):
        if isinstance(current, RobustLookupsMixin):
            continue
        cls = type(current)
        combined = type(cls.__name__, (RobustLookupsMixin, cls), {"__module__": cls.__module__})
        site.unregister(model)
        site.register(model, combined)
