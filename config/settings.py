"""Vernacular settings, read from the environment with safe defaults.

Development (the default) needs nothing set: SQLite and media live under var/, the secret
key is generated once into var/secret_key. DEBUG is off unless DEBUG=1 asks for it (its
error pages list every URL to anyone signed in). Production (VERNACULAR_PRODUCTION=1)
requires SECRET_KEY and ALLOWED_HOSTS, and hardens cookies and transport.
"""

import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_int, env_list, env_str, round_settings, s3_storage

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("VERNACULAR_DATA_DIR", str(BASE_DIR / "var")))

PRODUCTION = env_bool("VERNACULAR_PRODUCTION")
DEBUG = env_bool("DEBUG") and not PRODUCTION


def _secret_key() -> str:
    key = env_str("SECRET_KEY")
    if key:
        return key
    if PRODUCTION:
        raise ImproperlyConfigured("SECRET_KEY must be set when VERNACULAR_PRODUCTION=1.")
    # Development: generate once and keep it, so sessions survive restarts.
    path = DATA_DIR / "secret_key"
    if not path.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "" if PRODUCTION else "127.0.0.1,localhost,[::1]")
if PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must be set when VERNACULAR_PRODUCTION=1.")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "axes",
    "csp",
    "labeling",
    "training",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files in every mode, so that DEBUG can stay off in development too.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "config.body_limits.BodySizeLimitMiddleware",  # before CSRF, which reads the body
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks
]

# Development serves static files from the apps' folders as they change; production from
# collectstatic's STATIC_ROOT.
WHITENOISE_USE_FINDERS = not PRODUCTION
WHITENOISE_AUTOREFRESH = not PRODUCTION

# Content-Security-Policy (django-csp): scripts, styles and media only from this server, no
# inline script or style anywhere in our templates, no framing.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "media-src": ["'self'", "blob:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

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

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'db.sqlite3'}"),
        conn_health_checks=True,
    )
}
# PostgreSQL connections are kept a minute (opening one costs more than a lease page's
# queries: docs/benchmarks.md); SQLite opens a file, and runserver a thread per request.
DATABASES["default"]["CONN_MAX_AGE"] = env_int(
    "DATABASE_CONN_MAX_AGE",
    60 if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" else 0,
)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory, so that Celery workers started by the tests share the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test-db.sqlite3")}
    # Web requests and workers write concurrently: wait for the lock instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
# Sign-in throttling (django-axes) on both login forms, the app's and the admin's. Counted per
# username *and* address: a village shares one address, and one person's typos must not
# lock out everyone behind it, nor a stranger's guesses lock out the person.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("VERNACULAR_LOGIN_FAILURE_LIMIT", 10)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("VERNACULAR_LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
# Behind a reverse proxy: how many proxies append to X-Forwarded-For (config/client_ip.py).
VERNACULAR_PROXY_COUNT = env_int("VERNACULAR_PROXY_COUNT", 0)
AXES_CLIENT_IP_CALLABLE = "config.client_ip.client_ip"
AXES_VERBOSE = False
LOGIN_REDIRECT_URL = "project_list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(DATA_DIR / "staticfiles")))
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(DATA_DIR / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# Recordings and clips in an S3-compatible bucket instead of MEDIA_ROOT (models stay in
# VERNACULAR_MODEL_DIR): tests/test_storage_s3.py runs upload to export against a real server.
if env_str("VERNACULAR_S3_BUCKET"):
    STORAGES["default"] = s3_storage(
        env_str("VERNACULAR_S3_BUCKET"),
        env_str("VERNACULAR_S3_ENDPOINT_URL"),
        env_str("VERNACULAR_S3_REGION"),
    )

# Celery: one Redis for broker and results. Long training rounds outlive the default
# one-hour visibility timeout, after which Redis would hand the task to a second worker.
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 12 * 3600),
    "socket_connect_timeout": 3,
    "socket_timeout": 10,
}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"socket_connect_timeout": 3}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = "default"
# Ingest stays on "default"; scoring and training go to "gpu" (solo pool, one at a time).
CELERY_TASK_ROUTES = {
    "labeling.*": {"queue": "default"},
    "training.round_train": {"queue": "gpu"},
    "training.score_pool": {"queue": "gpu"},
    "training.transcribe": {"queue": "gpu"},
    "training.export_offline": {"queue": "gpu"},
    "training.align_recording": {"queue": "gpu"},
}
# A web request that queues work fails fast with a clear message when Redis is down.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = 24 * 3600
# Celery beat (embedded in `make run`'s default worker; one `celery beat` when scaled out)
# reaps rounds whose worker died, so nobody has to open a page for it to be noticed.
CELERY_BEAT_SCHEDULE = {
    "reap-stale-rounds": {
        "task": "training.reap_stale",
        "schedule": float(env_int("VERNACULAR_REAP_SECONDS", 60)),
        "options": {"queue": "default", "expires": 50},
    }
}

if PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
    if not SECURE_HSTS_PRELOAD:
        # Preloading is a hard-to-undo promise about the whole domain: the operator opts in.
        SILENCED_SYSTEM_CHECKS = ["security.W021"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}

# Uploads: each file is checked against these before it is stored.
VERNACULAR_MAX_UPLOAD_MB = env_int("VERNACULAR_MAX_UPLOAD_MB", 1024)
VERNACULAR_MAX_RECORDING_MINUTES = env_int("VERNACULAR_MAX_RECORDING_MINUTES", 240)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024  # larger uploads spool to a temporary file

# Training. Models live on the worker's disk; in a multi-machine setup point this at a
# folder every gpu worker and the web server share.
VERNACULAR_MODEL_DIR = Path(env_str("VERNACULAR_MODEL_DIR", str(DATA_DIR / "models")))
# The offline pretrained default (docs/base-models.md); "builtin:tiny" learns from scratch.
VERNACULAR_DEFAULT_BASE_MODEL = env_str("VERNACULAR_DEFAULT_BASE_MODEL", "builtin:whisper-base")
# Off by default: nothing downloads at run time unless the operator says so.
VERNACULAR_ALLOW_MODEL_DOWNLOAD = env_bool("VERNACULAR_ALLOW_MODEL_DOWNLOAD", False)
# Overrides on top of the per-base defaults in asr/recipe.py: any RoundConfig field, as JSON,
# e.g. VERNACULAR_ROUND_SETTINGS='{"unfreeze_top_layers": 2}' on GPU workers.
VERNACULAR_ROUND_CONFIG = round_settings(env_str("VERNACULAR_ROUND_SETTINGS", "{}"))
if os.environ.get("VERNACULAR_ROUND_MAX_STEPS"):
    VERNACULAR_ROUND_CONFIG["max_steps"] = env_int("VERNACULAR_ROUND_MAX_STEPS", 400)
# A round on a frozen Whisper encoder keeps each clip's encoder outputs in CPU memory (float16) up
# to this size, so the encoder runs once per clip instead of at every step: an hour of
# labels takes about 0.9 GB.
VERNACULAR_ENCODER_CACHE_MB = env_int("VERNACULAR_ENCODER_CACHE_MB", 2000)
# A running round or scoring run whose worker has not written for this long is taken as dead.
VERNACULAR_HEARTBEAT_STALE_SECONDS = env_int("VERNACULAR_HEARTBEAT_STALE_SECONDS", 180)
VERNACULAR_HEARTBEAT_SECONDS = env_int("VERNACULAR_HEARTBEAT_SECONDS", 10)
VERNACULAR_ROUND_MAX_ATTEMPTS = 3
# Scoring: how many clips the diversity-aware picker orders first, and how many labeled clips
# it keeps its distance from.
VERNACULAR_SCORING_PICKS = env_int("VERNACULAR_SCORING_PICKS", 200)
VERNACULAR_SCORING_LABELED_SAMPLE = 500
