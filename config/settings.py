"""The project's one settings module.

Every setting has its default here and is read from the environment
(see ``config/production.env.example``). With no environment at all the
project runs on SQLite, runs Celery tasks in-process and prints emails to the
console, so a newcomer needs nothing but Python.
"""

import ipaddress
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured
from kombu import Exchange, Queue
from pythonjsonlogger.core import RESERVED_ATTRS

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")

# Development key: a deploy check refuses it whenever SITE_URL is https.
DEV_SECRET_KEY = "dev-only-secret-key-never-use-in-production-0123456789abcdef"

SECRET_KEY = env("SECRET_KEY", default=DEV_SECRET_KEY)
DEBUG = env.bool("DEBUG", default=False)
SITE_URL = env("SITE_URL", default="http://localhost:8000").rstrip("/")
HTTPS = SITE_URL.startswith("https://")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[SITE_URL])

INSTITUTION_NAME = env("INSTITUTION_NAME", default="Example Medical School")
HELP_DESK_CONTACT = env("HELP_DESK_CONTACT", default="the IT help desk")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_otp",
    "phonenumber_field",
    "identity",
    "identity.directory",
    "devices",
    "helpdesk",
    "campaigns",
    "vpn",
    "reports",
]

MIDDLEWARE = [
    # A load balancer probes the node by its address over plain HTTP: answered before anything reads the Host.
    "config.health.middleware",
    "identity.request_id.middleware",  # the request's id and its log line (docs/operations.md, "Logs")
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
# The site's pages, for the addresses the VPN's processes write into their answers (their own ROOT_URLCONF,
# config.urls_api, serves none of them): reverse(..., urlconf=settings.SITE_URLCONF).
SITE_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
                "identity.context_processors.institution",
                "campaigns.web.setup_notice",
            ],
        },
    },
    # Plain-text messages (emails, texts, spoken calls): the same templates, never HTML-escaped ("O'Brien" stays
    # "O'Brien"). Rendered through devices.outbox.render_text only.
    {
        "NAME": "text",
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {"autoescape": False},
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"].endswith("postgresql"):
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=60))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_USER_MODEL = "identity.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "identity:sign_in"
LOGIN_REDIRECT_URL = "devices:my_devices"

