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
from datetime import datetime, timedelta, timezone as dt_timezone

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.html import escape, format_html
from django.utils.safestring import mark_safe

_request_cache = threading.local()

# Compact list columns (they fit next to the filter sidebar at 1400 px): short
# headers with the full name as a tooltip, times in UTC with seconds.
VM_LIST_COLUMNS = ["vm_counts", "requesting_starts", "ready_at_start", "at_risk"]
# The exam's own datetime columns, shown as UTC with seconds instead.
TIME_COLUMNS = {"start": "start_utc", "end": "end_utc"}


def _header(short: str, full: str) -> str:
    return format_html('<span title="{}">{}</span>', full, short)


class ExamVmPlanAdminMixin:
    """Adds VM columns to the change list and a plan panel to the change form."""

    def get_list_display(self, request):
        base = [TIME_COLUMNS.get(c, c) if isinstance(c, str) else c for c in super().get_list_display(request)]
        return base + [c for c in VM_LIST_COLUMNS if c not in base]

    def get_readonly_fields(self, request, obj=None):
        base = list(super().get_readonly_fields(request, obj))
        return base + ["vm_plan"] if obj is not None and "vm_plan" not in base else base

    def get_fields(self, request, obj=None):
        base = list(super().get_fields(request, obj))
        if obj is None:
            base = [f for f in base if f != "vm_plan"]
        elif "vm_plan" not in base:
            base = base + ["vm_plan"]
        if request.method == "POST" and CONFIRM_FIELD not in base:
            # shown on a re-rendered form: the impact is above, this says "go ahead"
            base.append(CONFIRM_FIELD)
        return base

    def get_form(self, request, obj=None, change=False, **kwargs):
        if request.method == "POST":
            base = kwargs.get("form") or self.form
            kwargs["form"] = type("VmImpactForm", (VmImpactFormMixin, base), {})
        return super().get_form(request, obj, change=change, **kwargs)

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

    @admin.display(description=_header("start", "start (UTC)"), ordering="start")
    def start_utc(self, exam):
        return _fmt_html(exam.start)

    @admin.display(description=_header("end", "end (UTC)"), ordering="end")
    def end_utc(self, exam):
        return _fmt_html(exam.end)

    @admin.display(description=_header("VMs req / ready / stopped", "VMs requested / VMs ready now / VMs stopped"))
    def vm_counts(self, exam):
        o = self._overview(exam)
        return format_html(
            '<span title="requested {} / ready now {} / stopped {}">{} / {} / {}</span>',
            *(o.get(k, 0) for k in ("requested", "ready", "stopped")),
            *(o.get(k, 0) for k in ("requested", "ready", "stopped")),
        )

    # The single counts, for admins that list them separately.
    @admin.display(description=_header("VMs req", "VMs requested"))
    def vms_requested(self, exam):
        return self._overview(exam).get("requested", 0)

    @admin.display(description=_header("ready", "VMs ready now"))
    def vms_ready(self, exam):
        return self._overview(exam).get("ready", 0)

    @admin.display(description=_header("stopped", "VMs stopped"))
    def vms_stopped(self, exam):
        return self._overview(exam).get("stopped", 0)

    @admin.display(description=_header("requesting starts", "requesting starts (UTC)"))
    def requesting_starts(self, exam):
        t = self._overview(exam).get("requesting_starts_at")
        return _fmt_html(t) if t else "-"

    @admin.display(description=_header("at start", "ready at start (expected; actual once started)"))
    def ready_at_start(self, exam):
        overview = self._overview(exam)
        n = overview.get("expected_ready_at_start")
        if n is None:
            return "-"
        if overview.get("started"):
            return format_html('<span title="actual: ready when the exam started">{}</span>', n)
        return format_html('<span title="expected at the start">~{}</span>', n)

    @admin.display(description=_header("risk", "shortfall at the start"))
    def at_risk(self, exam):
        overview = self._overview(exam)
        short = overview.get("shortfall")
        if short:
            tip = "was short at the start" if overview.get("started") else "expected to be short at the start"
            return format_html(
                '<strong style="color:#ba2121;white-space:nowrap" title="{}">&#9888; short by {}</strong>', tip, short
            )
        return "-" if short is None else "ok"

    @admin.display(description="VM plan")
    def vm_plan(self, exam):
        if exam is None or exam.pk is None:
            return "-"
        from vms.selectors import exam_plan_summary

        now = timezone.now()
        summary = exam_plan_summary(exam=exam, now=now)
        return render_plan_panel(summary, now=now)


CONFIRM_FIELD = "confirm_vm_impact"


