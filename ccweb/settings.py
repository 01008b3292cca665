"""ccweb settings: every knob comes from the environment (documented in .env.example)."""

import hashlib
import hmac
import os
from pathlib import Path

import environ
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").exists():
    env.read_env(str(BASE_DIR / ".env"))

# "development" generates the secrets it needs; "production" refuses to start without them.
CCWEB_MODE = env.str("CCWEB_MODE", default="development")
if CCWEB_MODE not in {"development", "production"}:
    raise ImproperlyConfigured("CCWEB_MODE must be 'development' or 'production'.")
PRODUCTION = CCWEB_MODE == "production"


def _required_in_production(name: str, derived_from: str) -> str:
    """A secret from the environment; in development, derived from SECRET_KEY so every
    process (web, worker, engine) agrees on it without any manual step."""
    value = env.str(name, default="")
    if value:
        return value
    if PRODUCTION:
        raise ImproperlyConfigured(f"{name} must be set when CCWEB_MODE=production.")
    return hmac.new(derived_from.encode(), name.encode(), hashlib.sha256).hexdigest()


DATA_DIR = Path(env.str("DATA_DIR", default=str(BASE_DIR / "var")))
DATA_DIR.mkdir(parents=True, exist_ok=True)

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if PRODUCTION:
        raise ImproperlyConfigured("SECRET_KEY must be set when CCWEB_MODE=production.")
    SECRET_KEY = "development-only-secret-key-do-not-use-in-production"

DEBUG = env.bool("DEBUG", default=not PRODUCTION)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "ccweb.apps.AdminConfig",  # django.contrib.admin, with ccweb.admin.AdminSite
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_tasks",
    "django_tasks_db",
    "conversions",
    "engine",
    "ops",
    # Accounts (see "Accounts" below): after ccweb's apps, so templates/ and conversions' templates win.
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
]

MIDDLEWARE = [
    # Outermost, to count the webhook endpoint's final answers (/metrics).
    "ops.middleware.WebhookResponseCounter",
    "django.middleware.security.SecurityMiddleware",
    "conversions.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "ccweb.urls"
WSGI_APPLICATION = "ccweb.wsgi.application"

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
                "conversions.accounts.context",
            ],
        },
    },
]

# How bin/run (manage.py ccweb_serve) serves: gunicorn processes × threads, and task workers.
WEB_PROCESSES = env.int("WEB_PROCESSES", default=2)
WEB_THREADS = env.int("WEB_THREADS", default=8)
WORKER_PROCESSES = env.int("WORKER_PROCESSES", default=1)
# Processes of the loopback engine server ccweb_serve starts for ccweb's own calls to its engine
# (ENGINE_INTERNAL_URL), WEB_THREADS threads each; 0: none, ccweb's calls go through the public server.
ENGINE_SERVER_PROCESSES = env.int("ENGINE_SERVER_PROCESSES", default=1)

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server, the worker and the engine write concurrently: WAL lets readers go on,
    # IMMEDIATE takes the write lock up front so transactions wait instead of failing.
    # synchronous=NORMAL, SQLite's advice for WAL: a commit is not flushed to disk by itself (that is
    # a few ms each, and a job commits a few dozen times), the WAL is at each checkpoint. The database
    # never corrupts; a power cut (not a crash of ccweb) may lose the last commits. FULL flushes each.
    _SQLITE_SYNCHRONOUS = env.str("SQLITE_SYNCHRONOUS", default="NORMAL").upper()
    if _SQLITE_SYNCHRONOUS not in {"NORMAL", "FULL"}:
        raise ImproperlyConfigured("SQLITE_SYNCHRONOUS must be NORMAL or FULL.")
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": env.float("SQLITE_TIMEOUT", default=30.0),
            "transaction_mode": "IMMEDIATE",
            "init_command": f"PRAGMA journal_mode=WAL; PRAGMA synchronous={_SQLITE_SYNCHRONOUS};",
        }
    )
    # Each request thread keeps its connection: closing the last one to a WAL database checkpoints
    # and deletes the WAL, and the next request recreates and syncs it, reading the schema again
    # (about 10 ms per request that writes, measured by bench/webhooks.py). 0: close after each request.
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("SQLITE_CONN_MAX_AGE", default=600)
    # Tests run a live server and a worker in threads: they need a real file, not :memory:.
    # One file per test process, so parallel runs do not share it.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / f"test-{os.getpid()}.sqlite3")}
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Each thread keeps its connection from one request to the next (gunicorn's threads live as long
    # as their process): PostgreSQL sees at most one per thread that used the database, and a
    # request neither opens one nor takes one from a pool and gives it back (which cost each request
    # that touched the database 0.1 ms of CPU more in bench/webhooks.py). Before a kept connection's
    # first use in a request it is checked, without a round trip unless its socket has something to
    # say (ccweb/db/postgresql/base.py): one the server closed meanwhile (a restart,
    # pg_terminate_backend) is replaced, never used. 0: a new connection per request.
    DATABASES["default"]["ENGINE"] = "ccweb.db.postgresql"
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=600)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # The webhook's statement is a prepared statement of its connection; false: nothing prepared
    # (PgBouncer in transaction mode before 1.21 cannot keep them).
    DATABASES["default"].setdefault("OPTIONS", {})["prepare"] = env.bool("DATABASE_PREPARE", default=True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "conversions:dashboard"
LOGOUT_REDIRECT_URL = "account_login"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
# Outside production, serve static files straight from static/ (no collectstatic step).
WHITENOISE_USE_FINDERS = not PRODUCTION
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(DATA_DIR / "media")))
MEDIA_URL = "media/"
# Uploads being received are written here, then moved into the engine's storage: on the file system
# of MEDIA_ROOT that move is a rename, so a file is written once (elsewhere it is copied).
FILE_UPLOAD_TEMP_DIR = Path(env.str("FILE_UPLOAD_TEMP_DIR", default=str(DATA_DIR / "uploading")))
FILE_UPLOAD_TEMP_DIR.mkdir(parents=True, exist_ok=True)

