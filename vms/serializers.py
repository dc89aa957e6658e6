"""API shapes of the VM scheduler's records."""

from __future__ import annotations

from datetime import timezone as dt_timezone

from django.utils import timezone
from drf_spectacular.utils import PolymorphicProxySerializer
from rest_framework import serializers

from exams import rules as exam_rules
from exams.serializers import ExamSerializer
from vms.models import VM, VMState
from vms.plan_summary import iso_ms


def effective_state(vm: VM, now) -> str:
    """A waiting VM whose allocation has finished (by the provider's FIFO
    model) is ready: the scheduler does not store every such change."""
    if vm.state == VMState.WAITING and vm.ready_at is not None and vm.ready_at <= now:
        return VMState.READY
    return vm.state


class VMSerializer(serializers.ModelSerializer):
    state = serializers.SerializerMethodField()
    exam = serializers.IntegerField(source="exam_id", allow_null=True, read_only=True)
    exam_ref = serializers.IntegerField(
        read_only=True, help_text="Id of the exam it was last bound to (kept after a delete)."
    )

    class Meta:
        model = VM
        fields = [
            "id",
            "uuid",
            "exam",
            "exam_ref",
            "state",
            "requested_at",
            "ready_at",
            "used_at",
            "stop_requested_at",
            "stopped_at",
            "error",
        ]
        read_only_fields = fields

    def get_state(self, vm: VM) -> str:
        now = self.context.get("now") or timezone.now()
        return effective_state(vm, now)


class VMListQuerySerializer(serializers.Serializer):
    """Filters of GET /vms."""

    # Exam ids are 32-bit (exams.rules): a larger one is a 400, not an overflow.
    exam = serializers.IntegerField(required=False, min_value=exam_rules.ID_MIN, max_value=exam_rules.ID_MAX)
    state = serializers.ChoiceField(choices=VMState.values, required=False)


# --- GET /exams/<id>/plan: the stored plan summary (vms.plan_summary.ExamPlanReport) ----


class MsDateTimeField(serializers.DateTimeField):
    """UTC with milliseconds and ``Z``, as every time the scheduler reports."""

    def to_representation(self, value):
        return iso_ms(value.astimezone(dt_timezone.utc)) if value is not None else None


class _VMCountsSerializer(serializers.Serializer):
    requested = serializers.IntegerField(help_text="VMs requested for the exam, ever (failed starts excluded).")
    ready = serializers.IntegerField(help_text="VMs ready now.")
    stopped = serializers.IntegerField()
    gone = serializers.IntegerField(
        help_text="VMs the provider answered 404 for: unknown to it, never counted as ready."
    )


class _RunSerializer(serializers.Serializer):
    first_request_at = MsDateTimeField()
    count = serializers.IntegerField()
    spacing_s = serializers.FloatField(help_text="Seconds between the ready times of the run's VMs.")
    first_ready_at = MsDateTimeField()
    last_ready_at = MsDateTimeField()
    late = serializers.BooleanField(help_text="Ready only after the start (shortfall), before the end.")


class _PointSerializer(serializers.Serializer):
    t = MsDateTimeField()
    ready = serializers.IntegerField()


class _TimelineSerializer(serializers.Serializer):
    planned = _PointSerializer(
        many=True,
        help_text="Planned ready VMs from the plan's time (`planned_at`, the first point) on. Empty once the exam is "
        "over (nothing is planned for it any more and past plans are not kept; `actual` shows what happened) and "
        "before the scheduler has planned it. At most 200 points.",
    )
    actual = _PointSerializer(
        many=True, help_text="Ready VMs over time so far, from the VM records. At most 200 points."
    )


