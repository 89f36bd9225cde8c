"""Who may use the API and the admin.

An endpoint that sends mail without authentication is an open relay, and an open admin leaks
every message, so both are closed by default:

- The API requires ``Authorization: Bearer <key>`` (or ``X-API-Key: <key>``) with a key from
  ``API_KEYS`` or a stored key (``mailer.principals``). With neither configured it runs in
  *protected mode*, like Redis: it serves only a client on this machine that talks to it
  directly (see ``is_local_request``). The first stored key ends protected mode.
- Each endpoint needs a scope of the key (``require_scope``): 403 naming it otherwise.
- The admin requires HTTP Basic with ``ADMIN_USERNAME``/``ADMIN_PASSWORD``; with no password
  configured it serves the same local clients only.

Protected mode is for a developer's machine. Behind any proxy (nginx, HAProxy, an ssh tunnel)
every request arrives from loopback, so a deployment must set ``API_KEYS`` and
``ADMIN_PASSWORD``; the process refuses to start in protected mode on a non-loopback address.

Keys are compared in constant time and never logged; too many wrong ones from one client
get 429s for a while (``throttle``), while its valid ones are still served. The client is the
peer's address or, when the peer is one of ``TRUSTED_PROXIES``, the address that proxy names in
``X-Forwarded-For`` (``client_address``).
"""

import hmac
import ipaddress
import logging
import time

from flask import current_app, g, request

from mailer.api.errors import ApiError
from mailer.api.throttle import FailureThrottle
from mailer.loopback import is_loopback_host
from mailer.principals import (
    KEYS,
    LOCAL,
    PREFIXES,
    authenticate,
    connection,
    stored_key_exists,
)
from mailer.queue import keys as stored_keys

log = logging.getLogger("mail_service.auth")

# Sec-Fetch-Site values of a request the user made on this very site (or typed in).
SAME_SITE_FETCHES = ("same-origin", "none")

STORED_KEYS_CHECKED = "stored_keys_live"  # app.extensions: [any live stored key, until when]
MAX_CLIENT = 100  # characters of a client's address kept (an address has at most 45)
ADMIN_DECIDED = "mail_service.admin_allowed"  # the request's answer of ``admin_allowed``

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


def client_address():
    """The client's address: the peer's, or, while the peer is a trusted proxy, the address
    that proxy got the request from (the last one in ``X-Forwarded-For``, to which each proxy
    appends its peer). What lies left of the first untrusted address, the client wrote.

    Werkzeug's ``ProxyFix`` trusts a number of hops whoever connects; here a hop is believed
    only when it comes from an address of ``TRUSTED_PROXIES``.
    """
    proxies = current_app.config["TRUSTED_PROXIES"]
    address = request.remote_addr or ""
    if not proxies:
        return address
    hops = [
        hop.strip()
        for line in request.headers.getlist("X-Forwarded-For")
        for hop in line.split(",")
        if hop.strip()
    ]
    while hops and is_trusted(address, proxies):
        address = hops.pop()
    return canonical(address)[:MAX_CLIENT]


