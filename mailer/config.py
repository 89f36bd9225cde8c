"""Configuration: defaults, the settings file, then environment variables.

Both processes (the API and the worker) read their settings the same way, in this order, later
sources winning:

1. ``DEFAULTS`` below;
2. the Flask config file named by ``--config`` or ``MAIL_SERVICE_CONFIG`` (``settings.cfg``);
3. an environment variable of the same name as a setting;
4. for tests, a dict of overrides.

Then every setting is typed once, to its default's type (a list setting such as ``PROVIDERS``
becomes a tuple), so no caller casts a setting again.

Secrets (``SECRET_KEY``, ``API_KEYS``, ``METRICS_TOKEN``, provider and webhook keys, the admin
password) have no defaults: they come from the environment or an untracked settings file, never
from the repository.
"""

import ipaddress
import os
import secrets

from flask import Config

DEFAULTS = {
    # The role and database of scripts/db.sql; libpq reads the password from PGPASSWORD or
    # ~/.pgpass when the URL has none.
    "DATABASE_URL": "postgresql://mail@127.0.0.1:5432/mail",
    "LISTEN_DATABASE_URL": "",  # the worker's LISTEN, straight to PostgreSQL (behind PgBouncer)
    "SECRET_KEY": "",
    "API_KEYS": (),  # comma separated; empty = protected mode (loopback clients only)
    "ADMIN_USERNAME": "admin",
    "ADMIN_PASSWORD": "",  # empty = the admin serves loopback clients only
    "MAX_CONTENT_LENGTH": 10 * 1024 * 1024,  # bytes
    "MAX_RECIPIENTS": 50,  # per field (to, cc, bcc)
    "PROVIDERS": ("mailgun", "sendgrid"),  # comma separated, tried in this order
    "PROVIDER_STRATEGY": "failover",  # failover: PROVIDERS order; weighted: by PROVIDER_WEIGHTS
    "PROVIDER_WEIGHTS": {},  # e.g. "mailgun:3,sendgrid:1"; a provider not named weighs 1
    "PROVIDER_RATE_LIMITS": {},  # mails per second per provider, all workers together
    # Providers of their own for some recipient domains (mailer/worker/routes.py), e.g.
    # "outlook.com hotmail.com=postmark,ses; gmail.com=ses,mailgun"; empty = PROVIDERS for all.
    "PROVIDER_ROUTES": "",
    "MAILGUN_API_KEY": "",
    "MAILGUN_DOMAIN": "",
    "MAILGUN_BASE_URL": "https://api.mailgun.net",  # EU: https://api.eu.mailgun.net
    "SENDGRID_API_KEY": "",
    "SENDGRID_BASE_URL": "https://api.sendgrid.com",  # EU: https://api.eu.sendgrid.com
    "SES_REGION": "",  # e.g. eu-west-1
    "SES_ACCESS_KEY_ID": "",
    "SES_SECRET_ACCESS_KEY": "",
    "SES_BASE_URL": "",  # empty = https://email.{SES_REGION}.amazonaws.com
    "SES_CONFIGURATION_SET": "",  # optional: the configuration set whose events go to SNS
    "POSTMARK_SERVER_TOKEN": "",
    "POSTMARK_BASE_URL": "https://api.postmarkapp.com",
    "POSTMARK_MESSAGE_STREAM": "outbound",  # the server's transactional stream by default
    "PROVIDER_TIMEOUT": 10.0,  # seconds, per provider call
    # The domain of the Message-ID every provider that lets us set it sends, <mail id@domain>,
    # so that a reply's In-Reply-To finds its mail; empty: the sender's domain.
    "MESSAGE_ID_DOMAIN": "",
    # Any SMTP relay (providers/smtp.py): STARTTLS on 587 by default; tls: TLS from the start
    # (465); none: clear text, to a loopback host only.
    "SMTP_HOST": "",
    "SMTP_PORT": 587,
    "SMTP_USERNAME": "",
    "SMTP_PASSWORD": "",
    "SMTP_SECURITY": "starttls",  # starttls, tls or none
    "SMTP_TIMEOUT": 10.0,  # seconds, per SMTP command (the connection, each reply)
    "SMTP_CA_FILE": "",  # a CA bundle for a relay's private certificate; empty: the system's
    "SMTP_MESSAGE_ID_DOMAIN": "",  # deprecated: MESSAGE_ID_DOMAIN, read when that is empty
    # The SMTP door (smtp_service.py): applications submit mail over SMTP with an API key.
    "SMTP_LISTEN": "127.0.0.1:2525",  # host:port of the SMTP submission server
    "SMTP_TLS_CERT": "",  # PEM certificate (chain) for STARTTLS; needed beyond protected mode
    "SMTP_TLS_KEY": "",  # PEM private key of SMTP_TLS_CERT
    "SMTP_MAX_MESSAGE_BYTES": 25 * 1024 * 1024,  # bytes, announced in EHLO SIZE
    "SMTP_MAX_RECIPIENTS": 50,  # envelope recipients per message
    "SMTP_HEALTH_PORT": 0,  # the SMTP process's /readyz and /metrics (0 = off), on loopback
    # Worker processes that mail_service.py runs under its supervisor (--processes wins);
    # 0 or empty = one per core.
    "WORKER_PROCESSES": 0,
    "WORKER_CONCURRENCY": 16,  # sends in flight per worker process
    "WORKER_BATCH_SIZE": 100,  # most mails claimed by one query
    "POLL_INTERVAL": 1.0,  # seconds between polls when the queue is empty
    "LEASE_SECONDS": 0.0,  # 0 = derived: long enough for every provider to time out
    "MAX_ATTEMPTS": 8,  # deliveries tried before a mail is failed
    "MAX_AGE": 86400.0,  # seconds after creation when retrying stops
    "RETRY_BASE": 30.0,  # seconds, first retry delay (doubles each attempt)
    "RETRY_CAP": 3600.0,  # seconds, longest retry delay
    "CIRCUIT_FAILURE_THRESHOLD": 5,  # consecutive transient failures that open a circuit
    "CIRCUIT_COOLDOWN": 30.0,  # seconds an open circuit waits before one probe
    "CIRCUIT_COOLDOWN_CAP": 600.0,  # seconds, longest cool-down while a provider keeps failing
    # The guard: a provider whose mail to a recipient domain fails too often goes last for it.
    "DELIVERABILITY_WINDOW": 3600.0,  # seconds of delivery outcomes looked at
    "DELIVERABILITY_MIN_EVENTS": 50,  # outcomes in the window before a pair can be steered
    "DELIVERABILITY_MAX_FAILURE_RATE": 0.2,  # share bounced+deferred+complained; 1 = guard off
    "DB_CONNECT_TIMEOUT": 3,  # seconds to wait for PostgreSQL before answering 503
    "DB_STATEMENT_TIMEOUT": 5000,  # milliseconds, API statements on PostgreSQL
    # Health and metrics: /metrics takes this bearer token (as well as an API key); empty:
    # /metrics is protected like the API. A worker serves its metrics on this port (0 = off).
    "METRICS_TOKEN": "",
    "WORKER_METRICS_PORT": 0,
    "WORKER_METRICS_ADDRESS": "127.0.0.1",  # another address needs METRICS_TOKEN
    "RETENTION_DAYS": 30,  # finished mail older than this is purged by scripts/purge
    "AUDIT_RETENTION_DAYS": 365,  # audit log rows older than this are purged by scripts/purge
    "LOG_FORMAT": "text",  # text (human-readable) or json (one object per line; telemetry/logs.py)
    "MAX_ATTACHMENT_BYTES": 10 * 1024 * 1024,  # decoded attachments per mail
    "MAX_ATTACHMENTS": 100,  # files per mail
    "MAX_SCHEDULE_DAYS": 30,  # how far ahead send_at may be
    "MAX_EVENTS_SHOWN": 100,  # a mail's latest events in GET /mail/<id> and the admin's page
    "IDEMPOTENCY_TTL": 86400.0,  # seconds an Idempotency-Key is kept
    "MAX_VARIABLES_BYTES": 64 * 1024,  # a templated mail's variables, as JSON
    "MAX_RENDERED_BYTES": 1024 * 1024,  # a template's rendering, its fields together (UTF-8)
    # Delivery events in: each provider's webhook endpoint answers 404 until its key is set.
    "MAILGUN_WEBHOOK_SIGNING_KEY": "",  # Mailgun: Sending > Webhooks > HTTP webhook signing key
    "SENDGRID_WEBHOOK_PUBLIC_KEY": "",  # SendGrid: Mail Settings > Event Webhook > public key
    "SES_SNS_TOPIC_ARNS": (),  # comma separated: the SNS topics whose SES events are taken
    # Where an SNS message's signing certificate and subscription URL may be (regex).
    "SNS_URL_PATTERN": r"^https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/",
    "POSTMARK_WEBHOOK_USERNAME": "",  # Postmark: the basic auth in the webhook's URL ...
    "POSTMARK_WEBHOOK_PASSWORD": "",  # ... both needed, or /webhooks/postmark is off
    # Inbound mail (docs/inbound.md): Mailgun's and Postmark's ways in take the keys of their
    # delivery webhooks above; SendGrid's and the SMTP door's are off until these are set.
    "SENDGRID_INBOUND_USERNAME": "",  # SendGrid: the basic auth in the Inbound Parse URL ...
    "SENDGRID_INBOUND_PASSWORD": "",  # ... both needed, or /inbound/sendgrid is off
    # Comma separated: the SMTP door takes mail for these domains without AUTH, as their MX.
    "INBOUND_DOMAINS": (),
    "WEBHOOK_MAX_AGE": 86400.0,  # seconds: oldest signed provider event taken; client webhooks
    # retried this long
    "SUPPRESSION_DAYS": 30,  # days a bounced address stays suppressed
    # Events out: signed client webhooks (Standard Webhooks), off while WEBHOOK_URL is empty.
    "WEBHOOK_URL": "",
    "WEBHOOK_EVENTS": (),  # comma separated, e.g. mail.delivered,mail.bounced; empty = all
    "WEBHOOK_SECRET": "",  # whsec_ + base64 of the key (docs/events.md: how to make one)
    "WEBHOOK_TIMEOUT": 5.0,  # seconds per client webhook call (connect, and again for the answer)
    "WEBHOOK_CONCURRENCY": 16,  # client webhooks in flight per worker process
    "WEBHOOK_ALLOW_HTTP": False,  # tenants' webhook endpoints may be http (development only)
    "WEBHOOK_ALLOW_PRIVATE": False,  # ... and on loopback, link-local or private addresses
    "AUTH_FAILURE_LIMIT": 10,  # wrong API keys or admin passwords from one address ...
    "AUTH_FAILURE_WINDOW": 60.0,  # ... within this many seconds ...
    "AUTH_BLOCK_SECONDS": 300.0,  # ... get 429s for this many seconds
    # Addresses or networks (comma separated, e.g. "127.0.0.1,10.0.0.0/8") of reverse proxies
    # whose X-Forwarded-For names the client; empty = believe nobody's.
    "TRUSTED_PROXIES": (),
}

