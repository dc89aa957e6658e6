"""Input and output shapes of the program and job API.

A program may carry 10,000 jobs and must be accepted in well under a second,
so its job list is validated by one hand-written loop (``parse_job_specs``)
instead of a nested DRF serializer per job, which costs far more per item.
The rules are the same as the flat form's (``JobSubmitSerializer``) and
errors name the field the same way: ``{"jobs[3].shots": ["..."]}``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ParseError

from core import outbound
from core.fields import (
    ID_INT_LIMIT,
    INT32_MAX,
    INT32_MIN,
    PublicIdField,
    StringOrIntegerField,
    TextField,
    int_id_error,
    public_id_error,
)
from core.parsers import loads as json_loads
from jobs.models import Job, JobStatus, Program
from jobs.services import JobSpec

# Each shot comes back as one bit string as long as the device; a cap keeps a
# single result (and the device's reply) within reason.
MAX_SHOTS = 100_000
_INT_RE = re.compile(r"^\s*[-+]?\d+\s*$")
# An escaped NUL in JSON text: "\u0000" preceded by an even number of
# backslashes (an odd number would make it a literal backslash + "u0000").
_JSON_NUL_RE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")
NUL_MESSAGE = "Strings may not contain NUL (\\u0000) characters."


def contains_nul(value: Any) -> bool:
    """True when a JSON value holds a NUL character in any string or key:
    PostgreSQL cannot store one in ``jsonb``, so it is refused up front."""
    return bool(_JSON_NUL_RE.search(json.dumps(value)))


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "maxLength": 100, "pattern": "^[^\x00]*$"},
            {"type": "integer", "minimum": 1 - ID_INT_LIMIT, "maximum": ID_INT_LIMIT - 1},
        ]
    }
)
class ClientRefField(StringOrIntegerField):
    """The client's own reference (the brief's ``user_id``): a string or an
    integer, kept as a string (no id pattern: any text without NUL)."""


class _JobFieldError(Exception):
    def __init__(self, field: str, message: str):
        self.field, self.message = field, message


def _int(value: Any, field: str, *, low: int, high: int) -> int:
    # Same acceptance as DRF's IntegerField: ints, integral floats and
    # numeric strings (form input), never booleans.
    if type(value) is int:
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and _INT_RE.match(value):
        number = int(value)
    else:
        raise _JobFieldError(field, "A valid integer is required.")
    if number < low:
        raise _JobFieldError(field, f"Ensure this value is greater than or equal to {low}.")
    if number > high:
        raise _JobFieldError(field, f"Ensure this value is less than or equal to {high}.")
    return number


def _job_spec(item: Any) -> JobSpec:
    if type(item) is not dict:
        raise _JobFieldError("", "Expected an object with id, instructions, shots, min_size.")
    key = item.get("id")
    if key is not None:
        if isinstance(key, bool) or not isinstance(key, (str, int)):
            raise _JobFieldError("id", "Must be a string or an integer.")
        if isinstance(key, int) and abs(key) >= ID_INT_LIMIT:
            raise _JobFieldError("id", int_id_error())
        key = str(key)
        error = public_id_error(key)
        if error:
            raise _JobFieldError("id", error)
    instructions = item.get("instructions", [])
    if instructions is None:
        instructions = []
    shots = item.get("shots")
    shots = 1 if shots is None else _int(shots, "shots", low=1, high=MAX_SHOTS)
    min_size = item.get("min_size")
    if min_size is not None:
        min_size = _int(min_size, "min_size", low=1, high=INT32_MAX)
    return JobSpec(key=key, instructions=instructions, shots=shots, min_size=min_size)


def parse_job_specs(data: Any) -> list[JobSpec]:
    """Validate a program's job list. Raises a ValidationError whose keys
    name the job and field (``jobs[3].shots``); at most 20 are reported."""
    if isinstance(data, str):
        # A browsable-API or form submission carries the list as JSON text.
        try:
            data = json_loads(data)
        except ParseError as exc:
            raise serializers.ValidationError({"jobs": [f"Expected a JSON list of jobs: {exc.detail}"]}) from None
    if not isinstance(data, list):
        raise serializers.ValidationError({"jobs": ["Expected a list of jobs."]})
    limit = settings.PROGRAM_MAX_JOBS
    if len(data) > limit:
        raise serializers.ValidationError({"jobs": [f"At most {limit} jobs per program; got {len(data)}."]})
    if not data:
        raise serializers.ValidationError({"jobs": ["A program needs at least one job."]})
    specs: list[JobSpec] = []
    errors: dict[str, list[str]] = {}
    for index, item in enumerate(data):
        try:
            specs.append(_job_spec(item))
        except _JobFieldError as exc:
            name = f"jobs[{index}].{exc.field}" if exc.field else f"jobs[{index}]"
            errors[name] = [exc.message]
            if len(errors) >= 20:
                break
    if not errors and contains_nul([spec.instructions for spec in specs]):
        # One dump for the whole list; only on a hit find the culprit(s).
        for index, spec in enumerate(specs):
            if contains_nul(spec.instructions):
                errors[f"jobs[{index}].instructions"] = [NUL_MESSAGE]
                if len(errors) >= 20:
                    break
    if errors:
        raise serializers.ValidationError(errors)
    return specs


# --- input -----------------------------------------------------------------


class JobSpecSerializer(serializers.Serializer):
    """One job of a program. All fields are optional."""

    # Documentation only: the list is validated by parse_job_specs, same rules.
    id = PublicIdField(required=False, help_text="Public id; generated (uuid4 hex) when absent.")
    instructions = serializers.JSONField(required=False, help_text="Free-form JSON for the QPU (default []).")
    shots = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=MAX_SHOTS, default=1, help_text="null: 1."
    )
    min_size = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=INT32_MAX, help_text="Smallest device size (qubits)."
    )


@extend_schema_field(JobSpecSerializer(many=True))
class JobSpecListField(serializers.Field):
    """A program's job list, validated in one fast loop."""

    schema_extra = {"minItems": 1, "maxItems": settings.PROGRAM_MAX_JOBS}

    def to_internal_value(self, data) -> list[JobSpec]:
        return parse_job_specs(data)

    def to_representation(self, value):
        return value


