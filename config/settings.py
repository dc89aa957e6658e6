"""Settings for the scheduling service.

Everything that differs between machines comes from the environment so the same
code runs on a laptop (embedded SQLite, zero setup) and in production/CI
(PostgreSQL through ``DATABASE_URL``).
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

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
# A fixed development key is only acceptable when nothing else is configured;
# production deployments must set SECRET_KEY.
SECRET_KEY = os.environ.get("SECRET_KEY", "dev-insecure-change-me-" + "x" * 32)
ALLOWED_HOSTS = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver").split(",") if h.strip()]

INSTALLED_APPS = [
    # First: its `runserver` (with a note on the workers) replaces staticfiles'.
    "config",
    "django.contrib.admin",
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

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
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
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # The brief's example client sends JSON without a JSON content type
    # (plain `curl -d`), so the form parser's content type is read as JSON too.
    "DEFAULT_PARSER_CLASSES": [
        "config.parsers.SafeJSONParser",
        "config.parsers.LenientJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "config.pagination.Pagination",
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "config.exceptions.api_exception_handler",
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
CALLBACK_SECRET = os.environ.get("CALLBACK_SECRET", SECRET_KEY)
CALLBACK_MAX_ATTEMPTS = env_int("CALLBACK_MAX_ATTEMPTS", 8)
CALLBACK_BACKOFF_SECONDS = env_float("CALLBACK_BACKOFF_SECONDS", 15)
CALLBACK_TIMEOUT_SECONDS = env_float("CALLBACK_TIMEOUT_SECONDS", 10)
# A pending delivery this far past its due time was lost and is queued again.
CALLBACK_SWEEP_AFTER_SECONDS = env_float("CALLBACK_SWEEP_AFTER_SECONDS", 300)
PROGRAM_MAX_JOBS = env_int("PROGRAM_MAX_JOBS", 10_000)

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

# --- Health ----------------------------------------------------------------
# Background roles /readyz expects a fresh heartbeat from (they may run in
# other processes or machines); drop a role a deployment does not run.
READY_EXPECTED_ROLES = [
    r.strip() for r in os.environ.get("READY_EXPECTED_ROLES", "qpu-workers,vm-scheduler,task-cluster").split(",") if r.strip()
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
        # our request log replaces these two
        "django.server": {"level": "WARNING"},
        "waitress": {"level": "WARNING"},
        "django-q": {"handlers": ["console"], "level": os.environ.get("Q_LOG_LEVEL", "WARNING"), "propagate": False},
    },
}