# --- The directory: LDAP / Active Directory passwords and the sync's reader (docs/directory.md) -----------------
# One backend checks every password (web sign-in, the emailed-link and recovery-link gates, RADIUS, the admin): a
# local account against its hash here, a person from the directory only by a bind to the directory (DIR-01).
AUTHENTICATION_BACKENDS = ["identity.directory.backends.PasswordBackend"]
# Servers, tried in turn (libldap moves to the next one it cannot reach). Empty: no directory, every password local.
LDAP_SERVER_URIS = env.list("LDAP_SERVER_URIS", default=[])
LDAP_BIND_DN = env("LDAP_BIND_DN", default="")  # the read-only account that searches
LDAP_BIND_PASSWORD = env("LDAP_BIND_PASSWORD", default="")
LDAP_USER_SEARCH_BASE = env("LDAP_USER_SEARCH_BASE", default="")
# %(user)s is the institution ID typed at sign-in (escaped). Active Directory: (sAMAccountName=%(user)s).
LDAP_USER_FILTER = env("LDAP_USER_FILTER", default="(uid=%(user)s)")
# ldaps:// URIs, or ldap:// with StartTLS; the server's certificate is always verified, against this CA file when
# set, else the system's trust store. Plain LDAP is refused by a deploy check (directory.E101) unless LDAP_ALLOW_PLAIN
# says this is a lab, where passwords may cross the network in clear.
LDAP_START_TLS = env.bool("LDAP_START_TLS", default=False)
LDAP_CA_CERT_FILE = env("LDAP_CA_CERT_FILE", default="")
LDAP_ALLOW_PLAIN = env.bool("LDAP_ALLOW_PLAIN", default=False)
# Connecting to one server, and any one operation, gives up after this long (then the next server, or "We cannot
# check passwords right now").
LDAP_TIMEOUT_SECONDS = env.float("LDAP_TIMEOUT_SECONDS", default=5.0)
# Where people change or reset their directory password (named in the expired / must-change messages).
LDAP_PASSWORD_CHANGE_AT = env("LDAP_PASSWORD_CHANGE_AT", default="the institution's password page")
# Our field -> the directory's attribute. The defaults suit OpenLDAP's inetOrgPerson; Active Directory:
# LDAP_ATTRIBUTES=institution_id=sAMAccountName,department=department,directory_id=objectGUID,password_changed=pwdLastSet
# password_changed is the stamp of the person's last password change (OpenLDAP's ppolicy keeps pwdChangedTime, an
# operational attribute asked for by name): when the sync reads a new one, the person's sessions end. Empty: off.
LDAP_ATTRIBUTES = {
    "institution_id": "uid",
    "first_name": "givenName",
    "last_name": "sn",
    "email": "mail",
    "department": "departmentNumber",
    "mobile": "mobile",
    "directory_id": "entryUUID",
    "password_changed": "pwdChangedTime",
    **env.dict("LDAP_ATTRIBUTES", default={}),
}
# Disabled in the directory: Active Directory's userAccountControl with its ACCOUNTDISABLE bit (0x2); or another
# attribute, disabled when it holds one of LDAP_DISABLED_VALUES (or, with none listed, whenever it is present).
LDAP_DISABLED_ATTRIBUTE = env("LDAP_DISABLED_ATTRIBUTE", default="userAccountControl")
LDAP_DISABLED_VALUES = env.list("LDAP_DISABLED_VALUES", default=[])
# The sync's reader: the bases to read people under (";"-separated DNs; default the search base), which entries are
# people, and optionally only members of these groups (";"-separated DNs) are people here.
LDAP_SYNC_BASES = [dn.strip() for dn in env("LDAP_SYNC_BASES", default="").split(";") if dn.strip()]
LDAP_SYNC_FILTER = env("LDAP_SYNC_FILTER", default="(objectClass=person)")
LDAP_SYNC_GROUPS = [dn.strip() for dn in env("LDAP_SYNC_GROUPS", default="").split(";") if dn.strip()]
# Group DN -> one of our roles ("Help desk", "Auditor"; never superuser, DIR-04), as JSON. Empty: roles are not the
# directory's. Members of LDAP_VPN_GROUP have VPN access approved; empty: VPN access is not the directory's.
LDAP_ROLE_GROUPS = env.json("LDAP_ROLE_GROUPS", default={})
LDAP_VPN_GROUP = env("LDAP_VPN_GROUP", default="")
# The attribute that lists a person's groups (Active Directory's own; OpenLDAP's memberof overlay).
LDAP_MEMBER_OF_ATTRIBUTE = env("LDAP_MEMBER_OF_ATTRIBUTE", default="memberOf")
# Entries per page of the sync's paged search (RFC 2696; Active Directory's MaxPageSize is 1,000).
LDAP_PAGE_SIZE = env.int("LDAP_PAGE_SIZE", default=500)

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]

# --- Sessions, cookies and HTTP security (SES-05) -----------------------------
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=8 * 3600)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SECURE = HTTPS
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=HTTPS)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=HTTPS)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=HTTPS)
BEHIND_TLS_PROXY = env.bool("BEHIND_TLS_PROXY", default=False)
if BEHIND_TLS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# How many reverse proxies in front of the app append to X-Forwarded-For: the client's address is the one the
# outermost of them saw (identity.web.client_ip). 0: REMOTE_ADDR is the client.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)

# No inline script or style anywhere, and nothing from another origin (ACT-02).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "img-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'none'"],
        "object-src": ["'none'"],
    },
}

# --- Email ----------------------------------------------------------------------
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
# Seconds any one wait on the mail server may take (connect, each answer); EMAIL_URL cannot carry it.
EMAIL_TIMEOUT = env.float("EMAIL_TIMEOUT", default=10.0)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="no-reply@localhost")

# --- Celery -------------------------------------------------------------------------
# With no REDIS_URL, tasks run in-process when they are dispatched (on commit).
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL or "memory://")
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Unless this is set, Celery's Django fixup closes the database connection around every task, CONN_MAX_AGE or not:
# a new PostgreSQL connection for each message sent. With it, Celery closes one every N tasks, and between tasks
# config/celery.py applies Django's own rules (CONN_MAX_AGE, CONN_HEALTH_CHECKS) as between two requests.
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=1000)
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A dispatch must not hang a web request when the broker is down (REL-06).
CELERY_BROKER_TRANSPORT_OPTIONS = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2}
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}
OUTBOX_SWEEP_EVERY_SECONDS = env.int("OUTBOX_SWEEP_EVERY_SECONDS", default=30)
# A worker and beat wait for a broker that is down as long as it takes (Celery's default gives up after 100 tries and
# exits). A task running when the connection drops finishes; its row, not the broker, says whether it was sent.
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
# kombu's Redis transport with a closed connection raising a connection error, not an AttributeError that ended the
# worker when Redis dropped while it was busy (config/broker.py).
if CELERY_BROKER_URL.partition("://")[0] in ("redis", "rediss"):
    CELERY_BROKER_TRANSPORT = "config.broker:Transport"
