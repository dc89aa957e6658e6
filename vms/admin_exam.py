"""VM provisioning columns and chart for the exam admin.

``ExamVmPlanAdminMixin`` adds, per exam: students (the exam's own column),
VMs requested / ready / stopped, when requesting starts, the expected ready
count at the start, a red warning with the shortfall when the exam is at
risk, and on the change page a server-rendered SVG chart of planned and
actual ready VMs against the exam's start and end.

Use it by mixing it in front of the exam admin::

    class ExamAdmin(ExamVmPlanAdminMixin, admin.ModelAdmin): ...

``vms.admin`` does this automatically for whatever exam admin is registered,
so nothing else has to change.
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone as dt_timezone

from django.contrib import admin
from django.utils import timezone
from django.utils.html import escape, format_html
from django.utils.safestring import mark_safe

_request_cache = threading.local()

VM_LIST_COLUMNS = ["vms_requested", "vms_ready", "vms_stopped", "requesting_starts", "ready_at_start", "at_risk"]


class ExamVmPlanAdminMixin:
    """Adds VM columns to the change list and a plan panel to the change form."""

    def get_list_display(self, request):
        base = list(super().get_list_display(request))
        return base + [c for c in VM_LIST_COLUMNS if c not in base]

    def get_readonly_fields(self, request, obj=None):
        base = list(super().get_readonly_fields(request, obj))
        return base + ["vm_plan"] if obj is not None and "vm_plan" not in base else base

    def get_fields(self, request, obj=None):
        base = list(super().get_fields(request, obj))
        if obj is None:
            return [f for f in base if f != "vm_plan"]
        return base if "vm_plan" in base else base + ["vm_plan"]

    def changelist_view(self, request, extra_context=None):
        # One plan and one aggregate for the whole page, not one per row.
        _request_cache.overview = None
        try:
            response = super().changelist_view(request, extra_context)
            if hasattr(response, "render") and not getattr(response, "is_rendered", True):
                response.render()
            return response
        finally:
            _request_cache.overview = None

    def _overview(self, exam) -> dict:
        from exams.models import Exam
        from vms.selectors import exams_overview

        cache = getattr(_request_cache, "overview", None)
        if cache is None or exam.pk not in cache:
            ids = list(Exam.objects.values_list("id", flat=True)) if cache is None else [exam.pk]
            fresh = exams_overview(exam_ids=ids, now=timezone.now())
            cache = {**(cache or {}), **fresh}
            _request_cache.overview = cache
        return cache.get(exam.pk, {})

    @admin.display(description="VMs requested")
    def vms_requested(self, exam):
        return self._overview(exam).get("requested", 0)

    @admin.display(description="VMs ready")
    def vms_ready(self, exam):
        return self._overview(exam).get("ready", 0)

    @admin.display(description="VMs stopped")
    def vms_stopped(self, exam):
        return self._overview(exam).get("stopped", 0)

    @admin.display(description="requesting starts")
    def requesting_starts(self, exam):
        t = self._overview(exam).get("requesting_starts_at")
        return _fmt(t) if t else "-"

    @admin.display(description="ready at start (expected)")
    def ready_at_start(self, exam):
        n = self._overview(exam).get("expected_ready_at_start")
        return "-" if n is None else n

    @admin.display(description="risk")
    def at_risk(self, exam):
        short = self._overview(exam).get("shortfall")
        if short:
            return format_html('<strong style="color:#ba2121">&#9888; short by {}</strong>', short)
        return "-" if short is None else "ok"

    @admin.display(description="VM plan")
    def vm_plan(self, exam):
        if exam is None or exam.pk is None:
            return "-"
        from vms.selectors import exam_plan_summary

        summary = exam_plan_summary(exam=exam, now=timezone.now())
        return render_plan_panel(summary)


def _fmt(t: datetime) -> str:
    return t.astimezone(dt_timezone.utc).strftime("%Y-%m-%d %H:%M:%S") + "Z"


def _parse(iso: str | None) -> datetime | None:
    return None if iso is None else datetime.fromisoformat(iso.replace("Z", "+00:00"))


def render_plan_panel(summary: dict) -> str:
    """The change page's panel: warning, figures, chart."""
    parts = []
    if summary["shortfall"]:
        parts.append(
            format_html(
                '<p style="color:#ba2121;font-weight:bold">&#9888; At risk: {} of {} VMs {} ready at the start '
                "(short by {}); the missing ones follow as soon as the allocator allows, until the exam ends.</p>",
                summary["expected_ready_at_start"],
                summary["students"],
                "were" if summary["started"] else "can be",
                summary["shortfall"],
            )
        )
    vms = summary["vms"]
    parts.append(
        format_html(
            "<p>Students: <b>{}</b> &middot; VMs requested {}, ready {}, stopped {} &middot; "
            "requesting starts: {} &middot; ready at start ({}): <b>{}</b></p>",
            summary["students"],
            vms["requested"],
            vms["ready"],
            vms["stopped"],
            summary["requesting_starts_at"] or "-",
            "actual" if summary["started"] else "expected",
            summary["expected_ready_at_start"],
        )
    )
    parts.append(plan_chart_svg(summary))
    return mark_safe("".join(str(p) for p in parts))