class ExamPlanSerializer(serializers.Serializer):
    """The exam's VM plan. Plan figures come from the summary the VM scheduler
    stores whenever it (re)plans: this read never plans. VM counts, the actual
    timeline and (once started) what was ready at the start come from the VM
    records, as of now."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    start = MsDateTimeField()
    end = MsDateTimeField()
    students = serializers.IntegerField()
    started = serializers.BooleanField()
    ended = serializers.BooleanField(help_text="Over: nothing is planned for it any more.")
    planned_at = MsDateTimeField(
        allow_null=True,
        help_text="When the VM scheduler computed the plan figures shown (it stores them when it plans, rewriting "
        "an exam's only when they change). Null: it has not planned this exam yet (see `plan_note`).",
    )
    stale = serializers.BooleanField(
        help_text="The exam was changed after `planned_at` (start, end or students): the figures are for the exam "
        "before the change until the scheduler's next pass."
    )
    plan_note = serializers.CharField(help_text="In words: where the plan figures come from and how fresh they are.")
    vms = _VMCountsSerializer()
    requesting_starts_at = MsDateTimeField(allow_null=True, help_text="The first VM request (made or planned).")
    expected_ready_at_start = serializers.IntegerField(
        allow_null=True,
        help_text="Before the start: VMs the plan has ready by it. After the start: how many were ready at it (VM "
        "records). Null: not planned yet.",
    )
    shortfall = serializers.IntegerField(
        allow_null=True, help_text="Students without a VM at the start. Null: not planned yet."
    )
    at_risk = serializers.BooleanField(allow_null=True, help_text="A shortfall. Null: not planned yet.")
    planned_requests = serializers.IntegerField(help_text="VM requests still planned for the exam.")
    late_planned = serializers.IntegerField(help_text="Late VMs planned for the shortfall (ready after the start).")
    last_late_ready_at = MsDateTimeField(allow_null=True, help_text="When the last planned late VM should be ready.")
    shortfall_note = serializers.CharField(
        help_text="In words: how many late VMs are planned and when the last should be ready, or that none can be "
        "provided (a late VM must be ready VM_LATE_MIN_USEFUL_SECONDS before the end). Empty without a shortfall."
    )
    runs = _RunSerializer(many=True, help_text="The planned requests, as runs of back-to-back VMs.")
    timeline = _TimelineSerializer()


# --- the plan summary in POST /exams and PATCH/PUT /exams/<id> answers -------------


class ExamPlanBriefSerializer(serializers.Serializer):
    expected_ready_at_start = serializers.IntegerField(
        allow_null=True, help_text="VMs that can be ready at the start (on time)."
    )
    shortfall = serializers.IntegerField(allow_null=True, help_text="Students without a VM at the start.")
    requesting_starts_at = serializers.DateTimeField(
        allow_null=True, help_text="The first VM request (made or planned)."
    )
    late_planned = serializers.IntegerField(help_text="Late VMs planned for the shortfall (ready after the start).")
    last_late_ready_at = serializers.DateTimeField(allow_null=True)
    note = serializers.CharField(help_text="In words: what is planned about the missing VMs.")


class ExamWithPlanSerializer(ExamSerializer):
    """Documentation of the write answers (the views add ``plan`` to the exam)."""

    plan = ExamPlanBriefSerializer(read_only=True)

    class Meta(ExamSerializer.Meta):
        fields = [*ExamSerializer.Meta.fields, "plan"]
        read_only_fields = [*ExamSerializer.Meta.read_only_fields, "plan"]


# --- POST /exams/preview (documentation of the shapes) ------------------------------


class PreviewCreateExamSerializer(ExamSerializer):
    """A new exam, as ``POST /exams`` takes it (the id is optional); a
    preview refuses fields it does not know (config.openapi: ``closed``)."""

    closed = True


class PreviewUpdateExamSerializer(ExamSerializer):
    """An update names the exam and what changes (the exam rules apply)."""

    closed = True

    id = serializers.IntegerField(min_value=exam_rules.ID_MIN, max_value=exam_rules.ID_MAX)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("name", "start", "end", "students"):
            self.fields[name].required = False


class PreviewExamIdSerializer(serializers.Serializer):
    closed = True
    id = serializers.IntegerField(min_value=exam_rules.ID_MIN, max_value=exam_rules.ID_MAX)


class PreviewCreateChangeSerializer(serializers.Serializer):
    closed = True
    action = serializers.ChoiceField(choices=["create"])
    exam = PreviewCreateExamSerializer()


class PreviewUpdateChangeSerializer(serializers.Serializer):
    closed = True
    action = serializers.ChoiceField(choices=["update"])
    exam = PreviewUpdateExamSerializer()


class PreviewDeleteChangeSerializer(serializers.Serializer):
    closed = True
    action = serializers.ChoiceField(choices=["delete"])
    exam = PreviewExamIdSerializer()


def _preview_change(**kwargs) -> PolymorphicProxySerializer:
    """One change, documented by its action (the view parses with
    ``vms.preview.parse_changes``, which applies the same exam rules)."""
    return PolymorphicProxySerializer(
        component_name="PreviewChange",
        serializers={
            "create": PreviewCreateChangeSerializer,
            "update": PreviewUpdateChangeSerializer,
            "delete": PreviewDeleteChangeSerializer,
        },
        resource_type_field_name="action",
        **kwargs,
    )


class ExamPreviewRequestSerializer(serializers.Serializer):
    closed = True
    # max_length goes to the ListSerializer that many=True builds (DRF >= 3.14).
    changes = _preview_change(
        many=True,
        allow_empty=False,
        max_length=1000,
        help_text="Applied now, in order (the scenario format without `at`).",
    )


class _ImpactSerializer(serializers.Serializer):
    id = serializers.IntegerField(allow_null=True, help_text="Null for a new exam without an id.")
    deleted = serializers.BooleanField()
    start = serializers.DateTimeField()
    students = serializers.IntegerField()
    on_time_before = serializers.IntegerField(allow_null=True)
    on_time_after = serializers.IntegerField(allow_null=True)
    shortfall_before = serializers.IntegerField(allow_null=True)
    shortfall_after = serializers.IntegerField(allow_null=True)
    first_request_before = serializers.DateTimeField(allow_null=True)
    first_request_after = serializers.DateTimeField(allow_null=True)
    note_after = serializers.CharField()


class ExamPreviewSerializer(serializers.Serializer):
    exams = _ImpactSerializer(many=True)