# A queue per channel, so a stalled mail server never holds up texts or calls, and one for the sweep, so it runs
# whatever the senders are doing. "celery" takes the rest (reactivation expiry, the daily purge). A worker started
# without -Q consumes all of them; in production each gets its own (deploy/, docs/operations.md, "Deploying").
# Bulk messages (campaign reminders, thousands at a time) have lanes of their own, "bulk-<channel>": a sign-in code
# or an activation link never waits behind them, whatever worker layout consumes the queues.
OUTBOX_QUEUES = {"email": "email", "sms": "sms", "voice": "voice", "bulk-email": "bulk-email", "bulk-sms": "bulk-sms"}
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_QUEUES = [
    Queue(name, Exchange(name), routing_key=name) for name in ["celery", *OUTBOX_QUEUES.values(), "sweep"]
]
CELERY_TASK_ROUTES = {"devices.tasks.sweep_outbox": {"queue": "sweep"}}
# A worker stops any task after this long (the provider timeouts are far shorter): a send stopped by the soft limit
# is an unknown outcome, resolved before it is sent again; one killed at the hard limit is taken back after the
# lease (OUTBOX_SENDING_LEASE_SECONDS, which must be longer). The daily purge has a limit of its own.
OUTBOX_SEND_TIME_LIMIT_SECONDS = env.int("OUTBOX_SEND_TIME_LIMIT_SECONDS", default=60)
CELERY_TASK_SOFT_TIME_LIMIT = OUTBOX_SEND_TIME_LIMIT_SECONDS
CELERY_TASK_TIME_LIMIT = OUTBOX_SEND_TIME_LIMIT_SECONDS + 5
# The sweep's wait before dispatching a row again doubles each time, up to this (behind devices/outbox/waiting.py).
OUTBOX_SWEEP_MAX_BACKOFF_SECONDS = env.int("OUTBOX_SWEEP_MAX_BACKOFF_SECONDS", default=960)
CELERY_BEAT_SCHEDULE = {
    # A sweep not taken by the time the next is due is dropped, not run late: sweeps never pile up.
    "sweep-outbox": {
        "task": "devices.tasks.sweep_outbox",
        "schedule": timedelta(seconds=OUTBOX_SWEEP_EVERY_SECONDS),
        "options": {"expires": OUTBOX_SWEEP_EVERY_SECONDS},
    },
    "expire-reactivations": {"task": "devices.tasks.expire_reactivations", "schedule": timedelta(minutes=10)},
    "purge-expired-records": {"task": "devices.tasks.purge_expired_records", "schedule": timedelta(days=1)},
    # Nothing else deletes a session that timed out rather than signed out; a session's own check of its expiry
    # keeps this from being a matter of security, only of the table's size.
    "clear-expired-sessions": {"task": "identity.tasks.clear_expired_sessions", "schedule": timedelta(hours=1)},
}

# --- Second factors ------------------------------------------------------------------
# Fernet keys (urlsafe base64, 32 bytes) for factor secrets and queued message
# bodies (OTP-08). The first key encrypts; the others still decrypt, for rotation.
# Without one, a key is derived from SECRET_KEY, which a deploy check refuses.
FACTOR_ENCRYPTION_KEYS = env.list("FACTOR_ENCRYPTION_KEYS", default=[])

OTP_ADMIN_HIDE_SENSITIVE_DATA = True
OTP_TOTP_THROTTLE_FACTOR = env.int("OTP_TOTP_THROTTLE_FACTOR", default=1)
TOTP_STEP_SECONDS = 30
TOTP_TOLERANCE_STEPS = 1
TOTP_DIGITS = 6

