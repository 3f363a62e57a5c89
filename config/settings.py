"""Settings for the AI-training opt-out registry.

Everything configurable comes from the environment through ``config.env.Env``;
README.md lists each variable, its default and its meaning.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path

import django_stubs_ext
from django.utils.translation import gettext_lazy as _

from config.env import Env
from core.tasks import QUEUE_SHORT, TASK_QUEUES

# Lets admin and generic classes be subscripted at runtime, as the type stubs expect.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent
env = Env()

DEBUG = env.boolean("DEBUG", False)
TESTING = env.boolean("REGISTRY_TESTING", False)

# Development may run without secrets; production must bring its own.
SECRET_KEY = env.required("SECRET_KEY", dev_default="dev-only-" + secrets.token_urlsafe(32), debug=DEBUG or TESTING)
ALLOWED_HOSTS = env.csv_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG or TESTING else [])
CSRF_TRUSTED_ORIGINS = env.csv_list("CSRF_TRUSTED_ORIGINS", [])

DATA_DIR = env.path("DATA_DIR", BASE_DIR / "var")

INSTALLED_APPS = [
    "config.apps.RegistryAdminConfig",  # Django's admin behind sign-in limits and an optional second factor
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "core",
    "registry",
    "optout",
    "compensation",
    "portal",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "config.security.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "core.middleware.NulQueryMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.context_processors.portal",
            ],
        },
    },
]

DATABASES = {"default": env.database("DATABASE_URL", f"sqlite:///{DATA_DIR / 'registry.sqlite3'}")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Portal accounts -----------------------------------------------------------
LOGIN_URL = "portal:login"
LOGIN_REDIRECT_URL = "portal:dashboard"
LOGOUT_REDIRECT_URL = "home"
# Failed sign-ins allowed per account and per client address before sign-in is refused for a while.
LOGIN_MAX_FAILURES = env.integer("LOGIN_MAX_FAILURES", 5, minimum=1)
LOGIN_MAX_FAILURES_PER_ADDRESS = env.integer("LOGIN_MAX_FAILURES_PER_ADDRESS", 30, minimum=1)
LOGIN_LOCKOUT_MINUTES = env.integer("LOGIN_LOCKOUT_MINUTES", 15, minimum=1)
# Password-reset mail sent per e-mail address and per client address within the window; requests over
# either limit get the same answer but no mail.
PASSWORD_RESET_MAX_PER_ACCOUNT = env.integer("PASSWORD_RESET_MAX_PER_ACCOUNT", 3, minimum=1)
PASSWORD_RESET_MAX_PER_CLIENT = env.integer("PASSWORD_RESET_MAX_PER_CLIENT", 10, minimum=1)
PASSWORD_RESET_WINDOW_MINUTES = env.integer("PASSWORD_RESET_WINDOW_MINUTES", 60, minimum=1)
# Staff reach the admin only after a TOTP code from a confirmed device (manage.py staff_totp_add); on by
# default outside DEBUG and REGISTRY_TESTING, because staff settle money and verify ownership.
STAFF_OTP_REQUIRED = env.boolean("STAFF_OTP_REQUIRED", not (DEBUG or TESTING))
OTP_TOTP_ISSUER = env.string("REGISTRY_NAME", "AI-training opt-out registry") or "AI-training opt-out registry"
# Mail (sign-up verification, invitations, password reset): SMTP when EMAIL_HOST is set, else the console.
EMAIL_HOST = env.string("EMAIL_HOST", "") or ""
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend" if EMAIL_HOST else "django.core.mail.backends.console.EmailBackend"
)
EMAIL_PORT = env.integer("EMAIL_PORT", 587, minimum=1)
EMAIL_HOST_USER = env.string("EMAIL_HOST_USER", "") or ""
EMAIL_HOST_PASSWORD = env.string("EMAIL_HOST_PASSWORD", "") or ""
EMAIL_USE_TLS = env.boolean("EMAIL_USE_TLS", True)
DEFAULT_FROM_EMAIL = env.string("DEFAULT_FROM_EMAIL", "registry@localhost") or "registry@localhost"
# How long an invitation to join a party stays valid.
PORTAL_INVITATION_DAYS = 7

if TESTING:
    # Hashing test passwords slowly only slows the suite; production keeps Django's defaults.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Korean first: the registry serves Korean rights holders; English ships alongside.
LANGUAGE_CODE = env.string("LANGUAGE_CODE", "ko") or "ko"
LANGUAGES = [("ko", _("Korean")), ("en", _("English"))]
if LANGUAGE_CODE not in {code for code, _name in LANGUAGES}:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(f"LANGUAGE_CODE={LANGUAGE_CODE!r} must be one of: ko, en.")
TIME_ZONE = env.time_zone("TIME_ZONE", "Asia/Seoul")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
MEDIA_ROOT = DATA_DIR / "media"
MEDIA_URL = "media/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Claim evidence: never under MEDIA_URL, only served by the claim's permission check (README "Claims and evidence").
    "evidence": {"BACKEND": "registry.storage.EvidenceStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG or TESTING
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
# Which STORAGES alias holds claim evidence files, and the largest file accepted.
CLAIM_EVIDENCE_STORAGE = env.string("CLAIM_EVIDENCE_STORAGE", "evidence") or "evidence"
CLAIM_EVIDENCE_MAX_UPLOAD_BYTES = env.integer("CLAIM_EVIDENCE_MAX_UPLOAD_BYTES", 20 * 1024 * 1024, minimum=1024)
# Bulk uploads go to disk as they stream in; only small bodies stay in memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = env.integer("DATA_UPLOAD_MAX_MEMORY_SIZE", 64 * 1024 * 1024, minimum=1024)

if not DEBUG and not TESTING:
    SESSION_COOKIE_SECURE = env.boolean("SECURE_COOKIES", True)
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Security headers ---------------------------------------------------------
# HSTS is sent on HTTPS answers only (SecurityMiddleware). Production defaults to a year, subdomains included;
# preloading is a commitment to browser vendors that the operator makes (SECURE_HSTS_PRELOAD).
_production_https = not (DEBUG or TESTING) and env.boolean("SECURE_COOKIES", True)
SECURE_HSTS_SECONDS = env.integer("SECURE_HSTS_SECONDS", 31_536_000 if _production_https else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.boolean("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env.boolean("SECURE_HSTS_PRELOAD", False)
# The TLS proxy in front redirects plain HTTP (README, Docker Compose); set this where Django itself is
# reachable over HTTP from outside. The health check stays plain for load balancers inside the network.
SECURE_SSL_REDIRECT = env.boolean("SECURE_SSL_REDIRECT", False)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
# Content-Security-Policy (config/security.py): nothing inline and no other host for the portal and the
# admin; the API documentation pages get their own. An empty value sends no header.
CONTENT_SECURITY_POLICY = env.string(
    "CONTENT_SECURITY_POLICY",
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
)
CONTENT_SECURITY_POLICY_API_DOCS = env.string(
    "CONTENT_SECURITY_POLICY_API_DOCS",
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'",
)
# Report-Only: browsers report violations without blocking, for trying a changed policy first.
CSP_REPORT_ONLY = env.boolean("CSP_REPORT_ONLY", False)
# check --deploy's remaining warnings are the operator's decisions, not defects (README, "Security headers"):
# W021 HSTS preload not set, W008 the HTTPS redirect left to the TLS proxy.
SILENCED_SYSTEM_CHECKS = ([] if SECURE_HSTS_PRELOAD else ["security.W021"]) + (
    [] if SECURE_SSL_REDIRECT else ["security.W008"]
)

# --- Celery -----------------------------------------------------------------
REDIS_URL = env.redis_url("REDIS_URL")
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {"visibility_timeout": 3600}
else:
    # No Redis: kombu's filesystem transport keeps queued work asynchronous, as in production.
    _broker_dir = DATA_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
CELERY_TASK_ALWAYS_EAGER = env.boolean("CELERY_TASK_ALWAYS_EAGER", False)
# The short and the long queue, each consumed by a worker of its own (core/tasks.py, Procfile); a task declared
# without a preset, which names its queue, goes to the short one.
CELERY_TASK_QUEUES = TASK_QUEUES
CELERY_TASK_DEFAULT_QUEUE = QUEUE_SHORT
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SOFT_TIME_LIMIT = 30 * 60
CELERY_TASK_TIME_LIMIT = 35 * 60
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE = {
    "registry-domains-recheck": {
        "task": "registry.tasks.domains_recheck_pending",
        "schedule": timedelta(minutes=env.integer("DOMAIN_RECHECK_MINUTES", 15, minimum=1)),
    },
    # Publishes jobs the broker never took, and queues again those whose worker died (core/jobs.py).
    "jobs-sweep": {
        "task": "registry.tasks.jobs_sweep",
        "schedule": timedelta(minutes=1),
    },
    # Publishes webhook deliveries due for a try, and gives endpoints behind the change feed their next batch.
    "webhooks-sweep": {
        "task": "optout.tasks.webhooks_sweep",
        "schedule": timedelta(minutes=1),
    },
}
# Background jobs (manifests, imports, exports, settlements, distributions): a running job refreshes its
# heartbeat every JOB_HEARTBEAT_SECONDS; one silent for JOB_STALE_SECONDS lost its worker and is queued again,
# up to JOB_MAX_ATTEMPTS starts; one accepted but not started JOB_REPUBLISH_WAITING_SECONDS after it was
# queued is published again (its message was lost).
JOB_HEARTBEAT_SECONDS = env.integer("JOB_HEARTBEAT_SECONDS", 30, minimum=1)
JOB_STALE_SECONDS = env.integer("JOB_STALE_SECONDS", 180, minimum=1)
JOB_MAX_ATTEMPTS = env.integer("JOB_MAX_ATTEMPTS", 5, minimum=1)
JOB_REPUBLISH_WAITING_SECONDS = env.integer("JOB_REPUBLISH_WAITING_SECONDS", 900, minimum=60)
if JOB_STALE_SECONDS < 3 * JOB_HEARTBEAT_SECONDS:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        f"JOB_STALE_SECONDS={JOB_STALE_SECONDS} must be at least three heartbeats "
        f"(3 x JOB_HEARTBEAT_SECONDS={JOB_HEARTBEAT_SECONDS}), or running jobs are taken for dead ones."
    )

# --- REST API ---------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "registry.api.authentication.ApiKeyAuthentication",
        "registry.api.authentication.PartySessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "core.api.schema.RegistryAutoSchema",
    "EXCEPTION_HANDLER": "core.api.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DEFAULT_THROTTLE_RATES": {
        "lookup": env.string("LOOKUP_RATE", "1200/min"),
        "lookup_anonymous": env.string("LOOKUP_RATE_ANONYMOUS", "60/min"),
    },
    # Behind a proxy the client's address is the first X-Forwarded-For hop the proxy added.
    "NUM_PROXIES": env.integer("NUM_PROXIES", 0, minimum=0),
    # JSON bodies are held to a nesting depth and refuse NUL characters (core/api/fastjson.py).
    "DEFAULT_PARSER_CLASSES": [
        "core.api.fastjson.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
}
# How long a process trusts an API key it verified before reading it again: a revoked key stops working in the
# other processes within this many seconds (at once in the one that revokes it). 0 reads the key on every request.
API_KEY_CACHE_SECONDS = env.integer("API_KEY_CACHE_SECONDS", 5, minimum=0)
# How deep a JSON request body may nest (lists and objects); deeper is refused with 400 json_too_deep.
API_JSON_MAX_DEPTH = env.integer("API_JSON_MAX_DEPTH", 32, minimum=4)
for _rate_variable in ("LOOKUP_RATE", "LOOKUP_RATE_ANONYMOUS"):
    _rate = env.string(_rate_variable) or ""
    _count, _sep, _period = _rate.partition("/")
    if _rate and (not _count.isdigit() or _period[:1] not in {"s", "m", "h", "d"}):
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(f"{_rate_variable}={_rate!r} must look like 600/min (per s, min, hour or day).")

# Rate-limit counters must be shared by every web process: Redis when there is one.
CACHES: dict[str, dict[str, object]]
if TESTING:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
elif REDIS_URL:
    # While Redis is down, each process counts in its own memory (config/cache.py); short timeouts keep
    # an unreachable Redis from holding requests.
    CACHES = {
        "default": {
            "BACKEND": "config.cache.FallbackRedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(DATA_DIR / "cache"),
        }
    }
SPECTACULAR_SETTINGS = {
    "TITLE": "AI-training opt-out registry API",
    "DESCRIPTION": "Works, ownership, refusals, lookups and compensation for Korea's use-first, compensate-later rule.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # The API-key scheme and the error answers are declared once, in core.api.schema.
    # Choice sets that share a field name get names of their own instead of hashed ones (StatusE86Enum).
    "ENUM_NAME_OVERRIDES": {
        "ClaimStatusEnum": "registry.models.ClaimStatus",
        "WorkKindEnum": "registry.models.WorkKind",
        "ProcessingStatusEnum": "compensation.models.ManifestStatus",
        "RunStatusEnum": "compensation.models.ExportStatus",
        "SubjectStatusEnum": "optout.models.SubjectStatus",
        "EvidenceKindEnum": "registry.models.EvidenceKind",
        "HoldEndActionEnum": "compensation.models.HoldEndAction",
        "MandateScopeEnum": "registry.models.MandateScope",
        "RefusalScopeEnum": "optout.models.RefusalScope",
        "StatementRoleEnum": "compensation.models.StatementRole",
        "ContributorRoleEnum": "registry.models.ContributorRole",
    },
}

# --- Registry ---------------------------------------------------------------
# The registry's display name: REGISTRY_NAME_KO on Korean pages and documents, REGISTRY_NAME in every other language.
REGISTRY_NAME = env.string("REGISTRY_NAME", "AI-training opt-out registry") or "AI-training opt-out registry"
REGISTRY_NAME_KO = env.string("REGISTRY_NAME_KO", "AI 학습 거부 등록부") or "AI 학습 거부 등록부"
# How many rows a bulk work import may hold, and how many it registers per transaction.
WORK_IMPORT_MAX_ROWS = env.integer("WORK_IMPORT_MAX_ROWS", 100_000, minimum=1)
WORK_IMPORT_CHUNK_ROWS = env.integer("WORK_IMPORT_CHUNK_ROWS", 1_000, minimum=1)
# What an import file may hold beyond its rows: bytes as sent, bytes once inflated (an XLSX is a zip), the longest
# line, and how long checking it at upload may take (core/uploads.py). 100,000 rows fit well within these.
WORK_IMPORT_MAX_UPLOAD_BYTES = env.integer("WORK_IMPORT_MAX_UPLOAD_BYTES", 64 * 1024 * 1024, minimum=1024)
WORK_IMPORT_MAX_INFLATED_BYTES = env.integer("WORK_IMPORT_MAX_INFLATED_BYTES", 256 * 1024 * 1024, minimum=1024)
WORK_IMPORT_MAX_LINE_BYTES = env.integer("WORK_IMPORT_MAX_LINE_BYTES", 64 * 1024, minimum=256)
WORK_IMPORT_INSPECT_SECONDS = env.number("WORK_IMPORT_INSPECT_SECONDS", 60.0, minimum=1.0)
# A work's file (fingerprinted by a worker, registry/work_files.py): the largest accepted as sent, and for audio
# the seconds Chromaprint's fpcalc reads (from the start) and how long it may run.
WORK_FILE_MAX_UPLOAD_BYTES = env.integer("WORK_FILE_MAX_UPLOAD_BYTES", 512 * 1024 * 1024, minimum=1024)
WORK_FILE_AUDIO_MAX_SECONDS = env.integer("WORK_FILE_AUDIO_MAX_SECONDS", 600, minimum=10)
WORK_FILE_AUDIO_TIMEOUT_SECONDS = env.number("WORK_FILE_AUDIO_TIMEOUT_SECONDS", 120.0, minimum=1.0)
# Domain verification fetches a file from the claimed origin; these bound that request.
DOMAIN_CHECK_TIMEOUT = env.number("DOMAIN_CHECK_TIMEOUT", 5.0, minimum=0.1)
# Fetching private or loopback addresses is refused in production (server-side request forgery).
DOMAIN_CHECK_ALLOW_PRIVATE = env.boolean("DOMAIN_CHECK_ALLOW_PRIVATE", DEBUG)
DOMAIN_VERIFICATION_TTL_DAYS = env.integer("DOMAIN_VERIFICATION_TTL_DAYS", 7, minimum=1)

# --- Webhooks ---------------------------------------------------------------
# The change feed POSTed to labs' endpoints (optout/webhooks/): changes per POST, the HTTP timeout, tries per
# delivery (the waits between them double from WEBHOOK_RETRY_BASE_SECONDS up to WEBHOOK_RETRY_MAX_SECONDS), the
# bytes of a response kept in the delivery log, and the endpoints a party may have. Endpoints on private or
# loopback addresses are refused unless DOMAIN_CHECK_ALLOW_PRIVATE allows them.
WEBHOOK_BATCH_SIZE = env.integer("WEBHOOK_BATCH_SIZE", 500, minimum=1)
WEBHOOK_TIMEOUT = env.number("WEBHOOK_TIMEOUT", 10.0, minimum=0.1)
WEBHOOK_MAX_ATTEMPTS = env.integer("WEBHOOK_MAX_ATTEMPTS", 12, minimum=1)
WEBHOOK_RETRY_BASE_SECONDS = env.integer("WEBHOOK_RETRY_BASE_SECONDS", 30, minimum=1)
WEBHOOK_RETRY_MAX_SECONDS = env.integer("WEBHOOK_RETRY_MAX_SECONDS", 6 * 3600, minimum=1)
WEBHOOK_RESPONSE_LOG_BYTES = env.integer("WEBHOOK_RESPONSE_LOG_BYTES", 1024, minimum=0)
WEBHOOK_MAX_ENDPOINTS = env.integer("WEBHOOK_MAX_ENDPOINTS", 10, minimum=1)

# --- Site signals -----------------------------------------------------------
# What verified domains' own robots.txt, tdmrep.json, ai.txt and URL headers say is fetched (through the domain
# check's guarded fetcher and DOMAIN_CHECK_TIMEOUT) and recorded: by beat every SIGNAL_RECHECK_MINUTES per domain
# (beat looks every 5 minutes, so a newly verified domain is observed within minutes), and on demand. At most
# SIGNAL_MAX_BYTES of each file are read and kept.
SIGNAL_RECHECK_MINUTES = env.integer("SIGNAL_RECHECK_MINUTES", 24 * 60, minimum=1)
SIGNAL_MAX_BYTES = env.integer("SIGNAL_MAX_BYTES", 512 * 1024, minimum=1024)
CELERY_BEAT_SCHEDULE["domain-signals-recheck"] = {
    "task": "optout.tasks.domain_signals_recheck",
    "schedule": timedelta(minutes=5),
}

# --- Usage manifests --------------------------------------------------------
# Lines a JSON manifest body may hold, and lines an uploaded manifest file may hold.
USAGE_MANIFEST_MAX_JSON_LINES = env.integer("USAGE_MANIFEST_MAX_JSON_LINES", 10_000, minimum=1)
USAGE_MANIFEST_MAX_LINES = env.integer("USAGE_MANIFEST_MAX_LINES", 10_000_000, minimum=1)
# What a manifest file may hold beyond its lines (every line counts, blank ones too): bytes as sent (gzip or not),
# bytes once inflated, the longest line, and how long the upload's check may read it (about 1 s a million lines).
USAGE_MANIFEST_MAX_UPLOAD_BYTES = env.integer("USAGE_MANIFEST_MAX_UPLOAD_BYTES", 1024**3, minimum=1024)
USAGE_MANIFEST_MAX_INFLATED_BYTES = env.integer("USAGE_MANIFEST_MAX_INFLATED_BYTES", 4 * 1024**3, minimum=1024)
USAGE_MANIFEST_MAX_LINE_BYTES = env.integer("USAGE_MANIFEST_MAX_LINE_BYTES", 16 * 1024, minimum=256)
USAGE_MANIFEST_INSPECT_SECONDS = env.number("USAGE_MANIFEST_INSPECT_SECONDS", 120.0, minimum=1.0)
# No uploaded file is received past the largest of those limits and WORK_FILE_MAX_UPLOAD_BYTES (and a little for
# the form around it): a bigger body is refused while it streams in, not spooled to disk whole first.
UPLOAD_CEILING_BYTES = (
    max(USAGE_MANIFEST_MAX_UPLOAD_BYTES, WORK_IMPORT_MAX_UPLOAD_BYTES, WORK_FILE_MAX_UPLOAD_BYTES) + 1024 * 1024
)
FILE_UPLOAD_HANDLERS = [
    "core.uploads.UploadCeilingHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
# Lines processed (and posted to the ledger) per transaction. Larger chunks cost the database less per line
# (bench/accrual.py: 100,000 ran a million lines about a fifth faster than 20,000) for a worker peak of about
# 200 MB, and about 140 MB more in the process that parses a chunk ahead. A manifest's first chunks are
# smaller (USAGE_FIRST_CHUNK_LINES, doubling up to this) so that the database starts while the rest is parsed.
USAGE_CHUNK_LINES = env.integer("USAGE_CHUNK_LINES", 100_000, minimum=1)
USAGE_FIRST_CHUNK_LINES = env.integer("USAGE_FIRST_CHUNK_LINES", 10_000, minimum=1)

# --- Settlement -------------------------------------------------------------
# A holder due less than this (KRW) is not paid; the amount is carried forward to the next period.
SETTLEMENT_PAYOUT_THRESHOLD_KRW = env.integer("SETTLEMENT_PAYOUT_THRESHOLD_KRW", 10_000, minimum=0)
# Withholding is decided per holder by its payout profile's tax status and the staff-set, effective-dated rates
# (compensation.WithholdingRate); there is no global rate any more.
# Days after a settlement period's last day an invoice is due; after that what is outstanding is overdue.
INVOICE_PAYMENT_DAYS = env.integer("INVOICE_PAYMENT_DAYS", 30, minimum=0)
# Bank statement imports of lab payments (compensation/payments): most lines and bytes one file may hold.
LAB_PAYMENT_IMPORT_MAX_LINES = env.integer("LAB_PAYMENT_IMPORT_MAX_LINES", 10_000, minimum=1)
LAB_PAYMENT_IMPORT_MAX_BYTES = env.integer("LAB_PAYMENT_IMPORT_MAX_BYTES", 5 * 1024 * 1024, minimum=1024)
# PAYOUT_DATA_KEYS: comma-separated Fernet keys (32 bytes, url-safe base64, `Fernet.generate_key()`) that encrypt
#   payout profiles' bank account and tax numbers at rest. The first encrypts; every one decrypts, so a key is
#   rotated by putting the new one first and keeping the old ones while any profile still uses them. Required
#   outside DEBUG and REGISTRY_TESTING, like SECRET_KEY; there a fixed development key applies, which protects
#   nothing.
_PAYOUT_DEV_KEY = "ZGV2ZWxvcG1lbnQtb25seS1wYXlvdXQta2V5LTAwMDA="
PAYOUT_DATA_KEYS = env.csv_list(
    "PAYOUT_DATA_KEYS", [env.required("PAYOUT_DATA_KEYS", dev_default=_PAYOUT_DEV_KEY, debug=DEBUG or TESTING)]
)
from compensation.payouts.crypto import payout_keys_check  # noqa: E402  (one parser for start-up and use)

payout_keys_check(PAYOUT_DATA_KEYS)
# How long unclaimed escrow is held before it may be distributed by market share, and the part of it
# kept back for late claimants (basis points).
ESCROW_HOLD_PERIOD_DAYS = env.integer("ESCROW_HOLD_PERIOD_DAYS", 3 * 365, minimum=0)
MARKET_SHARE_RESERVE_BP = env.integer("MARKET_SHARE_RESERVE_BP", 1_000, minimum=0)

# --- Exports (statements, invoices, reports) ---------------------------------
# Documents with more lines than this are rendered by a task into default storage (the API answers 202).
EXPORT_SYNC_MAX_LINES = env.integer("EXPORT_SYNC_MAX_LINES", 5_000, minimum=0)
# A TrueType font with Korean glyphs, embedded in PDFs (Debian: fonts-nanum); when the file is missing,
# PDFs use reportlab's built-in Korean CID font, which is not embedded.
PDF_FONT_PATH = env.string("PDF_FONT_PATH", "/usr/share/fonts/truetype/nanum/NanumGothic.ttf") or ""

# --- Snapshots --------------------------------------------------------------
# What is not permitted at an instant, as signed files labs filter with (optout/snapshots/): built by beat every
# SNAPSHOT_SCHEDULE_MINUTES (daily; 0: only on demand), stored through the STORAGES alias SNAPSHOT_STORAGE
# (shared by web and workers), the newest SNAPSHOT_KEEP ready ones kept (the newest is never removed).
SNAPSHOT_SCHEDULE_MINUTES = env.integer("SNAPSHOT_SCHEDULE_MINUTES", 24 * 60, minimum=0)
SNAPSHOT_KEEP = env.integer("SNAPSHOT_KEEP", 7, minimum=1)
SNAPSHOT_STORAGE = env.string("SNAPSHOT_STORAGE", "default") or "default"
if CLAIM_EVIDENCE_STORAGE not in STORAGES:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        f"CLAIM_EVIDENCE_STORAGE={CLAIM_EVIDENCE_STORAGE!r} names no STORAGES alias: {', '.join(STORAGES)}."
    )
if SNAPSHOT_STORAGE not in STORAGES:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(f"SNAPSHOT_STORAGE={SNAPSHOT_STORAGE!r} names no STORAGES alias: {', '.join(STORAGES)}.")
if SNAPSHOT_SCHEDULE_MINUTES:
    CELERY_BEAT_SCHEDULE["snapshot-scheduled"] = {
        "task": "optout.tasks.snapshot_scheduled",
        "schedule": timedelta(minutes=SNAPSHOT_SCHEDULE_MINUTES),
    }

# --- Near-duplicate search ---------------------------------------------------
# ISCC Content-Codes are searched in memory (registry/similarity.py): a base built into SIMILARITY_INDEX_DIR
# (shared by the web processes of a host, memory-mapped) plus the codes added since, which every lookup scans.
# Beat rebuilds the base every SIMILARITY_INDEX_MINUTES when more than SIMILARITY_DELTA_MAX codes are new.
SIMILARITY_INDEX_DIR = env.path("SIMILARITY_INDEX_DIR", MEDIA_ROOT / "similarity-index")
SIMILARITY_INDEX_MINUTES = env.integer("SIMILARITY_INDEX_MINUTES", 10, minimum=1)
SIMILARITY_DELTA_MAX = env.integer("SIMILARITY_DELTA_MAX", 20_000, minimum=0)
# A lookup result lists at most this many near copies, nearest first (the deciding one always among them).
SIMILARITY_MAX_CANDIDATES = env.integer("SIMILARITY_MAX_CANDIDATES", 10, minimum=1)
CELERY_BEAT_SCHEDULE["similarity-index-refresh"] = {
    "task": "registry.tasks.similarity_index_refresh",
    "schedule": timedelta(minutes=SIMILARITY_INDEX_MINUTES),
}

# The transparency log (README "Transparency log"). Its origin names the log in every checkpoint and is the name of
# its signing key: a schema-less URL, unique to this log and never changed (a changed origin starts another log in
# the eyes of every verifier and witness).
_first_host = next((h.lstrip(".") for h in ALLOWED_HOSTS if h not in {"*", ""} and not h.startswith("[")), "localhost")
TRANSPARENCY_LOG_ORIGIN = env.string("TRANSPARENCY_LOG_ORIGIN") or f"{_first_host}/optout-log"
if any(ch.isspace() for ch in TRANSPARENCY_LOG_ORIGIN) or "+" in TRANSPARENCY_LOG_ORIGIN:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("TRANSPARENCY_LOG_ORIGIN: a schema-less URL without spaces or '+'.")
LOG_CHECKPOINT_MINUTES = env.integer("LOG_CHECKPOINT_MINUTES", 1, minimum=1)
CELERY_BEAT_SCHEDULE["log-checkpoint"] = {
    "task": "optout.tasks.log_checkpoint",
    "schedule": timedelta(minutes=LOG_CHECKPOINT_MINUTES),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.string("LOG_LEVEL", "INFO") or "INFO"},
}

# --- Receipts ---------------------------------------------------------------
# Every lookup answer carries an Ed25519 signature (optout/receipts.py); the public keys are published at
# /.well-known/optout-registry/keys.json. Checked here so a missing or malformed key fails at start-up.
# RECEIPT_SIGNING_KEY_FILE: path to the registry's Ed25519 private key, unencrypted PEM (PKCS#8).
# RECEIPT_SIGNING_KEY: or the raw 32-byte private seed in base64 (standard or url-safe). Set one, not both;
#   one is required outside DEBUG and REGISTRY_TESTING. Without either, development uses a key generated once
#   at DATA_DIR/receipt-dev-key.pem (mode 0600) and shared by every process.
# RECEIPT_RETIRED_PUBLIC_KEYS: comma-separated base64 raw 32-byte Ed25519 public keys of rotated-out signing
#   keys (a JWK's "x" works as is); receipts they signed stay verifiable. To rotate, install the new private key
#   and append the old key's public half here.
_receipt_key_file = env.string("RECEIPT_SIGNING_KEY_FILE")
RECEIPT_SIGNING_KEY_FILE: Path | None = Path(_receipt_key_file).expanduser().resolve() if _receipt_key_file else None
RECEIPT_SIGNING_KEY: str | None = env.string("RECEIPT_SIGNING_KEY") or None
RECEIPT_RETIRED_PUBLIC_KEYS = env.csv_list("RECEIPT_RETIRED_PUBLIC_KEYS", [])

from optout.receipts import receipt_settings_check  # noqa: E402  (one parser for start-up and signing)

receipt_settings_check(
    key_file=RECEIPT_SIGNING_KEY_FILE,
    seed=RECEIPT_SIGNING_KEY,
    retired=RECEIPT_RETIRED_PUBLIC_KEYS,
    dev_key_allowed=DEBUG or TESTING,
)
# --- end of Receipts --------------------------------------------------------