class _PriorityField(serializers.IntegerField):
    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", INT32_MIN)
        kwargs.setdefault("max_value", INT32_MAX)
        kwargs.setdefault("help_text", "Higher runs first.")
        super().__init__(**kwargs)


# What URLField accepts, as far as a pattern can say it: http(s), a host (no
# userinfo: refused by the callback policy) of at most 253 characters (DNS),
# then any path; or empty (no callbacks). The public-address rule is checked
# at submission and again at delivery (core.outbound), not stated here.
CALLBACK_URL_PATTERN = r"^$|^[Hh][Tt][Tt][Pp][Ss]?://[^/?#@\s]{1,253}(?:[/?#]\S*)?$"


@extend_schema_field({"type": "string", "format": "uri", "maxLength": 1000, "pattern": CALLBACK_URL_PATTERN})
class _CallbackUrlField(serializers.URLField):
    pass


class ProgramCreateSerializer(serializers.Serializer):
    id = PublicIdField(required=False, help_text="Public id; generated (uuid4 hex) when absent.")
    priority = _PriorityField()
    device_type = TextField(max_length=100)
    callback_url = _CallbackUrlField(
        required=False,
        allow_blank=True,
        default="",
        max_length=1000,
        help_text=(
            "Each finished job is POSTed here as JSON, signed (Standard Webhooks) with the program's "
            "webhook_secret. http(s) only; public addresses only (see docs/security.md)."
        ),
    )
    user_id = ClientRefField(required=False, allow_blank=True, default="", help_text="Your own user reference.")
    jobs = JobSpecListField(help_text=f"1 to {settings.PROGRAM_MAX_JOBS} jobs.")

    def validate_callback_url(self, value: str) -> str:
        problem = outbound.callback_url_problem(value) if value else None
        if problem:
            raise serializers.ValidationError(problem)
        return value

    def to_internal_value(self, data):
        try:
            return super().to_internal_value(data)
        except serializers.ValidationError as exc:
            # Job errors come back flat (`jobs[3].shots`), next to the
            # program's own fields, rather than nested under `jobs`.
            detail = exc.detail
            if isinstance(detail, dict) and isinstance(detail.get("jobs"), dict):
                nested = detail.pop("jobs")
                detail.update(nested)
            raise serializers.ValidationError(detail) from None