STORAGES = {
    # ccweb's own copies of converted files.
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT / "ccweb")},
    },
    # The engine's task files (uploads, conversion results).
    "engine": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT / "engine")},
    },
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# S3 (or any S3-compatible store) instead of the file system, for ccweb's outputs and the
# engine's files alike; web and worker machines then share them.
STORAGE_BACKEND = env.str("STORAGE_BACKEND", default="filesystem")
if STORAGE_BACKEND == "s3":
    _s3 = {
        "bucket_name": env.str("AWS_STORAGE_BUCKET_NAME"),
        "endpoint_url": env.str("AWS_S3_ENDPOINT_URL", default="") or None,
        "region_name": env.str("AWS_S3_REGION_NAME", default="") or None,
        "access_key": env.str("AWS_ACCESS_KEY_ID", default="") or None,
        "secret_key": env.str("AWS_SECRET_ACCESS_KEY", default="") or None,
        "default_acl": None,
        "querystring_auth": True,
    }
    STORAGES["default"] = {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {**_s3, "location": "ccweb"}}
    STORAGES["engine"] = {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {**_s3, "location": "engine"}}
elif STORAGE_BACKEND != "filesystem":
    raise ImproperlyConfigured("STORAGE_BACKEND must be 'filesystem' or 's3'.")

# Background work (django-tasks). The database backend needs nothing but the database, and any
# number of `db_worker` processes on any number of machines share it.
TASKS = {
    "default": {
        "BACKEND": env.str("TASKS_BACKEND", default="django_tasks_db.DatabaseBackend"),
        "QUEUES": ["default", "engine"],
    }
}

EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="ccweb <ccweb@localhost>")

# --- Accounts (django-allauth; ccweb's side in conversions/accounts.py) ----------------------------
# Who may sign up: open (anyone), invite (only someone holding a valid team invitation, with the
# address it was sent to), closed (staff create accounts). Production defaults to invite: conversions
# cost the API account's credits.
ACCOUNT_SIGNUP = env.str("ACCOUNT_SIGNUP", default="invite" if PRODUCTION else "open")
if ACCOUNT_SIGNUP not in {"open", "invite", "closed"}:
    raise ImproperlyConfigured("ACCOUNT_SIGNUP must be 'open', 'invite' or 'closed'.")
