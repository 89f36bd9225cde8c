"""Who may use the API and the admin.

An endpoint that sends mail without authentication is an open relay, and an open admin leaks
every message, so both are closed by default:

- The API requires ``Authorization: Bearer <key>`` (or ``X-API-Key: <key>``) with a key from
  ``API_KEYS``. With no keys configured it runs in *protected mode*, like Redis: it serves
  clients on the loopback interface only.
- The admin requires HTTP Basic with ``ADMIN_USERNAME``/``ADMIN_PASSWORD``; with no password
  configured it serves loopback clients only.

Keys are compared in constant time and never logged.
"""

import hmac
import ipaddress
import logging

from flask import current_app, request

from .errors import ApiError

log = logging.getLogger("mail_service.auth")

# Headers a reverse proxy adds: a request carrying one came from elsewhere, even if the proxy
# itself connects from loopback, so protected mode must not trust it.
PROXY_HEADERS = ("X-Forwarded-For", "X-Real-IP", "Forwarded")


def is_loopback_request():
    """Whether the client connected over loopback and not through a proxy."""
    if any(header in request.headers for header in PROXY_HEADERS):
        return False
    try:
        address = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return False
    # A dual-stack server sees a local IPv4 client as ::ffff:127.0.0.1, which Python 3.11
    # does not count as loopback.
    return (getattr(address, "ipv4_mapped", None) or address).is_loopback


def matches_any(candidate, secrets):
    """Constant-time comparison of ``candidate`` against each configured secret."""
    found = False
    for secret in secrets:
        found |= hmac.compare_digest(candidate.encode(), secret.encode())
    return found


def presented_api_key():
    """The key a client sent, from ``Authorization: Bearer`` or ``X-API-Key``."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get("X-API-Key", "").strip() or None


def require_api_key():
    """Raise a 401 ``ApiError`` unless the request may use the API."""
    keys = current_app.config["API_KEYS"]
    if not keys:
        if is_loopback_request():
            return
        raise ApiError(401, "API_KEYS is not set, so the API serves loopback clients only",
                       [{"field": "Authorization", "message": "Not allowed from this address"}])
    key = presented_api_key()
    if key is None:
        raise ApiError(401, "An API key is required",
                       [{"field": "Authorization", "message": "Send 'Authorization: Bearer "
                         "<key>' or 'X-API-Key: <key>'"}],
                       headers={"WWW-Authenticate": 'Bearer realm="mail"'})
    if not matches_any(key, keys):
        raise ApiError(401, "The API key is not valid",
                       [{"field": "Authorization", "message": "Unknown API key"}],
                       headers={"WWW-Authenticate": 'Bearer realm="mail", error="invalid_token"'})


def admin_allowed():
    """Whether the current request may use the admin."""
    password = current_app.config.get("ADMIN_PASSWORD") or ""
    if not password:
        return is_loopback_request()
    auth = request.authorization
    if auth is None or auth.type != "basic":
        return False
    username_ok = hmac.compare_digest((auth.username or "").encode(),
                                      current_app.config["ADMIN_USERNAME"].encode())
    password_ok = hmac.compare_digest((auth.password or "").encode(), password.encode())
    return username_ok and password_ok


def warn_about_open_modes(app):
    """Log at start which protected modes are in force."""
    if not app.config["API_KEYS"]:
        log.warning("API_KEYS is not set: the API serves loopback clients only (protected mode)")
    if not app.config.get("ADMIN_PASSWORD"):
        log.warning("ADMIN_PASSWORD is not set: the admin serves loopback clients only")