class JobSubmitSerializer(serializers.Serializer):
    """The brief's flat form: one job naming its program."""

    id = PublicIdField(required=False, help_text="Public id; generated (uuid4 hex) when absent.")
    priority = _PriorityField()
    device_type = TextField(max_length=100)
    program_id = PublicIdField(
        required=False,
        help_text="Program to join; created on first use (owned by you). Absent: the job gets a program of its own.",
    )
    user_id = ClientRefField(required=False, allow_blank=True, default="", help_text="Your own user reference.")
    instructions = serializers.JSONField(
        required=False,
        allow_null=True,
        # The stubs want a mapping default; a JSONField holds any JSON value.
        default=list,  # type: ignore[arg-type]
        help_text="Free-form JSON for the QPU (null: []).",
    )
    shots = serializers.IntegerField(required=False, min_value=1, max_value=MAX_SHOTS, default=1)
    min_size = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=INT32_MAX, default=None)

    def validate_instructions(self, value):
        if value is None:
            return []
        if contains_nul(value):
            raise serializers.ValidationError(NUL_MESSAGE)
        return value


def job_submit_values(data: Any) -> dict[str, Any] | None:
    """What ``JobSubmitSerializer(data=data).validated_data`` holds, for
    parsed JSON that the serializer certainly accepts as it is; None for
    anything else (the serializer then judges it and names what is wrong).

    For the fast lane (``jobs.fastlane``): DRF's field machinery costs about
    half a millisecond per request, this a few microseconds. Deliberately
    narrower than the serializer - JSON integers only where it also takes
    numeric strings and integral floats, no text it would trim - so it never
    accepts what the serializer refuses nor reads a value differently
    (``tests/jobs/test_submit_values.py`` holds both to that on generated
    input)."""
    if type(data) is not dict:
        return None
    values: dict[str, Any] = {}
    for name in ("id", "program_id"):  # optional; null is refused
        if name in data:
            key = _public_id(data[name])
            if key is None:
                return None
            values[name] = key
    priority, device_type = data.get("priority"), data.get("device_type")
    if not _int_within(priority, INT32_MIN, INT32_MAX) or not _text(device_type, max_length=100):
        return None
    if str(device_type).strip() != device_type:  # the serializer would trim it
        return None
    user_id = data.get("user_id", "")
    if type(user_id) is int and abs(user_id) < ID_INT_LIMIT:
        user_id = str(user_id)
    if not (user_id == "" or _text(user_id, max_length=100)):
        return None
    instructions = data.get("instructions")
    instructions = [] if instructions is None else instructions
    if contains_nul(instructions):
        return None
    shots, min_size = data.get("shots", 1), data.get("min_size")
    if not _int_within(shots, 1, MAX_SHOTS) or not (min_size is None or _int_within(min_size, 1, INT32_MAX)):
        return None
    values.update(
        priority=priority,
        device_type=device_type,
        user_id=user_id,
        instructions=instructions,
        shots=shots,
        min_size=min_size,
    )
    return values


def _public_id(value: Any) -> str | None:
    if type(value) is int and abs(value) < ID_INT_LIMIT:
        value = str(value)
    return value if type(value) is str and public_id_error(value) is None else None


def _int_within(value: Any, low: int, high: int) -> bool:
    return type(value) is int and low <= value <= high