ACCOUNT_ADAPTER = "conversions.accounts.AccountAdapter"
SOCIALACCOUNT_ADAPTER = "conversions.accounts.SocialAccountAdapter"
ACCOUNT_FORMS = {"signup": "conversions.accounts.SignupForm"}
# People log in with their username or their e-mail address.
ACCOUNT_LOGIN_METHODS = {"username", "email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "username*", "password1*", "password2*"]
ACCOUNT_UNIQUE_EMAIL = True
# mandatory: an account signed up for logs in once its address is verified (a link sent to it);
# optional: the link is sent, logging in does not wait for it; none: nothing is sent.
ACCOUNT_EMAIL_VERIFICATION = env.str("ACCOUNT_EMAIL_VERIFICATION", default="mandatory")
if ACCOUNT_EMAIL_VERIFICATION not in {"mandatory", "optional", "none"}:
    raise ImproperlyConfigured("ACCOUNT_EMAIL_VERIFICATION must be 'mandatory', 'optional' or 'none'.")
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[ccweb] "
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "https" if PRODUCTION else "http"
# Days a team invitation's link stays valid.
TEAM_INVITATION_DAYS = env.int("TEAM_INVITATION_DAYS", default=7)
# Optional sign-in through an OpenID Connect provider (Keycloak, Authentik, Google...), configured
# here only: OIDC_SERVER_URL is the issuer (its /.well-known/openid-configuration is read). The
# provider calls back at PUBLIC_URL/accounts/oidc/sso/login/callback/.
OIDC_SERVER_URL = env.str("OIDC_SERVER_URL", default="").rstrip("/")
OIDC_CLIENT_ID = env.str("OIDC_CLIENT_ID", default="")
OIDC_CLIENT_SECRET = env.str("OIDC_CLIENT_SECRET", default="")
OIDC_NAME = env.str("OIDC_NAME", default="Single sign-on")
if OIDC_SERVER_URL and not OIDC_CLIENT_ID:
    raise ImproperlyConfigured("OIDC_CLIENT_ID must be set with OIDC_SERVER_URL.")
SOCIALACCOUNT_PROVIDERS = {
    "openid_connect": {
        "OAUTH_PKCE_ENABLED": True,
        "APPS": [
            {
                "provider_id": "sso",
                "name": OIDC_NAME,
                "client_id": OIDC_CLIENT_ID,
                "secret": OIDC_CLIENT_SECRET,
                "settings": {"server_url": OIDC_SERVER_URL},
            }
        ]
        if OIDC_SERVER_URL
        else [],
    }
}
# Seconds per call to the provider (discovery, token, user info).
SOCIALACCOUNT_REQUESTS_TIMEOUT = 10

# --- How ccweb is reached, and which API it talks to -------------------------------------------
PUBLIC_URL = env.str("PUBLIC_URL", default="http://127.0.0.1:8000").rstrip("/")
ENGINE_EMBEDDED = env.bool("ENGINE_EMBEDDED", default=True)
ENGINE_URL = env.str("ENGINE_URL", default="").rstrip("/") or f"{PUBLIC_URL}/engine"
# Where ccweb's own client calls the engine's API when it is not ENGINE_URL (the engine's links, upload
# forms and downloads, keep ENGINE_URL). `manage.py ccweb_serve` sets it to an engine server of its own on
# a loopback port, so a request to ccweb never waits for a thread of the pool it holds one of.
ENGINE_INTERNAL_URL = env.str("ENGINE_INTERNAL_URL", default="").rstrip("/")
ENGINE_API_KEY = _required_in_production("ENGINE_API_KEY", SECRET_KEY)
ENGINE_WEBHOOK_SECRET = _required_in_production("ENGINE_WEBHOOK_SECRET", SECRET_KEY)

CLOUDCONVERT_API_KEY = env.str("CLOUDCONVERT_API_KEY", default="")
CLOUDCONVERT_SANDBOX = env.bool("CLOUDCONVERT_SANDBOX", default=False)
CLOUDCONVERT_REGION = env.str("CLOUDCONVERT_REGION", default="")
CLOUDCONVERT_API_URL = env.str("CLOUDCONVERT_API_URL", default="").rstrip("/")
CLOUDCONVERT_SYNC_API_URL = env.str("CLOUDCONVERT_SYNC_API_URL", default="").rstrip("/")
CLOUDCONVERT_WEBHOOK_SECRET = env.str("CLOUDCONVERT_WEBHOOK_SECRET", default="")
if PRODUCTION and CLOUDCONVERT_API_KEY and not CLOUDCONVERT_WEBHOOK_SECRET:
    raise ImproperlyConfigured("CLOUDCONVERT_WEBHOOK_SECRET must be set with CLOUDCONVERT_API_KEY.")
CLOUDCONVERT_TIMEOUT = env.float("CLOUDCONVERT_TIMEOUT", default=30.0)
CLOUDCONVERT_MAX_RETRIES = env.int("CLOUDCONVERT_MAX_RETRIES", default=4)

# --- The engine ---------------------------------------------------------------------------------
ENGINE_MAX_UPLOAD_SIZE = env.int("ENGINE_MAX_UPLOAD_SIZE", default=1024 * 1024 * 1024)
# The engine's JSON bodies (import/base64 carries whole files); larger ones get a 413.
ENGINE_MAX_REQUEST_BODY = env.int("ENGINE_MAX_REQUEST_BODY", default=64 * 1024 * 1024)
ENGINE_URL_EXPIRY = env.int("ENGINE_URL_EXPIRY", default=24 * 3600)
ENGINE_SYNC_TIMEOUT = env.int("ENGINE_SYNC_TIMEOUT", default=300)
ENGINE_WEBHOOK_TIMEOUT = env.int("ENGINE_WEBHOOK_TIMEOUT", default=10)
ENGINE_WEBHOOK_RETRY_DELAYS = env.list("ENGINE_WEBHOOK_RETRY_DELAYS", cast=int, default=[10, 60, 300])
# import/url refuses loopback, private and link-local addresses unless this is set.
ENGINE_IMPORT_ALLOW_PRIVATE = env.bool("ENGINE_IMPORT_ALLOW_PRIVATE", default=False)
ENGINE_IMPORT_TIMEOUT = env.int("ENGINE_IMPORT_TIMEOUT", default=30)
# Job and task creations per minute; 0 turns the limit off.
ENGINE_RATE_LIMIT = env.int("ENGINE_RATE_LIMIT", default=500)
ENGINE_TASK_TIMEOUT = env.int("ENGINE_TASK_TIMEOUT", default=5 * 3600)
ENGINE_HEARTBEAT_INTERVAL = env.int("ENGINE_HEARTBEAT_INTERVAL", default=30)
# A processing task whose worker stayed silent this long is retried once, then failed.
ENGINE_STUCK_AFTER = env.int("ENGINE_STUCK_AFTER", default=300)
ENGINE_RETENTION = env.int("ENGINE_RETENTION", default=24 * 3600)
ENGINE_MAINTENANCE_INTERVAL = env.int("ENGINE_MAINTENANCE_INTERVAL", default=60)
# Workers (manage.py ccweb_worker): how often each records that it lives, when a silent one counts
# as dead (its running tasks are then queued again or failed), the longest wait between two tries
# of a database that does not answer.
WORKER_HEARTBEAT_INTERVAL = env.float("WORKER_HEARTBEAT_INTERVAL", default=10.0)
WORKER_DEAD_AFTER = env.float("WORKER_DEAD_AFTER", default=120.0)
WORKER_RETRY_MAX_DELAY = env.float("WORKER_RETRY_MAX_DELAY", default=30.0)
# Every converter tool runs under bubblewrap (its task's folder, no network); "off" only where every
# uploaded file is trusted and bubblewrap cannot run.
ENGINE_SANDBOX = env.str("ENGINE_SANDBOX", default="bwrap")
# Per-run limits of the converters' tools (ffmpeg; pandoc, Chromium, Ghostscript, rsvg-convert).
ENGINE_MEDIA_TIMEOUT = env.int("ENGINE_MEDIA_TIMEOUT", default=3600)
ENGINE_TOOL_TIMEOUT = env.int("ENGINE_TOOL_TIMEOUT", default=300)
ENGINE_CHROMIUM = env.str("ENGINE_CHROMIUM", default="/usr/bin/chromium")
ENGINE_WATERMARK_FONT = env.str("ENGINE_WATERMARK_FONT", default="/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
# Warm LibreOffice processes per worker process, each reused for this many documents.
ENGINE_OFFICE_POOL_SIZE = env.int("ENGINE_OFFICE_POOL_SIZE", default=1)
ENGINE_OFFICE_MAX_DOCUMENTS = env.int("ENGINE_OFFICE_MAX_DOCUMENTS", default=200)
ENGINE_OFFICE_TIMEOUT = env.int("ENGINE_OFFICE_TIMEOUT", default=120)
# The Python that can import LibreOffice's `uno` (Debian's python3 with python3-uno).
ENGINE_OFFICE_PYTHON = env.str("ENGINE_OFFICE_PYTHON", default="/usr/bin/python3")

# --- Conversions --------------------------------------------------------------------------------
CONVERSIONS_POLL_MAX_INTERVAL = env.int("CONVERSIONS_POLL_MAX_INTERVAL", default=60)
# Per user and calendar day; 0 means no limit.
CONVERSIONS_DAILY_JOB_QUOTA = env.int("CONVERSIONS_DAILY_JOB_QUOTA", default=100)
CONVERSIONS_MAX_UPLOAD_SIZE = env.int("CONVERSIONS_MAX_UPLOAD_SIZE", default=100 * 1024 * 1024)
# Largest webhook body accepted (bigger: 413), read past Django's DATA_UPLOAD_MAX_MEMORY_SIZE
# (2.5 MB): a job's body grows by a few hundred bytes per output file (5000 pages: about 1.6 MB).
CONVERSIONS_WEBHOOK_MAX_BODY = env.int("CONVERSIONS_WEBHOOK_MAX_BODY", default=32 * 1024 * 1024)
# The webhook's log (admin): bodies of accepted deliveries up to this size are kept for a replay;
# of a rejected one only its first bytes; both for CONVERSIONS_WEBHOOK_LOG_DAYS (then an accepted
# delivery keeps only its hash, which recognises a late duplicate, and a rejected one goes).
CONVERSIONS_WEBHOOK_LOG_BODY_MAX = env.int("CONVERSIONS_WEBHOOK_LOG_BODY_MAX", default=2 * 1024 * 1024)
CONVERSIONS_WEBHOOK_LOG_REJECTED_BYTES = env.int("CONVERSIONS_WEBHOOK_LOG_REJECTED_BYTES", default=1024)
CONVERSIONS_WEBHOOK_LOG_DAYS = env.int("CONVERSIONS_WEBHOOK_LOG_DAYS", default=30)
# Stored converted files are deleted this many days after their conversion ended (a team may set its
# own for what is shared with it); 0 keeps them. Pages say so CONVERSIONS_RETENTION_WARNING_DAYS
# ahead. The sweep runs every CONVERSIONS_RETENTION_INTERVAL seconds (conversions.tasks.retention_sweep).
CONVERSIONS_RETENTION_DAYS = env.int("CONVERSIONS_RETENTION_DAYS", default=0)
CONVERSIONS_RETENTION_WARNING_DAYS = env.int("CONVERSIONS_RETENTION_WARNING_DAYS", default=3)
CONVERSIONS_RETENTION_INTERVAL = env.int("CONVERSIONS_RETENTION_INTERVAL", default=3600)
# The activity log (who shared, downloaded, deleted...) keeps this many days; 0 keeps it all.
CONVERSIONS_ACTIVITY_LOG_DAYS = env.int("CONVERSIONS_ACTIVITY_LOG_DAYS", default=365)

# --- Operations: /healthz, /readyz, /metrics (ops/) ------------------------------------------------
# Prometheus sends it as "Authorization: Bearer <token>". Empty: /metrics is open in development and
# off (403) in production.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# Task time (ccweb_engine_task_duration_seconds) and webhook rejections (ccweb_webhook_rejections_recent)
# cover this many seconds before the scrape.
METRICS_WINDOW = env.int("METRICS_WINDOW", default=300)

# --- Content-Security-Policy (django-csp) ---------------------------------------------------------
# No inline script or style anywhere: pages load static/js/*.js and css/app.css, thumbnails come
# from ccweb's own URLs. The API's upload hosts are added to connect-src and form-action per
# request (conversions.middleware), from the API configured. Enforced in development as well, so
# every browser test runs under the production policy (django-csp leaves DEBUG's error pages
# alone); CSP_REPORT_ONLY=true only reports violations in the browser's console instead.
_CSP = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF],
        "connect-src": [SELF],
        "form-action": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
    }
}
if env.bool("CSP_REPORT_ONLY", default=False):
    CONTENT_SECURITY_POLICY_REPORT_ONLY = _CSP
else:
    CONTENT_SECURITY_POLICY = _CSP

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

if PRODUCTION:
    SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=3600)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    # Probes and Prometheus often speak plain HTTP to the instance itself, behind the TLS proxy.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
