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

import re
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from vms.plan_summary import ExamPlanReport

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

    def _overview(self, exam) -> ExamPlanReport | None:
        from exams.models import Exam
        from vms.selectors import exam_plan_reports

        cache = getattr(_request_cache, "overview", None)
        if cache is None or exam.pk not in cache:
            ids = list(Exam.objects.values_list("id", flat=True)) if cache is None else [exam.pk]
            fresh = exam_plan_reports(exam_ids=ids, now=timezone.now())
            cache = {**(cache or {}), **fresh}
            _request_cache.overview = cache
        return cache.get(exam.pk)

    @admin.display(description=_header("start", "start (UTC)"), ordering="start")
    def start_utc(self, exam):
        return _fmt_html(exam.start)

    @admin.display(description=_header("end", "end (UTC)"), ordering="end")
    def end_utc(self, exam):
        return _fmt_html(exam.end)

    def _counts(self, exam) -> tuple[int, int, int]:
        o = self._overview(exam)
        return (0, 0, 0) if o is None else (o.vms.requested, o.vms.ready, o.vms.stopped)

    @admin.display(description=_header("VMs req / ready / stopped", "VMs requested / VMs ready now / VMs stopped"))
    def vm_counts(self, exam):
        counts = self._counts(exam)
        return format_html(
            '<span title="requested {} / ready now {} / stopped {}">{} / {} / {}</span>', *counts, *counts
        )

    @admin.display(description=_header("requesting starts", "requesting starts (UTC)"))
    def requesting_starts(self, exam):
        o = self._overview(exam)
        return _fmt_html(o.requesting_starts_at) if o is not None and o.requesting_starts_at else "-"

    @admin.display(description=_header("at start", "ready at start (expected; actual once started)"))
    def ready_at_start(self, exam):
        o = self._overview(exam)
        if o is None or o.expected_ready_at_start is None:
            return format_html('<span title="{}">-</span>', o.plan_note) if o is not None else "-"
        if o.started:
            return format_html('<span title="actual: ready when the exam started">{}</span>', o.expected_ready_at_start)
        return format_html('<span title="expected at the start">~{}</span>', o.expected_ready_at_start)

    @admin.display(description=_header("risk", "shortfall at the start"))
    def at_risk(self, exam):
        o = self._overview(exam)
        short = None if o is None else o.shortfall
        if short:
            tip = "was short at the start" if o.started else "expected to be short at the start"
            return format_html(
                '<strong style="color:#ba2121;white-space:nowrap" title="{}">&#9888; short by {}</strong>', tip, short
            )
        return "-" if short is None else "ok"

    @admin.display(description="VM plan")
    def vm_plan(self, exam):
        if exam is None or exam.pk is None:
            return "-"
        from vms.selectors import exam_plan_report

        now = timezone.now()
        return render_plan_panel(exam_plan_report(exam=exam, now=now), now=now)


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
        before = (
            "new" if r["on_time_before"] is None else f"was {r['on_time_before']}, short by {r['shortfall_before']}"
        )
        lines.append(
            f"{who} (start {_fmt(_parse(r['start']))}, {r['students']} students): {r['on_time_after']} VMs on time, "
            f"short by {r['shortfall_after']} ({before})"
        )
    return (
        "This change leaves students without a VM at the start - "
        + "; ".join(lines)
        + '. Tick "Save despite the VM impact" and save again to go ahead.'
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


def _parse(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def render_plan_panel(report: ExamPlanReport, *, now: datetime | None = None) -> str:
    """The change page's panel: warning, figures, where the plan comes from, chart."""
    now = now or timezone.now()
    parts: list[str] = []
    if report.shortfall:
        figures = (report.expected_ready_at_start, report.students, report.shortfall)
        if not report.started:
            text = format_html(
                "&#9888; At risk: {} of {} VMs can be ready at the start (short by {}); {}.", *figures, _note(report)
            )
        elif not report.ended:
            text = format_html(
                "&#9888; Short at the start: {} of {} VMs were ready when the exam started (short by {}); {}.",
                *figures,
                _note(report),
            )
        else:
            text = format_html(
                "&#9888; Was short at the start: {} of {} VMs were ready when the exam started (short by {}); "
                "{} more became ready during the exam, which ended at {}.",
                *figures,
                _late_ready(report),
                _fmt(report.end),
            )
        parts.append(format_html('<p class="vm-plan-warning" style="color:#ba2121;font-weight:bold">{}</p>', text))
    vms = report.vms
    expected = report.expected_ready_at_start
    parts.append(
        format_html(
            "<p>Students: <b>{}</b> &middot; VMs requested {}, ready now {}, stopped {}{} &middot; "
            "requesting starts: {} &middot; ready at start ({}): <b>{}</b></p>",
            report.students,
            vms.requested,
            vms.ready,
            vms.stopped,
            format_html(", gone (unknown to the provider) {}", vms.gone) if vms.gone else "",
            _fmt(report.requesting_starts_at) if report.requesting_starts_at else "-",
            "actual" if report.started else "expected",
            "-" if expected is None else expected,
        )
    )
    if report.ended:
        parts.append(
            mark_safe(
                '<p style="color:#666">The exam is over: nothing is planned for it any more '
                "(the chart shows what was actually ready).</p>"
            )
        )
    else:
        style = "color:#ba2121" if report.planned_at is None or report.stale else "color:#666"
        parts.append(
            format_html('<p class="vm-plan-source" style="{}">Plan: {}.</p>', style, _times_as_shown(report.plan_note))
        )
    parts.append(plan_chart_svg(report, now=now))
    return mark_safe("".join(str(p) for p in parts))


def _times_as_shown(text: str) -> str:
    """Times inside the selectors' notes (API format) as the rest of the admin shows them."""
    return _API_TIME.sub(lambda m: _fmt(datetime.fromisoformat(m.group(0).replace("Z", "+00:00"))), text)


_API_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z")


def _note(report: ExamPlanReport) -> str:
    """The plan's words about late VMs, times shown as in the rest of the admin."""
    return _times_as_shown(report.shortfall_note or "")


def _late_ready(report: ExamPlanReport) -> int:
    """VMs that became ready after the start, before the end (from the actual timeline)."""
    expected = report.expected_ready_at_start or 0
    peak = expected
    for p in report.timeline.actual:
        if report.start < p.t < report.end:
            peak = max(peak, p.ready)
    return min(report.shortfall or 0, max(0, peak - expected))


_TICK_STEPS_S = [
    1,
    2,
    5,
    10,
    15,
    30,
    60,
    120,
    300,
    600,
    900,
    1800,
    3600,
    7200,
    10800,
    21600,
    43200,
    86400,
    172800,
    604800,
]


def chart_range(report: ExamPlanReport) -> tuple[datetime, datetime]:
    """The chart's time axis: from the first request (or the start, whichever
    is earlier) to the end, with a little room either side; "now" plays no part."""
    start, end, requesting = report.start, report.end, report.requesting_starts_at
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
    v1 = value_at(t1)
    assert v1 is not None  # the first point is before t1 (checked above)
    out.append((t1, v1))
    return out


@dataclass(frozen=True, slots=True)
class _Axes:
    """Maps times and VM counts to SVG coordinates."""

    t0: datetime
    span_s: float
    left: int
    plot_w: int
    pad_top: int
    plot_h: int
    top: float

    def x(self, t: datetime) -> float:
        return self.left + (t - self.t0).total_seconds() / self.span_s * self.plot_w

    def y(self, n: float) -> float:
        return self.pad_top + self.plot_h - n / (self.top * 1.1) * self.plot_h

    def polyline(self, points: list[tuple[datetime, float]], *, step: bool) -> str:
        coords = []
        prev = None
        for t, n in points:
            if prev is not None and not _ramps(prev, (t, n), step=step):
                coords.append(f"{self.x(t):.1f},{self.y(prev[1]):.1f}")
            coords.append(f"{self.x(t):.1f},{self.y(n):.1f}")
            prev = (t, n)
        return " ".join(coords)


def _ticks(axes: _Axes, t1: datetime) -> list[dict]:
    """Time ticks (HH:MM[:SS]) on "nice" steps, about six across."""
    step_s = next((s for s in _TICK_STEPS_S if axes.span_s / s <= 7), _TICK_STEPS_S[-1])
    first_tick = int(axes.t0.timestamp() // step_s + 1) * step_s
    tick_fmt = "%H:%M:%S" if step_s < 60 else ("%H:%M" if step_s < 86400 else "%m-%d")
    y0 = axes.y(0)
    out = []
    for k in range(first_tick, int(t1.timestamp()) + 1, step_s):
        t = datetime.fromtimestamp(k, dt_timezone.utc)
        out.append(
            {"x": f"{axes.x(t):.1f}", "y1": f"{y0 + 4:.1f}", "ty": f"{y0 + 14:.1f}", "label": t.strftime(tick_fmt)}
        )
    return out


def _markers(report: ExamPlanReport, axes: _Axes, *, now: datetime, t1: datetime, width: int) -> list[dict]:
    """Start, end (and now, when inside the axis), with labels in two rows
    above the plot so they never overlap."""
    markers = [
        ("start", report.start, "#2b6cb0", _fmt(report.start)[10:]),
        ("end", report.end, "#555", _fmt(report.end)[10:]),
    ]
    if axes.t0 <= now <= t1:
        markers.append(("now", now, "#b7791f", ""))
    rows: list[float] = [float("-inf"), float("-inf")]  # right edge of the last label in each row
    out = []
    for name, t, colour, time in sorted(markers, key=lambda m: m[1]):
        w = 5.6 * len(name + time)
        lx = min(max(axes.x(t), 2 + w / 2), width - 2 - w / 2)
        row = next((i for i, edge in enumerate(rows) if lx - w / 2 > edge + 4), len(rows) - 1)
        rows[row] = lx + w / 2
        out.append(
            {
                "name": name,
                "x": f"{axes.x(t):.1f}",
                "colour": colour,
                "dashed": name == "now",
                "label_x": f"{lx:.1f}",
                "label_y": 12 + 12 * row,
                "time": time,
            }
        )
    return out


def plan_chart_context(report: ExamPlanReport, *, now: datetime, width: int = 680, height: int = 250) -> dict:
    """Every number the chart template draws: planned and actual ready VMs
    over time, with the exam's start and end (the markup is in
    ``vms/plan_chart.svg``).

    The time axis spans the first request to a little after the end (see
    ``chart_range``); a "now" marker is drawn only when now is inside it.
    """
    t0, t1 = chart_range(report)
    # planned up to the end (the plan stops the exam's VMs then)
    planned = _clip([(p.t, p.ready) for p in report.timeline.planned], t0, min(t1, report.end), step=False)
    # what was actually ready: known up to now only
    actual = _clip([(p.t, p.ready) for p in report.timeline.actual], t0, min(t1, now), step=True, zero_before=True)
    students = int(report.students)
    left, right, pad_top, bottom = 40, 16, 34, 40
    axes = _Axes(
        t0=t0,
        span_s=(t1 - t0).total_seconds(),
        left=left,
        plot_w=width - left - right,
        pad_top=pad_top,
        plot_h=height - pad_top - bottom,
        top=max([students, 1] + [n for _, n in planned + actual]),
    )
    return {
        "width": width,
        "height": height,
        "left": left,
        "x1": width - right,
        "pad_top": pad_top,
        "t0": _fmt(t0),
        "t1": _fmt(t1),
        "y0": f"{axes.y(0):.1f}",
        "y0_label": f"{axes.y(0) + 3:.1f}",
        "label_x": left - 4,
        "students": students,
        "y_students": f"{axes.y(students):.1f}",
        "y_students_label": f"{axes.y(students) + 3:.1f}",
        "ticks": _ticks(axes, t1),
        "markers": _markers(report, axes, now=now, t1=t1, width=width),
        "planned": axes.polyline(planned, step=False) if planned else "",
        "actual": axes.polyline(actual, step=True) if actual else "",
        "days": " – ".join(sorted({t0.strftime("%Y-%m-%d"), t1.strftime("%Y-%m-%d")})),
        "text_y": height - 7,
        "planned_label": "planned ready" if report.end > now else "planned ready (none: exam over)",
    }


def plan_chart_svg(report: ExamPlanReport, *, now: datetime | None = None, width: int = 680, height: int = 250) -> str:
    """The chart as inline SVG (template ``vms/plan_chart.svg``)."""
    context = plan_chart_context(report, now=now or timezone.now(), width=width, height=height)
    return mark_safe(render_to_string("vms/plan_chart.svg", context).strip())


class ExamPlanAdmin(ExamVmPlanAdminMixin, admin.ModelAdmin):
    """A stand-alone exam admin with the VM columns, should the exams app's
    own admin ever be unavailable: ``admin.site.register(Exam, ExamPlanAdmin)``."""

    list_display = ["id", "name", "start", "end", "students"]
    ordering = ["start", "id"]
