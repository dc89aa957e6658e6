"""Settings for the scheduling service.

Everything that differs between machines comes from the environment so the same
code runs on a laptop (embedded SQLite, zero setup) and in production/CI
(PostgreSQL through ``DATABASE_URL``).
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path

import dj_database_url

from core.secret_key import secret_key_from_env

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


DEBUG = env_bool("DEBUG", False)

# --- Secret key -------------------------------------------------------------
# No default in the repository (core/secret_key.py). Without SECRET_KEY each
# process uses a random key and SECRET_KEY_CONFIGURED is False: tests and
# one-off commands work, `serve`, `runworkers` and `schedule_vms` refuse to
# start unless DEBUG=1. `python3 dev.py run` keeps a generated key in .secret-key.
SECRET_KEY, SECRET_KEY_CONFIGURED = secret_key_from_env(os.environ)
# Old keys still accepted for signatures while a new SECRET_KEY rolls out (comma-separated).
SECRET_KEY_FALLBACKS = [k.strip() for k in os.environ.get("SECRET_KEY_FALLBACKS", "").split(",") if k.strip()]
ALLOWED_HOSTS = [
    h.strip() for h in os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver").split(",") if h.strip()
]

# --- HTTPS and production security (docs/security.md, `manage.py check --deploy`) ---
# SECURE_HTTPS=1: users reach the service over HTTPS (with `serve`, through a
# TLS-terminating reverse proxy). Cookies then travel over HTTPS only, plain
# HTTP is redirected and browsers are told to stay on HTTPS (HSTS).
SECURE_HTTPS = env_bool("SECURE_HTTPS", False)
# Session and CSRF cookies are sent over HTTPS only.
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = SECURE_HTTPS
# Redirect http:// requests to https:// (may be turned off when the proxy does it).
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", SECURE_HTTPS)
# HSTS max-age in seconds: one year with HTTPS, 0 (off) without.
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000 if SECURE_HTTPS else 0)
# HSTS for every subdomain too: only when the whole domain is HTTPS-only.
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
# Ask browsers to preload HSTS for the domain (hard to undo): same condition.
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
# Behind a proxy that sets X-Forwarded-Proto (overwriting any the client sent):
# trust it to say a request came over HTTPS, so the redirect does not loop.
SECURE_BEHIND_TLS_PROXY = env_bool("SECURE_BEHIND_TLS_PROXY", False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if SECURE_BEHIND_TLS_PROXY else None
# Origins allowed to send forms (admin, browsable API), e.g. https://qpu.example.org (comma-separated).
CSRF_TRUSTED_ORIGINS = [o.strip() for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()]

INSTALLED_APPS = [
    "django.contrib.admin",
    # After the admin (its ready() hardens every registered admin) and before
    # staticfiles (its `runserver`, with a note on the workers, replaces theirs).
    "config",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    # Login lockout (see the "Login lockout" block below).
    "axes",
    "core",
    "devices",
    "jobs",
    "exams",
    "vms",
]

MIDDLEWARE = [
    # First, so its milliseconds cover everything else.
    "core.logs.RequestLogMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Serves the admin's and the API docs' static files from the production
    # WSGI server, straight from the apps (no collectstatic step needed).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes requires: turns a locked-out login into a 429.
    "axes.middleware.AxesMiddleware",
]

# django-axes' backend comes first: it refuses a locked-out username+address
# before any password is checked, for every login form and POST /api/token/.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "config.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"

SQLITE_PATH = Path(os.environ.get("SQLITE_PATH", BASE_DIR / "db.sqlite3"))
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{SQLITE_PATH}",
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # One-program mode runs the API, workers and scheduler against one SQLite
    # file: WAL lets readers proceed during a write, the busy timeout makes
    # writers wait instead of failing with "database is locked", and IMMEDIATE
    # transactions take the write lock up front so two writers never deadlock
    # on a lock upgrade.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # Tests use a file too, not shared-cache memory: its table locks ignore the
    # busy timeout, while threaded tests need the same locking as production.
    import tempfile

    DATABASES["default"].setdefault("TEST", {})["NAME"] = os.environ.get("SQLITE_TEST_PATH") or str(
        Path(tempfile.gettempdir()) / f"qpu-scheduler-test-{os.getpid()}.sqlite3"
    )
else:
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

# The API's hot statements are prepared once per connection (core.prepared).
# Turn off behind a transaction-pooling proxy (PgBouncer pool_mode=transaction).
DB_PREPARED_STATEMENTS = env_bool("DB_PREPARED_STATEMENTS", True)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Django's four standard validators: enforced by `changepassword`,
# `createsuperuser` and the admin's password forms.
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# config/formats/en: times with seconds and the zone (UTC) everywhere.
FORMAT_MODULE_PATH = ["config.formats"]

STATIC_URL = "static/"
# Only for deployments that run collectstatic; by default WhiteNoise serves
# the files straight from the apps.
STATIC_ROOT = os.environ.get("STATIC_ROOT") or None
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "core.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # The brief's example client sends JSON without a JSON content type
    # (plain `curl -d`), so the form parser's content type is read as JSON too.
    "DEFAULT_PARSER_CLASSES": [
        "core.parsers.SafeJSONParser",
        "core.parsers.LenientJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "core.pagination.Pagination",
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "config.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.exceptions.api_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "QPU & exam VM scheduling service",
    "DESCRIPTION": "Schedules quantum jobs on lab QPUs and provisions exam VMs at a cloud provider.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI's files come with the sidecar package: the docs work offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Bodies are documented as JSON only: the form-labelled JSON of `curl -d`
    # still works, but form and multipart encodings of nested bodies are not
    # a contract any client should be generated for.
    "PARSER_WHITELIST": ["core.parsers.SafeJSONParser"],
    # Input and output shapes as separate components (`ExamRequest`, `Exam`):
    # what a request must satisfy is not what a response promises.
    "COMPONENT_SPLIT_REQUEST": True,
}

# django-q2 uses the database as its broker so nothing beyond the database is
# needed; it runs webhook deliveries and the VM scheduler schedule.
Q_CLUSTER = {
    "name": "scheduler",
    "orm": "default",
    "workers": env_int("Q_WORKERS", 2),
    "timeout": 120,
    "retry": 180,
    "max_attempts": 1,
    "poll": 0.2,
    "catch_up": False,
    "save_limit": 1000,
    "label": "Task queue (django-q2)",
    "sync": env_bool("Q_SYNC", False),
}

# --- QPU scheduling -------------------------------------------------------
DEVICE_TIMEOUT_SECONDS = env_float("DEVICE_TIMEOUT_SECONDS", 60)
DEVICE_SIM_SECONDS = env_float("DEVICE_SIM_SECONDS", 2)
DEVICE_HTTP_TIMEOUT_SECONDS = env_float("DEVICE_HTTP_TIMEOUT_SECONDS", 300)
JOB_MAX_ATTEMPTS = env_int("JOB_MAX_ATTEMPTS", 3)
# A worker renews its leases every JOB_LEASE_SECONDS / 3; a worker killed with
# kill -9 stops renewing and its job is requeued once the lease runs out.
JOB_LEASE_SECONDS = env_float("JOB_LEASE_SECONDS", 30)
# On SIGINT/SIGTERM a worker lets running jobs finish this long, then hands
# them back to the queue.
WORKER_SHUTDOWN_GRACE_SECONDS = env_float("WORKER_SHUTDOWN_GRACE_SECONDS", 10)
CALLBACK_MAX_ATTEMPTS = env_int("CALLBACK_MAX_ATTEMPTS", 8)
CALLBACK_BACKOFF_SECONDS = env_float("CALLBACK_BACKOFF_SECONDS", 15)
CALLBACK_TIMEOUT_SECONDS = env_float("CALLBACK_TIMEOUT_SECONDS", 10)
# A pending delivery this far past its due time was lost and is queued again.
CALLBACK_SWEEP_AFTER_SECONDS = env_float("CALLBACK_SWEEP_AFTER_SECONDS", 300)
PROGRAM_MAX_JOBS = env_int("PROGRAM_MAX_JOBS", 10_000)

# --- Bounded work (issue 6) --------------------------------------------------
# Most bits one result may hold (device size x shots): 16,000,000 bits is at
# most ~16.4 MB of stored JSON, far below PostgreSQL's 255 MB jsonb limit.
RESULT_MAX_BITS = env_int("RESULT_MAX_BITS", 16_000_000)
# Largest device (qubits) that may register (today's largest QPUs: ~1,200).
DEVICE_MAX_SIZE = env_int("DEVICE_MAX_SIZE", 2048)
# A device answering "busy" (HTTP 409) this many times in a row is drained.
DEVICE_MAX_BUSY_ANSWERS = env_int("DEVICE_MAX_BUSY_ANSWERS", 5)
# Requeues through no fault of the job (device removed/silent/busy, worker
# died) before the job fails instead; they do not use up JOB_MAX_ATTEMPTS.
JOB_MAX_REQUEUES = env_int("JOB_MAX_REQUEUES", 10)

# --- Device health (issue 8) --------------------------------------------------
# A device on which this many different jobs fail in a row (device error, bad
# result, timeout; not "busy") is drained as quarantined until resumed; 0: never.
DEVICE_QUARANTINE_FAILURES = env_int("DEVICE_QUARANTINE_FAILURES", 3)

# --- Outbound calls: callbacks and HTTP devices (docs/security.md) ----------
# CIDRs callbacks may reach besides public addresses (e.g. "127.0.0.0/8" for a
# receiver on the same host); empty: public addresses only.
CALLBACK_ALLOWED_NETWORKS = [n.strip() for n in os.environ.get("CALLBACK_ALLOWED_NETWORKS", "").split(",") if n.strip()]
# CIDRs device addresses must lie in; empty: any but link-local/multicast/reserved/unspecified.
DEVICE_ALLOWED_NETWORKS = [n.strip() for n in os.environ.get("DEVICE_ALLOWED_NETWORKS", "").split(",") if n.strip()]
# A callback receiver that timed out or refused the connection gets no call for this long.
CALLBACK_SLOW_RECEIVER_SECONDS = env_float("CALLBACK_SLOW_RECEIVER_SECONDS", 60)

# --- Fair use (docs/security.md) ---------------------------------------------
# Highest priority an ordinary user may give a program; staff and users with
# the jobs.high_priority permission may go above it.
USER_MAX_PRIORITY = env_int("USER_MAX_PRIORITY", 100)
# Jobs one (non-staff) user may have queued at once; 0 turns the cap off.
USER_MAX_QUEUED_JOBS = env_int("USER_MAX_QUEUED_JOBS", 100_000)
# Submissions (POST /programs, POST /jobs) per user, DRF rate syntax
# ("N/second|minute|hour|day"); empty turns throttling off (benchmarks).
THROTTLE_SUBMIT_RATE = os.environ.get("THROTTLE_SUBMIT_RATE", "120/minute").strip()
if THROTTLE_SUBMIT_RATE and not re.fullmatch(r"[0-9]+/[smhd][a-z]*", THROTTLE_SUBMIT_RATE):
    # Caught at start-up: DRF would otherwise fail on every submission.
    raise ValueError(f"THROTTLE_SUBMIT_RATE={THROTTLE_SUBMIT_RATE!r}: expected e.g. 120/minute, 10/second, or empty")

# --- Queue feedback: estimated start of queued jobs (jobs/estimates.py) -------
# Finished jobs per device type whose median run time drives estimated_start.
JOB_ESTIMATE_SAMPLE_JOBS = max(1, env_int("JOB_ESTIMATE_SAMPLE_JOBS", 50))
# How long that median is reused (per process) before it is read again.
JOB_ESTIMATE_CACHE_SECONDS = env_float("JOB_ESTIMATE_CACHE_SECONDS", 10)

# --- Exam VM provisioning -------------------------------------------------
EXAM_MAX_STUDENTS = env_int("EXAM_MAX_STUDENTS", 2500)
VM_PROVIDER_URL = os.environ.get("VM_PROVIDER_URL", "")
VM_PROVIDER_TIMEOUT_SECONDS = env_float("VM_PROVIDER_TIMEOUT_SECONDS", 5)
VM_ALLOCATION_INTERVAL_SECONDS = env_float("VM_ALLOCATION_INTERVAL_SECONDS", 6)
VM_REQUESTS_PER_SECOND = env_int("VM_REQUESTS_PER_SECOND", 3)
VM_READY_MARGIN_SECONDS = env_float("VM_READY_MARGIN_SECONDS", 0)
# Live only: absorbs the few ms between a request's due time and the call.
VM_LIVE_LEAD_SECONDS = env_float("VM_LIVE_LEAD_SECONDS", 0.25)
# The django-q2 form of the scheduler runs the loop this long per task.
VM_TASK_RUN_SECONDS = env_float("VM_TASK_RUN_SECONDS", 100)

# --- Exam VMs: late VMs and surviving scheduler downtime (issue 9) ----------
# A late VM (for a shortfall) is requested only if ready this long before the exam ends.
VM_LATE_MIN_USEFUL_SECONDS = env_float("VM_LATE_MIN_USEFUL_SECONDS", 600)
# Keep up to this much of a back-to-back run's requests waiting in the provider's queue.
VM_QUEUE_AHEAD_SECONDS = env_float("VM_QUEUE_AHEAD_SECONDS", 120)

# --- HTTP server of `serve` (waitress; why each value: config/http_server.py)
# GET /jobs/<id> and POST /jobs answered in front of Django's stack when it is
# the happy path (core.fastlane, jobs.fastlane); false: every request through Django.
API_FAST_LANE = env_bool("API_FAST_LANE", True)

# Worker threads running Django views; `serve --threads` overrides it.
HTTP_THREADS = env_int("HTTP_THREADS", 8)
# Open connections served at once (idle and half-open ones included); capped
# by the open-files limit, which `serve` raises towards its hard limit.
HTTP_CONNECTION_LIMIT = env_int("HTTP_CONNECTION_LIMIT", 10_000)
# A connection with no byte in either direction for this long is closed
# (whole seconds, as waitress takes them).
HTTP_CHANNEL_TIMEOUT_SECONDS = env_int("HTTP_CHANNEL_TIMEOUT_SECONDS", 30)
# A request (headers and body) not received in full this long after its first
# byte is dropped: a client trickling bytes is never idle, so needs this bound.
HTTP_REQUEST_READ_TIMEOUT_SECONDS = env_int("HTTP_REQUEST_READ_TIMEOUT_SECONDS", 60)
# How often both timeouts above are checked (a connection closes within timeout + this).
HTTP_CLEANUP_INTERVAL_SECONDS = env_int("HTTP_CLEANUP_INTERVAL_SECONDS", 5)
# Address of the reverse proxy (e.g. 127.0.0.1), the only peer whose
# X-Forwarded-Proto/-For are believed; empty: such headers are dropped.
HTTP_TRUSTED_PROXY = os.environ.get("HTTP_TRUSTED_PROXY", "").strip()

# --- Caches ------------------------------------------------------------------
# Holds the submission throttle's counters. The default, process-local memory,
# is right for the one-program `serve`; a deployment with several web
# processes points CACHE_URL at a shared cache so a limit holds across them:
# "db://<table>" (after `manage.py createcachetable`) or "redis://host:6379/0".
CACHE_URL = os.environ.get("CACHE_URL", "").strip()


def cache_config(url: str) -> dict:
    if not url or url.startswith("locmem://"):
        return {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "scheduler"}
    if url.startswith("db://"):
        return {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": url[len("db://") :] or "django_cache",
        }
    if url.startswith(("redis://", "rediss://")):
        return {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url}
    raise ValueError(f"CACHE_URL: unsupported scheme in {url!r} (use db://table or redis://host:port/db)")


CACHES = {"default": cache_config(CACHE_URL)}

# --- Login lockout (django-axes) --------------------------------------------
# Covers the admin login, the browsable API's /api-auth/login/ and POST
# /api/token/: after AXES_FAILURE_LIMIT wrong passwords for one username from
# one address, that pair is refused (429) for AXES_COOLOFF_MINUTES.
AXES_ENABLED = env_bool("AXES_ENABLED", True)
# Wrong passwords in a row before the username+address pair is locked out.
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
# How long a lockout lasts, in minutes.
AXES_COOLOFF_MINUTES = env_float("AXES_COOLOFF_MINUTES", 15)
# Behind N reverse proxies that append to X-Forwarded-For: take the client
# address N entries from the right; 0 uses the peer address (REMOTE_ADDR).
LOGIN_PROXY_COUNT = env_int("LOGIN_PROXY_COUNT", 0)
AXES_COOLOFF_TIME = timedelta(minutes=AXES_COOLOFF_MINUTES)
# One account from one address: a guesser cannot lock the owner out from elsewhere.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "config.lockout.client_ip"
AXES_LOCKOUT_CALLABLE = "config.lockout.lockout_response"
AXES_HTTP_RESPONSE_CODE = 429

# --- Health ----------------------------------------------------------------
# Background roles /readyz expects a fresh heartbeat from (they may run in
# other processes or machines); drop a role a deployment does not run.
READY_EXPECTED_ROLES = [
    r.strip()
    for r in os.environ.get("READY_EXPECTED_ROLES", "qpu-workers,vm-scheduler,task-cluster").split(",")
    if r.strip()
]

# --- Metrics ----------------------------------------------------------------
# Scrapers send "Authorization: Bearer <METRICS_TOKEN>" (staff may always read).
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
# A directory shared by the processes of one machine (serve, runworkers and
# their children) so /metrics sums everyone's events; empty: this process only.
METRICS_DIR = os.environ.get("METRICS_DIR", "")
if METRICS_DIR:
    Path(METRICS_DIR).mkdir(parents=True, exist_ok=True)
    # read by prometheus-client when it first creates a metric value
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = METRICS_DIR

# --- Logs -------------------------------------------------------------------
# LOG_FORMAT=json: one JSON object per line (request fields as keys);
# otherwise plain text. django-q2's routine chatter ("processed", "ready for
# work") stays below the default level; its warnings and errors still show.
LOG_FORMAT = os.environ.get("LOG_FORMAT", "plain").strip().lower()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {"()": "core.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "json" if LOG_FORMAT == "json" else "plain"}
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # django-axes announces its configuration at INFO in every process
        "axes": {"level": "WARNING"},
        # our request log replaces these two
        "django.server": {"level": "WARNING"},
        "waitress": {"level": "WARNING"},
        # "Task queue depth is N": a WARNING for every request that waits for
        # a free HTTP thread, i.e. one line per request under load (7,923 in a
        # 12 s benchmark run). Waiting shows in the request log's ms instead.
        "waitress.queue": {"level": "ERROR"},
        "django-q": {"handlers": ["console"], "level": os.environ.get("Q_LOG_LEVEL", "WARNING"), "propagate": False},
    },
}