LOCKOUT_THRESHOLD = env.int("LOCKOUT_THRESHOLD", default=10)
# Called as f(user, event=...) for lockouts and unlocks: identity's way to reach the outbox without importing it.
SECURITY_NOTIFIER = env("SECURITY_NOTIFIER", default="devices.services.notify_person")
# 0 keeps a locked account locked until the help desk unlocks it.
LOCKOUT_AUTO_UNLOCK_MINUTES = env.int("LOCKOUT_AUTO_UNLOCK_MINUTES", default=0)
# Wrong passwords within PASSWORD_THROTTLE_MINUTES before sign-in pauses, per typed ID and per address.
PASSWORD_THROTTLE_MINUTES = env.int("PASSWORD_THROTTLE_MINUTES", default=15)
PASSWORD_FAILURES_PER_ID = env.int("PASSWORD_FAILURES_PER_ID", default=10)
PASSWORD_FAILURES_PER_ADDRESS = env.int("PASSWORD_FAILURES_PER_ADDRESS", default=50)
SIGNIN_PENDING_SECONDS = env.int("SIGNIN_PENDING_SECONDS", default=600)
REAUTH_MAX_AGE_SECONDS = env.int("REAUTH_MAX_AGE_SECONDS", default=300)

PENDING_REGISTRATION_TTL = timedelta(hours=env.int("PENDING_REGISTRATION_TTL_HOURS", default=24))
ACTIVATION_LINK_TTL = timedelta(hours=env.int("ACTIVATION_LINK_TTL_HOURS", default=24))
ACTIVATION_LINK_MAX_PASSWORD_ATTEMPTS = 5
ACTIVATION_LINK_RESEND_SECONDS = 60

# --- Security keys (WebAuthn) ------------------------------------------------------------
# The relying party is pinned here, never taken from the Host header: the RP ID is the domain the keys are
# bound to (SITE_URL's host by default; an IP address cannot be one, so develop on http://localhost:8000),
# and an assertion is accepted only from these exact origins.
WEBAUTHN_RP_ID = env("WEBAUTHN_RP_ID", default=urlsplit(SITE_URL).hostname or "localhost")
WEBAUTHN_RP_NAME = env("WEBAUTHN_RP_NAME", default=INSTITUTION_NAME)
WEBAUTHN_ORIGINS = [origin.rstrip("/") for origin in env.list("WEBAUTHN_ORIGINS", default=[SITE_URL])]
WEBAUTHN_CHALLENGE_TTL = timedelta(seconds=env.int("WEBAUTHN_CHALLENGE_TTL_SECONDS", default=300))
# Passwordless challenges anyone may ask for within one WEBAUTHN_CHALLENGE_TTL. The sign-in page's autofill asks on
# every load; a session is given its open challenge again, so a person counts in their own session, against a small
# limit. Per client address the ceiling is much larger: a campus behind one NAT address loading the sign-in page
# about 15 times a second at 9 am is not refused, and a flood of newcomers from one address still writes a bounded
# number of rows.
PASSWORDLESS_CHALLENGES_PER_SESSION = env.int("PASSWORDLESS_CHALLENGES_PER_SESSION", default=10)
PASSWORDLESS_CHALLENGES_PER_ADDRESS = env.int("PASSWORDLESS_CHALLENGES_PER_ADDRESS", default=5000)

PHONENUMBER_DEFAULT_REGION = env("PHONE_DEFAULT_REGION", default="US")
PHONENUMBER_DB_FORMAT = "E164"

# --- Texts and calls -----------------------------------------------------------------
# Countries (ISO codes) we text or call; everything else is refused before it is queued (SMS-07).
PHONE_ALLOWED_REGIONS = env.list("PHONE_ALLOWED_REGIONS", default=[PHONENUMBER_DEFAULT_REGION])
PHONE_CODE_TTL = timedelta(minutes=env.int("PHONE_CODE_TTL_MINUTES", default=10))
PHONE_CODE_MAX_ATTEMPTS = env.int("PHONE_CODE_MAX_ATTEMPTS", default=5)
PHONE_RESEND_SECONDS = env.int("PHONE_RESEND_SECONDS", default=60)
PHONE_SENDS_PER_NUMBER_PER_10_MINUTES = env.int("PHONE_SENDS_PER_NUMBER_PER_10_MINUTES", default=3)
PHONE_DAILY_CAP_PER_PERSON = env.int("PHONE_DAILY_CAP_PER_PERSON", default=10)
PHONE_DAILY_CAP_PER_NUMBER = env.int("PHONE_DAILY_CAP_PER_NUMBER", default=10)
# "devices.gateways.OutboxOnlyGateway" sends nothing (development); "devices.gateways.twilio_from_settings" is Twilio.
PHONE_GATEWAY = env("PHONE_GATEWAY", default="devices.gateways.OutboxOnlyGateway")
TWILIO_ACCOUNT_SID = env("TWILIO_ACCOUNT_SID", default="")
TWILIO_AUTH_TOKEN = env("TWILIO_AUTH_TOKEN", default="")
TWILIO_FROM_NUMBER = env("TWILIO_FROM_NUMBER", default="")
TWILIO_API_BASE_URL = env("TWILIO_API_BASE_URL", default="https://api.twilio.com")
TWILIO_TIMEOUT_SECONDS = env.float("TWILIO_TIMEOUT_SECONDS", default=10.0)