def _text(value: Any, *, max_length: int) -> bool:
    """Non-empty text DRF's CharField keeps as it is (JSON strings only;
    no NUL, no lone surrogate)."""
    if not (type(value) is str and 0 < len(value) <= max_length and "\x00" not in value):
        return False
    return value.isascii() or not any("\ud800" <= ch <= "\udfff" for ch in value)


def job_submit_arguments(values: dict[str, Any]) -> dict[str, Any]:
    """The flat form's validated data as ``jobs.services.job_submit``'s
    arguments (the API's field names are the brief's)."""
    return {
        "key": values.get("id"),
        "program_key": values.get("program_id"),
        "client_user_id": values["user_id"],
        "priority": values["priority"],
        "device_type": values["device_type"],
        "instructions": values["instructions"],
        "shots": values["shots"],
        "min_size": values["min_size"],
    }


# --- output ----------------------------------------------------------------


class CallbackStateSerializer(serializers.Serializer):
    status = serializers.CharField(
        source="callback_status", help_text="'' (no callback), pending, delivered or failed."
    )
    attempts = serializers.IntegerField(source="callback_attempts")
    error = serializers.CharField(source="callback_error")
    delivered_at = serializers.DateTimeField(source="callback_delivered_at", allow_null=True)


class JobSerializer(serializers.ModelSerializer):
    """A job in lists (without its instructions and result, which can be large)."""

    id = serializers.CharField(source="key")
    program = serializers.CharField(source="program.key")
    user_id = serializers.CharField(source="program.client_user_id")
    device = serializers.CharField(source="device_id", allow_null=True)
    callback = CallbackStateSerializer(source="*")

    class Meta:
        model = Job
        fields = [
            "id",
            "program",
            "user_id",
            "priority",
            "device_type",
            "shots",
            "min_size",
            "status",
            "device",
            "attempts",
            "created_at",
            "started_at",
            "finished_at",
            "error",
            "callback",
        ]
        read_only_fields = fields


class JobDetailSerializer(JobSerializer):
    """A job with its instructions, result and, while queued, its wait:
    place, estimated start and warnings (``jobs.selectors.job_queue_info``,
    computed once per job)."""

    result = serializers.JSONField(allow_null=True, help_text="One bit string per shot, as long as the device's size.")
    queue_position = serializers.SerializerMethodField(
        help_text="While queued: 1-based place among the queued jobs of its device type; otherwise null."
    )
    estimated_start = serializers.SerializerMethodField(
        help_text="While queued: when it likely starts (recent run times of its device type and the online devices "
        "able to run it); null when not queued or when it cannot be estimated (see estimated_start_reason)."
    )
    estimated_start_reason = serializers.SerializerMethodField(
        help_text="Why estimated_start is null for a queued job (no online device able to run it, no run-time "
        "history yet); otherwise null."
    )
    warnings = serializers.SerializerMethodField(
        help_text="While queued: why the job cannot start yet although accepted (no registered device of its "
        "type, or min_size above all of them); otherwise empty."
    )

    class Meta(JobSerializer.Meta):
        fields = JobSerializer.Meta.fields + [
            "instructions",
            "result",
            "queue_position",
            "estimated_start",
            "estimated_start_reason",
            "warnings",
        ]
        read_only_fields = fields

    def _info(self, job: Job):
        from jobs.selectors import job_queue_info

        return job_queue_info(job)

    def get_queue_position(self, job: Job) -> int | None:
        return self._info(job).position

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_estimated_start(self, job: Job) -> str | None:
        start = self._info(job).estimated_start
        return None if start is None else _DATETIME.to_representation(start)

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_estimated_start_reason(self, job: Job) -> str | None:
        return self._info(job).estimate_reason

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_warnings(self, job: Job) -> list[str]:
        return list(self._info(job).warnings)


_DATETIME = serializers.DateTimeField()


class JobCountsSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    queued = serializers.IntegerField()
    running = serializers.IntegerField()
    done = serializers.IntegerField()
    failed = serializers.IntegerField()
    cancelled = serializers.IntegerField()


