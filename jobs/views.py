"""HTTP entry points of programs and jobs: parse, call one service, answer."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from core.pagination import KeysetPagination
from core.throttling import SubmitRateThrottle
from jobs import selectors, services
from jobs.filters import ORDERING_CHOICES, PROGRAM_ORDERING_CHOICES, filter_jobs, filter_programs, order_by_for
from jobs.models import JobStatus
from jobs.permissions import CanSubmitJobs
from jobs.serializers import (
    JobDetailSerializer,
    JobSerializer,
    JobSubmitSerializer,
    ProgramCancelledSerializer,
    ProgramCreatedSerializer,
    ProgramCreateSerializer,
    ProgramSerializer,
    WebhookSecretSerializer,
    job_detail_data,
    job_submit_arguments,
)

JOB_ID = OpenApiParameter("job_id", str, OpenApiParameter.PATH, description="The job's public id.")
PROGRAM_ID = OpenApiParameter("program_id", str, OpenApiParameter.PATH, description="The program's public id.")
LIST_FILTERS = [
    OpenApiParameter(
        "status",
        {"type": "array", "items": {"type": "string", "enum": JobStatus.values}},
        style="form",
        explode=False,
        description=f"One status or a comma-separated list: {', '.join(JobStatus.values)}. "
        "For programs: those having at least one job in that status.",
    ),
    OpenApiParameter("program", {"type": "string", "maxLength": 100}, description="A program's public id."),
    OpenApiParameter("device_type", {"type": "string", "maxLength": 100}, description="A device type."),
]


def _ordering_param(default: str, choices=ORDERING_CHOICES) -> OpenApiParameter:
    names = [value for value, _ in choices if not value.startswith("-")]
    return OpenApiParameter(
        "ordering",
        str,
        enum=[value for value, _ in choices],
        description=f"{', '.join(names)} (created: submission order); `-` for descending. Default `{default}`. "
        "Ties go to the earlier submission (the later one for `-created`).",
    )


R400 = OpenApiResponse(description="Invalid input; the body names the field.")
R401 = OpenApiResponse(description="Not authenticated.")
R404 = OpenApiResponse(description="No such id among the programs/jobs you may see.")
R409 = OpenApiResponse(
    description="Conflict with what exists; the body names the field (`id` taken, `status` not queued, or for "
    "POST /jobs a `program_id` of another user or whose `device_type`/`priority` differ)."
)
REQUIRE_DEVICE = OpenApiParameter(
    "require_device",
    bool,
    required=False,
    description="true: refuse (409, nothing created) a submission that no registered device could run "
    "(none of its device type, or min_size above all of them) instead of accepting it with `warnings`.",
)
R409_SUBMIT = OpenApiResponse(
    description="Conflict; the body names the field: `id` taken, a `program_id` of another user or whose "
    "`device_type`/`priority` differ (POST /jobs), or with require_device=true `device_type` / `min_size` "
    "(`jobs[i].min_size`) when no registered device could run it."
)
R429 = OpenApiResponse(
    description="Fair use: THROTTLE_SUBMIT_RATE reached (with Retry-After) or USER_MAX_QUEUED_JOBS would be exceeded."
)


def _require_device(request) -> bool:
    """?require_device=true|false (also 1/0); anything else is a 400 naming it."""
    raw = request.query_params.get("require_device", "false").strip().lower()
    if raw in ("true", "1"):
        return True
    if raw in ("false", "0", ""):
        return False
    raise ValidationError({"require_device": ["Must be true or false."]})


def _program_data(program, serializer_class=ProgramSerializer, **extra) -> dict:
    for name, value in extra.items():
        setattr(program, name, value)
    counts = selectors.program_job_counts([program.pk])
    return serializer_class(program, context={"job_counts": counts}).data


class ProgramListView(generics.GenericAPIView):
    permission_classes = [CanSubmitJobs]
    throttle_classes = [SubmitRateThrottle]

    def get_serializer_class(self):
        return ProgramCreateSerializer if self.request.method == "POST" else ProgramSerializer

    def get_queryset(self):
        return selectors.programs_visible_to(self.request.user)

    @extend_schema(
        summary="List your programs (staff: all), newest first",
        parameters=[*LIST_FILTERS, _ordering_param("-created", PROGRAM_ORDERING_CHOICES)],
        responses={200: ProgramSerializer(many=True), 400: R400, 401: R401},
    )
    def get(self, request):
        qs = filter_programs(self.get_queryset(), request.query_params)
        page = self.paginate_queryset(qs)
        counts = selectors.program_job_counts([p.pk for p in page])
        data = ProgramSerializer(page, many=True, context={"job_counts": counts}).data
        return self.get_paginated_response(data)

    @extend_schema(
        summary="Submit a program: all its jobs at once, atomically",
        description=(
            "Creates the program and up to PROGRAM_MAX_JOBS (10,000) jobs in one transaction. "
            "Job ids are unique: an id repeated in the request is a 400, one already taken a 409, "
            "and in both cases nothing is created. Jobs are queued in the order given. "
            "Priorities above USER_MAX_PRIORITY (100) need staff or the jobs.high_priority permission (a 400 naming `priority` otherwise)."
        ),
        request=ProgramCreateSerializer,
        parameters=[REQUIRE_DEVICE],
        responses={201: ProgramCreatedSerializer, 400: R400, 401: R401, 409: R409_SUBMIT, 429: R429},
    )
    def post(self, request):
        require_device = _require_device(request)
        serializer = ProgramCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        created = services.program_create(
            owner=request.user,
            key=data.get("id"),
            priority=data["priority"],
            device_type=data["device_type"],
            callback_url=data["callback_url"],
            client_user_id=data["user_id"],
            jobs=data["jobs"],
            require_device=require_device,
        )
        program = created.program
        program.job_ids = created.job_keys
        program.warnings = created.warnings
        # Just created: every job is queued, no need to count.
        counts = {program.pk: {**{s: 0 for s in JobStatus.values}, JobStatus.QUEUED: len(created.job_keys)}}
        body = ProgramCreatedSerializer(program, context={"job_counts": counts}).data
        return Response(body, status=status.HTTP_201_CREATED)


class ProgramDetailView(generics.GenericAPIView):
    permission_classes = [CanSubmitJobs]
    serializer_class = ProgramSerializer

    @extend_schema(
        summary="Show a program and its job counts",
        parameters=[PROGRAM_ID],
        responses={200: ProgramSerializer, 401: R401, 404: R404},
    )
    def get(self, request, program_id: str):
        return Response(_program_data(selectors.program_get(user=request.user, key=program_id)))


class ProgramCancelView(generics.GenericAPIView):
    permission_classes = [CanSubmitJobs]
    serializer_class = ProgramCancelledSerializer

    @extend_schema(
        summary="Cancel a program's queued jobs (running ones finish)",
        request=None,
        parameters=[PROGRAM_ID],
        responses={200: ProgramCancelledSerializer, 401: R401, 404: R404},
    )
    def post(self, request, program_id: str):
        program = selectors.program_get(user=request.user, key=program_id)
        cancelled = services.program_cancel(program_id=program.pk)
        return Response(_program_data(program, ProgramCancelledSerializer, cancelled=cancelled))


class ProgramWebhookSecretView(generics.GenericAPIView):
    permission_classes = [CanSubmitJobs]
    serializer_class = WebhookSecretSerializer

    @extend_schema(
        summary="Rotate the key that signs this program's callbacks",
        description="Returns the new `webhook_secret` (shown only here); the next delivery attempt is signed with it.",
        request=None,
        parameters=[PROGRAM_ID],
        responses={200: WebhookSecretSerializer, 401: R401, 404: R404},
    )
    def post(self, request, program_id: str):
        program = selectors.program_get(user=request.user, key=program_id)
        program.webhook_secret = services.program_webhook_secret_rotate(program_id=program.pk)
        return Response(WebhookSecretSerializer(program).data)


class JobListView(generics.GenericAPIView):
    permission_classes = [CanSubmitJobs]
    throttle_classes = [SubmitRateThrottle]
    pagination_class = KeysetPagination

    def get_serializer_class(self):
        return JobSubmitSerializer if self.request.method == "POST" else JobSerializer

    def get_queryset(self):
        return selectors.jobs_visible_to(self.request.user)

    @extend_schema(
        summary="List your jobs (staff: all), in submission order unless `ordering` says otherwise",
        description=(
            "Instructions and results are left out of lists; `GET /jobs/{id}` has them. Pages are cursor pages "
            "(no total count): follow `next` until it is null."
        ),
        parameters=[*LIST_FILTERS, _ordering_param("created")],
        responses={200: JobSerializer(many=True), 400: R400, 401: R401},
    )
    def get(self, request):
        qs, ordering = filter_jobs(self.get_queryset(), request.query_params)
        page = self.paginator.paginate_ordered(qs, request, ordering=ordering, order_by=order_by_for(ordering))
        return self.get_paginated_response(JobSerializer(page, many=True).data)

    @extend_schema(
        summary="Submit one job, the brief's flat form",
        description=(
            "`program_id` names the program: created on first use (owned by you, with this job's priority "
            "and device type), joined afterwards. A job whose device_type or priority differs from its "
            "program's, or naming another user's program, is a 409 naming that field."
        ),
        request=JobSubmitSerializer,
        parameters=[REQUIRE_DEVICE],
        responses={201: JobDetailSerializer, 400: R400, 401: R401, 409: R409_SUBMIT, 429: R429},
    )
    def post(self, request):
        require_device = _require_device(request)
        serializer = JobSubmitSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        arguments = job_submit_arguments(serializer.validated_data)
        job = services.job_submit(owner=request.user, require_device=require_device, **arguments)
        return Response(job_detail_data(job), status=status.HTTP_201_CREATED)


class JobDetailView(generics.GenericAPIView):
    permission_classes = [CanSubmitJobs]
    serializer_class = JobDetailSerializer

    @extend_schema(
        summary="Show a job: status, result, device, timestamps, queue position",
        parameters=[JOB_ID],
        responses={200: JobDetailSerializer, 401: R401, 404: R404},
    )
    def get(self, request, job_id: str):
        return Response(job_detail_data(selectors.job_get_detail(user=request.user, key=job_id)))


class JobCancelView(generics.GenericAPIView):
    permission_classes = [CanSubmitJobs]
    serializer_class = JobDetailSerializer

    @extend_schema(
        summary="Cancel a queued job",
        description="Only a queued job can be cancelled; a running or finished one is a 409 naming `status`.",
        request=None,
        parameters=[JOB_ID],
        responses={200: JobDetailSerializer, 401: R401, 404: R404, 409: R409},
    )
    def post(self, request, job_id: str):
        job = selectors.job_get(user=request.user, key=job_id)
        job = services.job_cancel(job_id=job.pk)
        return Response(job_detail_data(job))