# --- The outbox (REL-02..04) ---------------------------------------------------------------
OUTBOX_MAX_ATTEMPTS = env.int("OUTBOX_MAX_ATTEMPTS", default=5)
OUTBOX_BACKOFF_BASE_SECONDS = env.float("OUTBOX_BACKOFF_BASE_SECONDS", default=2.0)
OUTBOX_BACKOFF_MAX_SECONDS = env.float("OUTBOX_BACKOFF_MAX_SECONDS", default=60.0)
# A message claimed longer ago than this by a worker that died is taken again by the sweep.
OUTBOX_SENDING_LEASE_SECONDS = env.int("OUTBOX_SENDING_LEASE_SECONDS", default=120)
# Keeping times (devices/retention.py): finished outbox rows (the body is already erased; the address is not), and
# phone codes (never less than the day the send limits look back).
OUTBOX_RETENTION_DAYS = env.int("OUTBOX_RETENTION_DAYS", default=90)
PHONE_CODE_RETENTION_DAYS = env.int("PHONE_CODE_RETENTION_DAYS", default=30)
# Statements run through identity.sql (the audit append, the outbox's claim and outcome, the VPN check's first read
# and remembered signature, the rows every sign-in writes) are prepared once per database connection. Turn off behind
# a connection pooler in transaction mode that does not keep prepared statements (PgBouncer before 1.21).
# OUTBOX_PREPARED_STATEMENTS, an older name for it, is read when DB_PREPARED_STATEMENTS is unset.
DB_PREPARED_STATEMENTS = env.bool(
    "DB_PREPARED_STATEMENTS", default=env.bool("OUTBOX_PREPARED_STATEMENTS", default=True)
)
# psycopg's prepare_threshold stays at Django's None: identity.sql sets it around its own statements only, so no
# other query's text is counted and kept by the connection (a bulk INSERT's, with its values in it, is megabytes).
# The sweep leaves freshly queued messages to their own dispatch for this long.
OUTBOX_SWEEP_GRACE_SECONDS = env.int("OUTBOX_SWEEP_GRACE_SECONDS", default=30)

# Logs (docs/operations.md, "Logs"): plain text, or one JSON object a line (LOG_FORMAT=json). Every record carries
# its request's id; phone numbers and secret-looking values are masked (OTP-09); a repeated warning is kept to
# LOG_REPEAT_LIMIT lines per LOG_REPEAT_SECONDS.
LOG_FORMAT = env("LOG_FORMAT", default="plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured("LOG_FORMAT is plain or json")
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(request_id)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
            # django.request's request object would print its path and query string, which may hold a token.
            "reserved_attrs": [*RESERVED_ATTRS, "request", "server_time"],
        },
    },
    "filters": {
        "request_id": {"()": "config.log_filters.RequestId"},
        "repeat_limit": {
            "()": "config.log_filters.RepeatLimit",
            "limit": env.int("LOG_REPEAT_LIMIT", default=10),
            "seconds": env.float("LOG_REPEAT_SECONDS", default=60.0),
        },
        "mask_secrets": {"()": "config.log_filters.MaskSecrets"},
        "route_not_path": {"()": "config.log_filters.RouteNotPath"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request_id", "repeat_limit", "mask_secrets"],
        }
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {"django.request": {"filters": ["route_not_path"]}},
}