def plan_chart_svg(summary: dict, *, width: int = 640, height: int = 220) -> str:
    """Planned and actual ready VMs over time, with the exam's start and end."""
    start, end = _parse(summary["start"]), _parse(summary["end"])
    planned = [(_parse(p["t"]), p["ready"]) for p in summary["timeline"]["planned"]]
    actual = [(_parse(p["t"]), p["ready"]) for p in summary["timeline"]["actual"]]
    times = [t for t, _ in planned + actual] + [start, end]
    requesting = _parse(summary.get("requesting_starts_at"))
    if requesting:
        times.append(requesting)
    t0, t1 = min(times), max(times)
    if t1 <= t0:
        t1 = t0 + (end - start)
    top = max([summary["students"], 1] + [n for _, n in planned + actual])
    left, right, pad_top, bottom = 48, 12, 14, 28
    plot_w, plot_h = width - left - right, height - pad_top - bottom
    span = (t1 - t0).total_seconds() or 1.0

    def x(t: datetime) -> float:
        return left + (t - t0).total_seconds() / span * plot_w

    def y(n: float) -> float:
        return pad_top + plot_h - n / (top * 1.1) * plot_h

    def poly(points, *, step: bool) -> str:
        if not points:
            return ""
        coords = []
        prev = None
        for t, n in points:
            if step and prev is not None:
                coords.append(f"{x(t):.1f},{y(prev):.1f}")
            coords.append(f"{x(t):.1f},{y(n):.1f}")
            prev = n
        if points[-1][0] < t1:
            coords.append(f"{x(t1):.1f},{y(prev):.1f}")
        return " ".join(coords)

    now = timezone.now()
    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="planned and actual ready VMs" style="background:#fff;border:1px solid #ddd">',
        f'<line x1="{left}" y1="{y(0):.1f}" x2="{width - right}" y2="{y(0):.1f}" stroke="#999"/>',
        f'<line x1="{left}" y1="{pad_top}" x2="{left}" y2="{y(0):.1f}" stroke="#999"/>',
        f'<text x="{left - 4}" y="{y(0):.1f}" font-size="10" text-anchor="end">0</text>',
        f'<line x1="{left}" y1="{y(summary["students"]):.1f}" x2="{width - right}" y2="{y(summary["students"]):.1f}" '
        f'stroke="#888" stroke-dasharray="4 3"/>',
        f'<text x="{left - 4}" y="{y(summary["students"]) + 3:.1f}" font-size="10" text-anchor="end">{int(summary["students"])}</text>',
    ]
    for label, t, colour in (("start", start, "#2b6cb0"), ("end", end, "#555")):
        svg.append(f'<line x1="{x(t):.1f}" y1="{pad_top}" x2="{x(t):.1f}" y2="{y(0):.1f}" stroke="{colour}"/>')
        svg.append(f'<text x="{x(t) + 2:.1f}" y="{pad_top + 9}" font-size="10" fill="{colour}">{label}</text>')
    if t0 <= now <= t1:
        svg.append(f'<line x1="{x(now):.1f}" y1="{pad_top}" x2="{x(now):.1f}" y2="{y(0):.1f}" stroke="#d69e2e" stroke-dasharray="2 2"/>')
        svg.append(f'<text x="{x(now) + 2:.1f}" y="{pad_top + 20}" font-size="10" fill="#b7791f">now</text>')
    if planned:
        svg.append(f'<polyline fill="none" stroke="#3182ce" stroke-width="2" points="{poly(planned, step=False)}"/>')
    if actual:
        svg.append(f'<polyline fill="none" stroke="#38a169" stroke-width="2" points="{poly(actual, step=True)}"/>')
    svg.append(f'<text x="{left}" y="{height - 8}" font-size="10">{escape(_fmt(t0))}</text>')
    svg.append(f'<text x="{width - right}" y="{height - 8}" font-size="10" text-anchor="end">{escape(_fmt(t1))}</text>')
    svg.append(
        f'<text x="{left + plot_w / 2:.0f}" y="{height - 8}" font-size="10" text-anchor="middle">'
        '<tspan fill="#3182ce">&#9644; planned ready</tspan>  <tspan fill="#38a169">&#9644; actual ready</tspan></text>'
    )
    svg.append("</svg>")
    return mark_safe("".join(svg))


class ExamPlanAdmin(ExamVmPlanAdminMixin, admin.ModelAdmin):
    """A stand-alone exam admin with the VM columns, should the exams app's
    own admin ever be unavailable: ``admin.site.register(Exam, ExamPlanAdmin)``."""

    list_display = ["id", "name", "start", "end", "students"]
    ordering = ["start", "id"]
