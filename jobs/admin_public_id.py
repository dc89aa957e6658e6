"""Admin pages addressed by the public id (``key``), not the database id.

Operators and users name jobs and programs by the id the API shows
(``/jobs/<key>``); the admin uses the same one: ``/admin/jobs/job/<key>/change/``.
The database id is never accepted in its place: keys may themselves be
numbers ("42" is a valid key), so a number in the URL is always a key, and a
URL that names no key gets the admin's usual "doesn't exist" answer.

Keys travel through the admin's own URL quoting (``admin.utils.quote``, the
same as device ids): characters special in URLs or in that quoting
(``_ : # ? % ...``) become ``_XX``, the rest is percent-encoded by
``reverse``. The id rules already refuse '/', whitespace and controls.

Every link the admin builds to these pages goes through ``public_id_url``,
the change list's links, and the two templates that would otherwise put the
database id in a URL (the "History" button and the history page's
breadcrumbs).
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.utils import quote
from django.contrib.admin.views.main import ChangeList
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join


def public_id_url(obj, *, view: str = "change") -> str:
    """The admin URL of a key-addressed object (a job or a program)."""
    opts = obj._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=(quote(obj.key),))


class PublicIdChangeList(ChangeList):
    def url_for_result(self, result) -> str:
        return public_id_url(result)


class PublicIdAdminMixin(admin.ModelAdmin):
    """For a ModelAdmin whose model has a unique ``key``: its object URLs
    carry that key (see the module docstring). A ModelAdmin itself, so its
    overrides are checked against the admin's."""

    change_form_template = "admin/public_id/change_form.html"
    object_history_template = "admin/public_id/object_history.html"

    def get_object(self, request, object_id, from_field=None):
        # The admin passes the URL segment already unquoted. `_to_field`
        # lookups (popups) keep their meaning.
        if from_field is not None:
            return super().get_object(request, object_id, from_field)
        if "\x00" in object_id:  # in no stored key, and PostgreSQL refuses it
            return None
        return self.get_queryset(request).filter(key=object_id).first()

    def get_changelist(self, request, **kwargs):
        return PublicIdChangeList


def admin_time(value) -> str:
    """A time as every admin page shows it: UTC with seconds (DATETIME_FORMAT)."""
    return date_format(timezone.localtime(value), "DATETIME_FORMAT") if value else "-"


def jobs_table(jobs) -> str:
    """A small table of jobs linked by key (device and program pages)."""
    if not jobs:
        return "-"
    rows = format_html_join(
        "",
        '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>',
        (
            (
                public_id_url(job),
                job.key,
                job.status,
                admin_time(job.created_at),
                admin_time(job.started_at),
                admin_time(job.finished_at),
                job.error[:80] or "",
            )
            for job in jobs
        ),
    )
    return format_html(
        '<table class="job-table"><thead><tr><th>job</th><th>status</th><th>submitted</th><th>started</th>'
        "<th>finished</th><th>error</th></tr></thead><tbody>{}</tbody></table>",
        rows,
    )