# --- Health probes (config/health.py, docs/operations.md) ------------------------------------------------
# /readyz answers 503 once the oldest email, text or call still queued has waited longer than this.
READY_OUTBOX_MAX_AGE_SECONDS = env.int("READY_OUTBOX_MAX_AGE_SECONDS", default=600)
# Clients (by identity.web.client_ip) told which readiness check failed and why; everyone else gets one word.
HEALTH_DETAIL_NETWORKS = env.list("HEALTH_DETAIL_NETWORKS", default=["127.0.0.0/8", "::1/128"])
for _network in HEALTH_DETAIL_NETWORKS:
    ipaddress.ip_network(_network)  # a typo stops the start, rather than hiding the details at the first probe
# django.request logs every 5xx answer as an error: a 503 is /readyz's answer, asked every few seconds, not an error.
LOGGING.setdefault("filters", {})["quiet_probes"] = {"()": "config.log_filters.QuietProbes"}
LOGGING.setdefault("loggers", {}).setdefault("django.request", {}).setdefault("filters", []).append("quiet_probes")

# --- Metrics (identity/metrics.py; docs/operations.md, "Metrics") ------------------------------------------
# Who may read /metrics (and the RADIUS server's or a Celery worker's metrics port): an address in these networks
# (the client's address by TRUSTED_PROXY_COUNT's rule), or a request with "Authorization: Bearer METRICS_TOKEN".
METRICS_NETWORKS = env.list("METRICS_NETWORKS", default=["127.0.0.1/32", "::1/128"])
METRICS_TOKEN = env("METRICS_TOKEN", default="")
# The RADIUS server and the Celery worker serve no web site: they serve their metrics on a port of their own when
# this is set (0: off), on METRICS_HOST.
METRICS_PORT = env.int("METRICS_PORT", default=0)
METRICS_HOST = env("METRICS_HOST", default="127.0.0.1")
# Off only to measure what counting costs (bench/vpn.py); production leaves it on.
METRICS_ENABLED = env.bool("METRICS_ENABLED", default=True)

# --- Error pages -----------------------------------------------------------------------------
# A refused form (CSRF) gets the site's own page with a way back, not Django's bare one (config/error_pages.py).
CSRF_FAILURE_VIEW = "config.error_pages.csrf_failure"

# --- The VPN gate (vpn/) ----------------------------------------------------------------------
# How far a signed Auth API request's Date may be from our clock (API-02).
VPN_SIGNATURE_MAX_SKEW_SECONDS = env.int("VPN_SIGNATURE_MAX_SKEW_SECONDS", default=300)
# Every VPN check names its integration: each process reads the row at most this often (0: on every request). A
# disabled integration or a rotated secret applies in the other processes within this many seconds.
VPN_INTEGRATION_CACHE_SECONDS = env.int("VPN_INTEGRATION_CACHE_SECONDS", default=5)
# How long an Access-Challenge State can be answered (API-05: at most 2 minutes).
RADIUS_CHALLENGE_TTL_SECONDS = env.int("RADIUS_CHALLENGE_TTL_SECONDS", default=120)
# "password": RADIUS checks the person's password and a code; "code_only": the VPN has checked the password against
# the directory already and sends only the code (as Duo's proxy does), so the password hasher stays off this path.
RADIUS_PASSWORD_MODE = env("RADIUS_PASSWORD_MODE", default="password")
# Every minute: at 9 am the Auth API remembers a few hundred signatures a second (API-02), kept for 10 minutes.
CELERY_BEAT_SCHEDULE["vpn-forget-spent-state"] = {
    "task": "vpn.tasks.forget_spent_state",
    "schedule": timedelta(minutes=1),
}

# --- Auditors' reports and the audit log's checkpoints (AC-11) ------------------------------
# Signs the checkpoints of the audit chain that leave the database (a log line every six hours, the weekly
# auditor email). A secret of its own, never derived from SECRET_KEY or any other setting: whoever holds the app's
# other secrets must still not be able to sign a checkpoint for a rewritten log. Development signs with a fixed
# key; the deploy check identity.E107 requires a real one (AC-11).
DEV_AUDIT_CHECKPOINT_KEY = "dev-only-audit-checkpoint-key-never-use-in-production"
AUDIT_CHECKPOINT_KEY = env("AUDIT_CHECKPOINT_KEY", default=DEV_AUDIT_CHECKPOINT_KEY)
# The database role the app serves as (AC-10). Set it for `migrate`, run as the owner role: after migrating, the owner
# grants this role read and write on the tables but only read and append on the audit log (identity/db_roles.py).
DATABASE_APP_ROLE = env("DATABASE_APP_ROLE", default="")
CELERY_BEAT_SCHEDULE["audit-checkpoint"] = {
    "task": "reports.tasks.export_audit_checkpoint",
    "schedule": timedelta(hours=6),
}

