"""What a device is doing, as the device API and pages show it: its current
job (public id or None) and how many jobs it finished.

``devices`` does not know the work that runs on devices. The app that runs it
(``jobs``) registers an annotator in its ``AppConfig.ready()``: a function
adding ``current_job`` and ``jobs_done`` to a device queryset in SQL (so a
list of devices stays one query). Without one, every device is idle with no
jobs done.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypedDict

from django.db.models import CharField, IntegerField, QuerySet, Value

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

    from devices.models import Device

Annotator = Callable[[QuerySet], QuerySet]


class Activity(TypedDict):
    """The fields ``with_activity`` adds to every device."""

    current_job: str | None
    jobs_done: int


if TYPE_CHECKING:
    # A device read through ``with_activity`` (for annotations only).
    DeviceWithActivity = WithAnnotations[Device, Activity]

_annotator: Annotator | None = None


def register_activity(annotator: Annotator) -> None:
    """Install the function that annotates ``current_job`` and ``jobs_done``
    (one per process; registering again replaces it)."""
    global _annotator
    _annotator = annotator


def with_activity(qs: QuerySet) -> QuerySet:
    if _annotator is not None:
        return _annotator(qs)
    return qs.annotate(
        current_job=Value(None, output_field=CharField()),
        jobs_done=Value(0, output_field=IntegerField()),
    )