class VmImpactFormMixin(forms.Form):
    """Before an exam is saved: if the change creates or enlarges a shortfall
    (its own or another exam's), the form shows the impact - the pure
    planner's what-if, as ``POST /exams/preview`` gives it - and asks for
    confirmation; ticking the box and saving again goes ahead."""

    confirm_vm_impact = forms.BooleanField(
        required=False,
        label="Save despite the VM impact",
        help_text="Needed only when this change leaves students without a VM at a start (shown above).",
    )

    def clean(self):
        cleaned = super().clean()
        if self.errors or cleaned.get(CONFIRM_FIELD):
            return cleaned
        impact = exam_form_impact(self.instance, cleaned)
        from vms.preview import worsens

        if impact and worsens(impact):
            raise ValidationError(impact_message(impact), code="vm_impact")
        return cleaned


def exam_form_impact(instance, cleaned: dict) -> list[dict]:
    """The what-if of saving this form: a create, or an update of the fields it changes."""
    from vms.preview import ExamChange
    from vms.selectors import exam_changes_preview

    names = ("start", "end", "students")
    if any(cleaned.get(n) is None for n in names):
        return []
    if cleaned["end"] <= timezone.now():
        return []  # an exam recorded after the fact needs no VM and takes none from others
    if instance.pk is None:
        change = ExamChange("create", None, {n: cleaned[n] for n in names})
    else:
        fields = {n: cleaned[n] for n in names if cleaned[n] != getattr(instance, n)}
        if not fields:
            return []
        change = ExamChange("update", instance.pk, fields)
    from vms.simulation import ScenarioError

    try:
        return exam_changes_preview(changes=[change], now=timezone.now())
    except ScenarioError:
        return []  # an invalid exam (end before start...): the form's own validation says so


def impact_message(impact: list[dict]) -> str:
    worse = [r for r in impact if (r["shortfall_after"] or 0) > (r["shortfall_before"] or 0)]
    lines = []
    for r in worse:
        who = "this exam" if r["id"] is None else f"exam {r['id']}"
        before = "new" if r["on_time_before"] is None else f"was {r['on_time_before']}, short by {r['shortfall_before']}"
        lines.append(
            f"{who} (start {_fmt(_parse(r['start']))}, {r['students']} students): {r['on_time_after']} VMs on time, "
            f"short by {r['shortfall_after']} ({before})"
        )
    return (
        "This change leaves students without a VM at the start - " + "; ".join(lines)
        + ". Tick \"Save despite the VM impact\" and save again to go ahead."
    )


def fmt_utc(t: datetime) -> str:
    """UTC with seconds: ``2026-03-02 07:15:00Z``."""
    return t.astimezone(dt_timezone.utc).strftime("%Y-%m-%d %H:%M:%S") + "Z"


_fmt = fmt_utc


def fmt_utc_html(t: datetime) -> str:
    """``fmt_utc`` for list cells: may wrap between date and time, never inside either."""
    date, time = fmt_utc(t).split(" ")
    return format_html(
        '<span class="utc"><span style="white-space:nowrap">{}</span> <span style="white-space:nowrap">{}</span></span>',
        date,
        time,
    )


_fmt_html = fmt_utc_html


def _parse(iso: str | None) -> datetime | None:
    return None if iso is None else datetime.fromisoformat(iso.replace("Z", "+00:00"))


def render_plan_panel(summary: dict, *, now: datetime | None = None) -> str:
    """The change page's panel: warning, figures, chart."""
    now = now or timezone.now()
    start, end = _parse(summary["start"]), _parse(summary["end"])
    ended = end <= now
    parts = []
    if summary["shortfall"]:
        figures = (summary["expected_ready_at_start"], summary["students"], summary["shortfall"])
        if not summary["started"]:
            text = format_html(
                "&#9888; At risk: {} of {} VMs can be ready at the start (short by {}); {}.",
                *figures,
                _note(summary),
            )
        elif not ended:
            text = format_html(
                "&#9888; Short at the start: {} of {} VMs were ready when the exam started (short by {}); {}.",
                *figures,
                _note(summary),
            )
        else:
            late = _late_ready(summary, start, end)
            text = format_html(
                "&#9888; Was short at the start: {} of {} VMs were ready when the exam started (short by {}); "
                "{} more became ready during the exam, which ended at {}.",
                *figures,
                late,
                _fmt(end),
            )
        parts.append(format_html('<p class="vm-plan-warning" style="color:#ba2121;font-weight:bold">{}</p>', text))
    vms = summary["vms"]
    requesting = _parse(summary["requesting_starts_at"])
    parts.append(
        format_html(
            "<p>Students: <b>{}</b> &middot; VMs requested {}, ready now {}, stopped {}{} &middot; "
            "requesting starts: {} &middot; ready at start ({}): <b>{}</b></p>",
            summary["students"],
            vms["requested"],
            vms["ready"],
            vms["stopped"],
            format_html(", gone (unknown to the provider) {}", vms["gone"]) if vms.get("gone") else "",
            _fmt(requesting) if requesting else "-",
            "actual" if summary["started"] else "expected",
            summary["expected_ready_at_start"],
        )
    )
    if ended:
        parts.append(mark_safe('<p style="color:#666">The exam is over: nothing is planned for it any more '
                               "(the chart shows what was actually ready).</p>"))
    parts.append(plan_chart_svg(summary, now=now))
    return mark_safe("".join(str(p) for p in parts))