# --- Help desk -----------------------------------------------------------------------------------------
# How long a recorded identity check of a caller lets the same agent act for that person (BND-07).
IDENTITY_CHECK_VALID_MINUTES = env.int("IDENTITY_CHECK_VALID_MINUTES", default=30)
# How long a four-eyes request waits for a second agent (BND-08), and how recent an email change must be for a
# recovery link to that address to need one (AC-04).
APPROVAL_REQUEST_TTL_HOURS = env.int("APPROVAL_REQUEST_TTL_HOURS", default=24)
RECENT_EMAIL_CHANGE_HOURS = env.int("RECENT_EMAIL_CHANGE_HOURS", default=24)

# Phishing-resistant sign-in for staff (WA-05): from this date (YYYY-MM-DD, the start of the day in TIME_ZONE) the
# admin lets in help-desk agents, auditors and superusers only when they signed in with a security key or passkey;
# before it they are reminded in the admin. Empty: not enforced (identity.I108 says so under check --deploy).
STAFF_PHISHING_RESISTANT_FROM = env("STAFF_PHISHING_RESISTANT_FROM", default="")

# Sessions in the database with their person and device on each row, so a lost device ends every session verified
# with it (BND-05; check identity.E004).
SESSION_ENGINE = "identity.session_store"

# Exports of more rows than this are written in the background by a worker into Django's default storage (MEDIA_ROOT
# unless STORAGES says otherwise; never served as static files), and downloadable once, for this long.
REPORTS_BACKGROUND_EXPORT_ROWS = env.int("REPORTS_BACKGROUND_EXPORT_ROWS", default=5000)
REPORTS_EXPORT_LINK_SECONDS = env.int("REPORTS_EXPORT_LINK_SECONDS", default=24 * 3600)
# A background export's own time limit (a million rows of XLSX take minutes, far past the outbox's limit the other
# tasks keep): stopped then (soft limit; the hard one a minute later) and recorded failed. The hourly clean-up fails a
# job still "writing" past the hard limit (its worker died) or still waiting for a worker after REPORTS_EXPORT_LINK_SECONDS.
REPORTS_EXPORT_TIME_LIMIT = env.int("REPORTS_EXPORT_TIME_LIMIT", default=1800)
MEDIA_ROOT = env("MEDIA_ROOT", default=str(BASE_DIR / "media"))
CELERY_BEAT_SCHEDULE["weekly-auditor-summary"] = {
    "task": "reports.tasks.send_weekly_summary",
    "schedule": timedelta(weeks=1),
}
CELERY_BEAT_SCHEDULE["erase-expired-exports"] = {
    "task": "reports.tasks.erase_expired_exports",
    "schedule": timedelta(hours=1),
}

# --- People from the directory (identity/directory/, docs/directory.md) ---------------------------------------
# A joiner gets an email with the enrollment address (through the outbox).
DIRECTORY_WELCOME_EMAIL = env.bool("DIRECTORY_WELCOME_EMAIL", default=False)
# A deactivated person's devices are kept this long (re-enabled within it, they get them back), then retired.
DIRECTORY_RETAIN_DAYS = env.int("DIRECTORY_RETAIN_DAYS", default=30)
# The roles a directory may grant or remove (DIR-04); only ever a subset of the staff roles "Help desk" and "Auditor".
DIRECTORY_ROLES = env.list("DIRECTORY_ROLES", default=["Help desk", "Auditor"])
CELERY_BEAT_SCHEDULE["retire-devices-of-leavers"] = {
    "task": "identity.directory.tasks.retire_devices_of_leavers",
    "schedule": timedelta(days=1),
}
# The LDAP sync (docs/directory.md): every DIRECTORY_SYNC_MINUTES when a directory is configured (0: never, the
# directory only checks passwords, as for people a SCIM client provisions from it). A run that would
# deactivate more than DIRECTORY_MAX_DEACTIVATIONS people, or more than DIRECTORY_MAX_DEACTIVATION_PERCENT of the
# directory's people here, is held until a superuser applies or discards it (DIR-03).
DIRECTORY_SYNC_MINUTES = env.int("DIRECTORY_SYNC_MINUTES", default=30)
DIRECTORY_MAX_DEACTIVATIONS = env.int("DIRECTORY_MAX_DEACTIVATIONS", default=500)
DIRECTORY_MAX_DEACTIVATION_PERCENT = env.float("DIRECTORY_MAX_DEACTIVATION_PERCENT", default=10.0)
# The directory's tasks (a full sync, a held run applied, the leavers' devices retired) may run this long, not the
# outbox's minute: a first sync of 100,000 people takes a minute or more. A run stopped by it is recorded as failed.
DIRECTORY_SYNC_TIME_LIMIT = env.int("DIRECTORY_SYNC_TIME_LIMIT", default=3600)
if LDAP_SERVER_URIS and DIRECTORY_SYNC_MINUTES > 0:
    CELERY_BEAT_SCHEDULE["sync-directory"] = {
        "task": "identity.directory.tasks.sync_directory",
        "schedule": timedelta(minutes=DIRECTORY_SYNC_MINUTES),
    }