CHOICES = {"LOG_FORMAT": ("text", "json")}  # settings that take one of a few words
NETWORK_LISTS = ("TRUSTED_PROXIES",)  # settings that list addresses or networks
BLANK_IS_ZERO = ("WORKER_PROCESSES",)  # counts whose 0 means "automatic": empty says it too

CONFIG_ENV = "MAIL_SERVICE_CONFIG"


def load_settings(config, path=None, environ=None, overrides=None):
    """Fill a Flask ``config`` from defaults, the settings file, the environment, overrides."""
    environ = os.environ if environ is None else environ
    for name, value in DEFAULTS.items():
        if config.get(name) is None:  # Flask presets some (SECRET_KEY, ...) to None
            config[name] = value
    path = path or environ.get(CONFIG_ENV)
    if path:
        config.from_pyfile(os.path.abspath(path))
    for name in list(config):
        if name.isupper() and name in environ:
            config[name] = environ[name]
    config.update(overrides or {})
    for name in BLANK_IS_ZERO:
        if isinstance(config[name], str) and not config[name].strip():
            config[name] = 0
    for name, default in DEFAULTS.items():
        try:
            config[name] = convert(config[name], default)
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"setting {name}: {config[name]!r} is not a {type(default).__name__}"
            ) from err
    for name, allowed in CHOICES.items():
        if config[name] not in allowed:
            raise ValueError(f"setting {name}: {config[name]!r} is not one of {', '.join(allowed)}")
    for name in NETWORK_LISTS:
        config[name] = networks(name, config[name])
    return config