class ProgramSerializer(serializers.ModelSerializer):
    """A program with its job counts per status. The counts come from
    ``context["job_counts"]`` ({program pk: {status: n}}), computed for a whole
    page in one query."""

    id = serializers.CharField(source="key")
    owner = serializers.CharField(source="owner.get_username")
    user_id = serializers.CharField(source="client_user_id")
    callback_url = serializers.CharField(help_text="Where finished jobs are POSTed; empty when none.")
    jobs = serializers.SerializerMethodField()
    finished = serializers.SerializerMethodField(help_text="True once no job is queued or running.")

    class Meta:
        model = Program
        fields = ["id", "owner", "user_id", "priority", "device_type", "callback_url", "created_at", "jobs", "finished"]
        read_only_fields = fields

    def _counts(self, program: Program) -> dict[str, int]:
        counts = dict(self.context.get("job_counts", {}).get(program.pk) or {s: 0 for s in JobStatus.values})
        counts["total"] = sum(counts.values())
        return counts

    @extend_schema_field(JobCountsSerializer)
    def get_jobs(self, program: Program) -> dict[str, int]:
        return self._counts(program)

    def get_finished(self, program: Program) -> bool:
        counts = self._counts(program)
        return counts[JobStatus.QUEUED] + counts[JobStatus.RUNNING] == 0


class ProgramCreatedSerializer(ProgramSerializer):
    job_ids = serializers.ListField(
        child=serializers.CharField(), help_text="Public ids of the jobs, in submission order."
    )
    webhook_secret = serializers.CharField(
        help_text="Key that signs this program's callbacks (Standard Webhooks). Shown here only; keep it."
    )
    warnings = serializers.ListField(
        child=serializers.CharField(),
        help_text="Once for the program: why some or all of its jobs cannot start yet although accepted (no "
        "registered device of its type, or jobs whose min_size is above all of them). Each job's own "
        "warnings are on GET /jobs/{id}.",
    )

    class Meta(ProgramSerializer.Meta):
        fields = ProgramSerializer.Meta.fields + ["job_ids", "webhook_secret", "warnings"]
        read_only_fields = fields


class ProgramCancelledSerializer(ProgramSerializer):
    cancelled = serializers.IntegerField(help_text="Queued jobs cancelled by this request.")

    class Meta(ProgramSerializer.Meta):
        fields = ProgramSerializer.Meta.fields + ["cancelled"]
        read_only_fields = fields


class WebhookSecretSerializer(serializers.Serializer):
    program = serializers.CharField(source="key", help_text="The program's public id.")
    webhook_secret = serializers.CharField(help_text="The new signing key; the old one no longer signs anything.")


def job_detail_data(job: Job) -> dict:
    """``JobDetailSerializer(job).data`` without the serializer: building and
    copying two dozen DRF fields per request was a fifth of the Python time of
    GET /jobs/<id> (measured: docs/benchmarks.md). The serializer stays the
    schema; a test keeps the two outputs identical."""
    from jobs.selectors import job_queue_info

    info = job_queue_info(job)
    program = job.program
    return {
        "id": job.key,
        "program": program.key,
        "user_id": program.client_user_id,
        "priority": job.priority,
        "device_type": job.device_type,
        "shots": job.shots,
        "min_size": job.min_size,
        "status": job.status,
        "device": job.device_id,
        "attempts": job.attempts,
        "created_at": _datetime(job.created_at),
        "started_at": _datetime(job.started_at),
        "finished_at": _datetime(job.finished_at),
        "error": job.error,
        "callback": {
            "status": job.callback_status,
            "attempts": job.callback_attempts,
            "error": job.callback_error,
            "delivered_at": _datetime(job.callback_delivered_at),
        },
        "instructions": job.instructions,
        "result": job.result,
        "queue_position": info.position,
        "estimated_start": _datetime(info.estimated_start),
        "estimated_start_reason": info.estimate_reason,
        "warnings": list(info.warnings),
    }


def _datetime(value) -> str | None:
    return None if value is None else _DATETIME.to_representation(value)