def _note(summary: dict) -> str:
    """The plan's words about late VMs, times shown as in the rest of the admin."""
    note = summary.get("shortfall_note") or ""
    last = _parse(summary.get("last_late_ready_at"))
    return note.replace(summary["last_late_ready_at"], _fmt(last)) if last else note


def _late_ready(summary: dict, start: datetime, end: datetime) -> int:
    """VMs that became ready after the start, before the end (from the actual timeline)."""
    peak = summary["expected_ready_at_start"]
    for p in summary["timeline"]["actual"]:
        t = _parse(p["t"])
        if start < t < end:
            peak = max(peak, p["ready"])
    return min(summary["shortfall"], max(0, peak - summary["expected_ready_at_start"]))


_TICK_STEPS_S = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800]


def chart_range(summary: dict) -> tuple[datetime, datetime]:
    """The chart's time axis: from the first request (or the start, whichever
    is earlier) to the end, with a little room either side; "now" plays no part."""
    start, end = _parse(summary["start"]), _parse(summary["end"])
    requesting = _parse(summary.get("requesting_starts_at"))
    first = min(requesting, start) if requesting else start
    pad = max((end - first) * 0.05, timedelta(seconds=30))
    return first - pad, end + pad


def _ramps(prev: tuple[datetime, float], nxt: tuple[datetime, float], *, step: bool) -> bool:
    """Whether the line between two points is a ramp (drawn diagonally): never
    for steps; for the planned line only across a run of several VMs (a single
    VM, or the first of a run, becomes ready at its point: a step)."""
    return not step and nxt[1] - prev[1] > 1


def _clip(
    points: list[tuple[datetime, float]], t0: datetime, t1: datetime, *, step: bool, zero_before: bool = False
) -> list[tuple[datetime, float]]:
    """The points inside [t0, t1], with the value at t0 and held up to t1.
    ``zero_before``: the count is 0 before the first point (actual VMs)."""
    if zero_before and points and points[0][0] > t0:
        points = [(t0, 0), *points]
    if not points or points[0][0] >= t1 or t1 <= t0:
        return []

    def value_at(t: datetime) -> float | None:
        before = [p for p in points if p[0] <= t]
        if not before:
            return None
        prev = before[-1]
        after = [p for p in points if p[0] > t]
        if not after or not _ramps(prev, after[0], step=step):
            return prev[1]
        nxt = after[0]
        return prev[1] + (nxt[1] - prev[1]) * ((t - prev[0]) / (nxt[0] - prev[0]))

    out: list[tuple[datetime, float]] = []
    v0 = value_at(t0)
    if v0 is not None:
        out.append((t0, v0))
    out += [(t, n) for t, n in points if t0 < t < t1]
    out.append((t1, value_at(t1)))
    return out