def load_config(path=None, overrides=None, environ=None):
    """The settings of a process outside Flask (the worker, scripts), read like the API's."""
    return load_settings(Config("."), path, environ, overrides)


def convert(value, default):
    """``value`` (a string from the environment, or a file's value) as the type of ``default``."""
    if isinstance(default, dict):
        return parse_pairs(value)
    if isinstance(default, tuple):
        return tuple(split_list(value))
    if isinstance(default, bool):
        if isinstance(value, str):
            return value.strip().lower() in ("1", "true", "yes", "on")
        return bool(value)
    if isinstance(default, int):
        return int(value)
    if isinstance(default, float):
        return float(value)
    return "" if value is None else str(value)


def parse_pairs(value):
    """``"mailgun:3,sendgrid:1"`` (or a dict) as ``{"mailgun": 3.0, "sendgrid": 1.0}``."""
    if isinstance(value, dict):
        return {str(name): float(number) for name, number in value.items()}
    pairs = {}
    for part in split_list(value):
        name, sep, number = part.partition(":")
        if not sep or not name.strip():
            raise ValueError(f"{part!r} is not name:number")
        pairs[name.strip()] = float(number)
    return pairs


def networks(name, parts):
    """The addresses and networks of setting ``name`` as ``ipaddress`` networks (an address is
    a network of one); ValueError naming the setting for a part that is neither."""
    found = []
    for part in parts:
        try:
            found.append(ipaddress.ip_network(str(part), strict=False))
        except ValueError:
            raise ValueError(
                f"setting {name}: {str(part)!r} is not an IP address or network"
            ) from None
    return tuple(found)