# --- Enrollment campaigns (campaigns/, docs/campaigns.md) ----------------------------------------------------
# The cohorts' rows follow the directory (joiners, movers, leavers) this often; the VPN and the web read each
# campaign's rule when they ask, so nobody waits for it.
CELERY_BEAT_SCHEDULE["refresh-campaign-members"] = {
    "task": "campaigns.tasks.refresh_open_campaigns",
    "schedule": timedelta(hours=1),
}

# --- Where sign-in hands over to the devices app (identity names no devices page or template) -------------------
# A person with no device yet is signed in only to set one up, here.
FIRST_FACTOR_SETUP_URL = "devices:start"
# The "use your security key" part of the second-factor page.
SIGN_IN_KEY_TEMPLATE = "devices/keys/use_key.html"
# The "sign in with a passkey" part of the sign-in page (no ID, no password).
SIGN_IN_PASSKEY_TEMPLATE = "devices/keys/passwordless.html"

# --- SCIM provisioning (identity/directory/scim/) ----------------------------------------------
# The largest SCIM request body we read; a larger one is answered 413 before it is read (Entra ID sends group
# memberships in batches well under this).
SCIM_MAX_BODY_BYTES = env.int("SCIM_MAX_BODY_BYTES", default=1024 * 1024)
# A SCIM Group change (PUT, PATCH or POST) that would take more than this many people out of a group at once (their
# role or VPN access) is refused with 409 and audited, not applied (DIR-03): a cloud directory's mistake must not
# revoke a whole group. Entra ID and Okta remove members a few at a time; a deliberate mass removal goes in batches.
SCIM_MAX_GROUP_REMOVALS = env.int("SCIM_MAX_GROUP_REMOVALS", default=100)
# A SCIM client that has deactivated this many people (active: false, DELETE) within an hour is refused further
# deactivations (429, audited) until the hour has passed or a superuser lifts it (DIR-03); 0: no limit.
SCIM_MAX_DEACTIVATIONS_PER_HOUR = env.int("SCIM_MAX_DEACTIVATIONS_PER_HOUR", default=50)

# --- Campaigns: reminders, nudges, the owners' weekly summary ----------------------------------------------------
# People a batch queues at once, and how many of the campaigns' messages may wait in the outbox's bulk lanes before a
# batch waits (REMINDER_BACKLOG_WAIT_SECONDS) for them to go: the outbox, its sweep and Redis stay small however
# large the cohort.
REMINDER_BATCH_SIZE = env.int("REMINDER_BATCH_SIZE", default=1000)
REMINDER_BACKLOG = env.int("REMINDER_BACKLOG", default=5000)
REMINDER_BACKLOG_WAIT_SECONDS = env.int("REMINDER_BACKLOG_WAIT_SECONDS", default=30)
CELERY_BEAT_SCHEDULE["plan-campaign-reminders"] = {
    "task": "campaigns.reminder_tasks.plan_reminders",
    "schedule": timedelta(minutes=env.int("REMINDER_PLAN_EVERY_MINUTES", default=10)),
}
CELERY_BEAT_SCHEDULE["campaign-weekly-summaries"] = {
    "task": "campaigns.reminder_tasks.send_weekly_summaries",
    "schedule": timedelta(weeks=1),
}