def plan_chart_svg(summary: dict, *, now: datetime | None = None, width: int = 680, height: int = 250) -> str:
    """Planned and actual ready VMs over time, with the exam's start and end.

    The time axis spans the first request to a little after the end (see
    ``chart_range``); a "now" marker is drawn only when now is inside it.
    Marker labels sit in a band above the plot, time ticks and the legend below.
    """
    now = now or timezone.now()
    start, end = _parse(summary["start"]), _parse(summary["end"])
    t0, t1 = chart_range(summary)
    # planned up to the end (the plan stops the exam's VMs then)
    planned = _clip([(_parse(p["t"]), p["ready"]) for p in summary["timeline"]["planned"]], t0, min(t1, end), step=False)
    # what was actually ready: known up to now only
    actual_points = [(_parse(p["t"]), p["ready"]) for p in summary["timeline"]["actual"]]
    actual = _clip(actual_points, t0, min(t1, now), step=True, zero_before=True)
    students = int(summary["students"])
    top = max([students, 1] + [n for _, n in planned + actual])
    left, right, pad_top, bottom = 40, 16, 34, 40
    plot_w, plot_h = width - left - right, height - pad_top - bottom
    span = (t1 - t0).total_seconds()

    def x(t: datetime) -> float:
        return left + (t - t0).total_seconds() / span * plot_w

    def y(n: float) -> float:
        return pad_top + plot_h - n / (top * 1.1) * plot_h

    def poly(points, *, step: bool) -> str:
        coords = []
        prev = None
        for t, n in points:
            if prev is not None and not _ramps(prev, (t, n), step=step):
                coords.append(f"{x(t):.1f},{y(prev[1]):.1f}")
            coords.append(f"{x(t):.1f},{y(n):.1f}")
            prev = (t, n)
        return " ".join(coords)

    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="vm-plan-chart" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" data-t0="{_fmt(t0)}" data-t1="{_fmt(t1)}" data-x0="{left}" '
        f'data-x1="{width - right}" role="img" aria-label="planned and actual ready VMs" '
        'style="background:#fff;border:1px solid #ddd;font-family:sans-serif">',
        f'<line x1="{left}" y1="{y(0):.1f}" x2="{width - right}" y2="{y(0):.1f}" stroke="#999"/>',
        f'<line x1="{left}" y1="{pad_top}" x2="{left}" y2="{y(0):.1f}" stroke="#999"/>',
        f'<text x="{left - 4}" y="{y(0) + 3:.1f}" font-size="10" text-anchor="end">0</text>',
        f'<line x1="{left}" y1="{y(students):.1f}" x2="{width - right}" y2="{y(students):.1f}" '
        f'stroke="#888" stroke-dasharray="4 3"/>',
        f'<text x="{left - 4}" y="{y(students) + 3:.1f}" font-size="10" text-anchor="end">'
        f'<title>students</title>{students}</text>',
    ]
    # Time ticks (HH:MM[:SS]) on "nice" steps, about six across.
    step_s = next((s for s in _TICK_STEPS_S if span / s <= 7), _TICK_STEPS_S[-1])
    first_tick = int(t0.timestamp() // step_s + 1) * step_s
    tick_fmt = "%H:%M:%S" if step_s < 60 else ("%H:%M" if step_s < 86400 else "%m-%d")
    for k in range(first_tick, int(t1.timestamp()) + 1, step_s):
        t = datetime.fromtimestamp(k, dt_timezone.utc)
        svg.append(f'<line x1="{x(t):.1f}" y1="{y(0):.1f}" x2="{x(t):.1f}" y2="{y(0) + 4:.1f}" stroke="#999"/>')
        svg.append(
            f'<text x="{x(t):.1f}" y="{y(0) + 14:.1f}" font-size="10" fill="#555" text-anchor="middle">'
            f"{t.strftime(tick_fmt)}</text>"
        )
    # Markers, with labels in two rows above the plot so they never overlap.
    markers = [("start", start, "#2b6cb0", _fmt(start)[10:]), ("end", end, "#555", _fmt(end)[10:])]
    if t0 <= now <= t1:
        markers.append(("now", now, "#b7791f", ""))
    rows: list[float] = [float("-inf"), float("-inf")]  # right edge of the last label in each row
    for name, t, colour, time in sorted(markers, key=lambda m: m[1]):
        label = name + time
        dash = ' stroke-dasharray="2 2"' if name == "now" else ""
        svg.append(
            f'<line class="marker-{name}" x1="{x(t):.1f}" y1="{pad_top}" x2="{x(t):.1f}" y2="{y(0):.1f}" '
            f'stroke="{colour}"{dash}/>'
        )
        w = 5.6 * len(label)
        lx = min(max(x(t), 2 + w / 2), width - 2 - w / 2)
        row = next((i for i, edge in enumerate(rows) if lx - w / 2 > edge + 4), len(rows) - 1)
        rows[row] = lx + w / 2
        svg.append(
            f'<text class="label-{name}" x="{lx:.1f}" y="{12 + 12 * row}" font-size="10" fill="{colour}" '
            f'text-anchor="middle">{name}<tspan>{escape(time)}</tspan></text>'
        )
    if planned:
        svg.append(f'<polyline fill="none" stroke="#3182ce" stroke-width="2" points="{poly(planned, step=False)}"/>')
    if actual:
        svg.append(f'<polyline fill="none" stroke="#38a169" stroke-width="2" points="{poly(actual, step=True)}"/>')
    days = sorted({t0.strftime("%Y-%m-%d"), t1.strftime("%Y-%m-%d")})
    svg.append(f'<text x="{left}" y="{height - 7}" font-size="10" fill="#555">UTC, {" – ".join(days)}</text>')
    planned_label = "planned ready" if end > now else "planned ready (none: exam over)"
    svg.append(
        f'<text x="{width - right}" y="{height - 7}" font-size="10" text-anchor="end">'
        f'<tspan fill="#3182ce">&#9644; {planned_label}</tspan>  <tspan fill="#38a169">&#9644; actual ready</tspan></text>'
    )
    svg.append("</svg>")
    return mark_safe("".join(svg))


class ExamPlanAdmin(ExamVmPlanAdminMixin, admin.ModelAdmin):
    """A stand-alone exam admin with the VM columns, should the exams app's
    own admin ever be unavailable: ``admin.site.register(Exam, ExamPlanAdmin)``."""

    list_display = ["id", "name", "start", "end", "students"]
    ordering = ["start", "id"]