def is_trusted(address, proxies):
    """Whether ``address`` lies in one of the networks ``proxies``."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    ip = getattr(ip, "ipv4_mapped", None) or ip  # ::ffff:10.0.0.1 is 10.0.0.1
    return any(ip in network for network in proxies)


def canonical(address):
    """An IP address written one way (``2001:DB8::1`` as ``2001:db8::1``); other text as is."""
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return address


def is_cross_site():
    """Whether a browser says this request comes from another site (a page's form or script).

    Any web page open on the developer's machine can post a form to localhost without a CORS
    preflight; browsers mark such requests with ``Origin`` and ``Sec-Fetch-Site``.
    """
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site.lower() not in SAME_SITE_FETCHES:
        return True
    origin = request.headers.get("Origin")
    if origin is None:
        return False
    _, _, rest = origin.partition("://")
    return not rest or not is_loopback_host(rest.partition("/")[0])


def is_local_request():
    """Protected mode's test: a loopback client, naming this machine, not sent by a web page.

    A ``Host`` that is not a loopback name is DNS rebinding (a site whose name now resolves
    to 127.0.0.1); ``Origin``/``Sec-Fetch-Site`` from elsewhere is a cross-site form post.
    """
    return is_loopback_request() and is_loopback_host(request.host or "") and not is_cross_site()


def presented_api_key():
    """The key a client sent, from ``Authorization: Bearer`` or ``X-API-Key``."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get("X-API-Key", "").strip() or None


def current_principal():
    """Whom the current request acts for (``require_api_key`` decided it)."""
    return g.principal


def require_api_key():
    """The ``Principal`` of the request's API key (also kept as ``g.principal``); a 401
    ``ApiError`` unless the request may use the API."""
    principal = g.principal = authenticated_principal()
    return principal


def require_scope(scope):
    """The request's principal, which must hold ``scope``; a 403 naming it otherwise."""
    principal = current_principal()
    if not principal.may(scope):
        raise ApiError(
            403,
            f"This key may not do this: it needs the scope {scope}",
            [{"field": "scope", "message": f"needs {scope}"}],
        )
    return principal


def stored_keys_live():
    """Whether any stored key is live (protected mode ends with the first one); asked of the
    database at most once a second per app, and anew after this app made or revoked a key.

    While the database cannot be asked, the answer is no: without it a request can neither
    read nor store anything, and validation still answers as it always did.
    """
    checked = current_app.extensions.setdefault(STORED_KEYS_CHECKED, [False, 0.0])
    now = time.monotonic()
    if checked[1] <= now:
        live = stored_keys.any_live_if_known(lambda: connection(current_app.config))
        if live is None:
            return False
        checked[:] = [live, now + 1.0]
    return checked[0]


def keys_changed():
    """This process made or revoked a key: ask the database again, not the caches."""
    current_app.extensions.pop(STORED_KEYS_CHECKED, None)
    KEYS.forget()


def in_protected_mode_now():
    """Whether the API serves local clients without a key: no ``API_KEYS``, no stored key."""
    return not current_app.config["API_KEYS"] and not stored_keys_live()


def authenticated_principal():
    """The request's principal: ``LOCAL`` in protected mode, else its key's; 401 otherwise. A
    stored key (``mk_live_``, ``mk_test_``) is its own even in protected mode (which may last a
    second after another process made the first one)."""
    key = presented_api_key()
    if not (key and key.startswith(PREFIXES)) and in_protected_mode_now():
        if is_local_request():
            return LOCAL
        raise ApiError(
            401,
            "API_KEYS is not set, so the API serves local clients only",
            [
                {
                    "field": "Authorization",
                    "message": "Not allowed from this address, host or web page (protected mode)",
                }
            ],
        )
    if key is None:
        raise ApiError(
            401,
            "An API key is required",
            [
                {
                    "field": "Authorization",
                    "message": "Send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
                }
            ],
            headers={"WWW-Authenticate": 'Bearer realm="mail"'},
        )
    principal = authenticate(current_app.config, key)
    if principal is None:
        count_failure()
        raise ApiError(
            401,
            "The API key is not valid",
            [{"field": "Authorization", "message": "Unknown API key"}],
            headers={"WWW-Authenticate": 'Bearer realm="mail", error="invalid_token"'},
        )
    return principal


def admin_allowed():
    """Whether the current request may use the admin (decided once per request: Flask-Admin
    asks again for each view in the menu, and a failure must count once)."""
    environ = request.environ  # the request's own: ``g`` may outlive it (an app context)
    if ADMIN_DECIDED not in environ:
        environ[ADMIN_DECIDED] = check_admin()
    return environ[ADMIN_DECIDED]


def check_admin():
    """Whether the request carries the admin's credentials (or, without a password, is local);
    a wrong password counts as a failure (429 when its client failed too often)."""
    password = current_app.config.get("ADMIN_PASSWORD") or ""
    if not password:
        return is_local_request()
    auth = request.authorization
    if auth is None or auth.type != "basic":
        return False
    username_ok = hmac.compare_digest(
        (auth.username or "").encode(), current_app.config["ADMIN_USERNAME"].encode()
    )
    password_ok = hmac.compare_digest((auth.password or "").encode(), password.encode())
    if not (username_ok and password_ok):
        count_failure()
        return False
    return True


def throttle():
    """This app's throttle of failed authentications."""
    return current_app.extensions["auth_throttle"]


def count_failure():
    """A wrong credential: 429 with Retry-After if its client failed too often lately, else
    counted (and the caller answers 401). Valid credentials never come here."""
    seconds = throttle().failed(client_address())
    if seconds:
        raise ApiError(
            429,
            "Too many failed authentications from this address",
            [{"field": "Authorization", "message": f"Try again in {seconds}s"}],
            headers={"Retry-After": str(seconds)},
        )


def init_app(app):
    """Set up the failed-authentication throttle and say which protected modes are in force."""
    app.extensions["auth_throttle"] = FailureThrottle(
        app.config["AUTH_FAILURE_LIMIT"],
        app.config["AUTH_FAILURE_WINDOW"],
        app.config["AUTH_BLOCK_SECONDS"],
    )
    warn_about_open_modes(app)


def in_protected_mode(config, stored_keys=False):
    """Whether the API or the admin runs without credentials (local clients only):
    ``stored_keys`` says whether the database holds a live stored key."""
    return (not config["API_KEYS"] and not stored_keys) or not config.get("ADMIN_PASSWORD")


def warn_about_open_modes(app):
    """Log once at start which protected modes are in force, and what they are for."""
    missing = [
        name
        for name, value in (
            ("API_KEYS", app.config["API_KEYS"]),
            ("ADMIN_PASSWORD", app.config.get("ADMIN_PASSWORD")),
        )
        if not value
    ]
    if missing:
        log.warning(
            "%s not set: protected mode, serving only clients on this machine. It is "
            "for a developer's machine: any deployment, and anything behind a proxy "
            "or tunnel, needs API_KEYS and ADMIN_PASSWORD",
            " and ".join(missing),
        )


def check_bind(config, host):
    """Refuse to serve in protected mode on an address other machines can reach.

    Behind a proxy every request comes from loopback, so no test of the client's address can
    keep protected mode safe there; only credentials can.
    """
    if is_loopback_host(host) or not in_protected_mode(config):
        return
    if in_protected_mode(config, stored_key_exists(config)):
        raise ValueError(
            f"refusing to listen on {host} in protected mode: set API_KEYS (or create a key "
            "with 'flask keys create') and ADMIN_PASSWORD, or listen on 127.0.0.1"
        )