def split_list(value):
    """Split a comma-separated setting into its non-empty, stripped parts."""
    if isinstance(value, list | tuple):
        return [str(item).strip() for item in value if str(item).strip()]
    return [part.strip() for part in str(value or "").split(",") if part.strip()]


SECRET_KEY_MISSING = """SECRET_KEY is not set. gunicorn's worker processes must all sign admin
sessions and CSRF tokens with the same key (with one each, admin forms fail with "CSRF token is
missing or expired"). Make one with
    python -c 'import secrets; print(secrets.token_urlsafe(32))'
and set it in the environment (SECRET_KEY=...) or in the settings file."""


def ensure_secret_key(config, logger):
    """Use the configured SECRET_KEY, or a random one per process with a warning.

    A random key keeps sessions and CSRF tokens safe but does not survive a restart, nor is it
    shared between processes: fine for the single-process development server only (gunicorn's
    entry point, wsgi.py, calls ``require_secret_key`` first).
    """
    if not config.get("SECRET_KEY"):
        config["SECRET_KEY"] = secrets.token_urlsafe(32)
        logger.warning("SECRET_KEY is not set: using a random key for this process only")


def require_secret_key(config):
    """Refuse (ValueError, saying how to make one) settings without a SECRET_KEY."""
    if not config.get("SECRET_KEY"):
        raise ValueError(SECRET_KEY_MISSING)
