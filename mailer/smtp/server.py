"""The SMTP door's server: aiosmtpd listening on ``SMTP_LISTEN``, ``STARTTLS`` with
``SMTP_TLS_CERT`` and ``SMTP_TLS_KEY``, and ``AUTH PLAIN`` or ``AUTH LOGIN`` with an API key.

Who may send (the API's rule, ``mailer.api.auth``):

- With ``API_KEYS`` set, every session logs in: any user name, an API key as the password,
  offered only after ``STARTTLS`` (so a door that takes keys needs a certificate). The key's
  ``Principal`` (``principals.authenticate``) is what the session acts for.
- Without (protected mode) the door listens on loopback only, and a session that does not log
  in acts as ``principals.LOCAL``, as a local client of the API does.

With ``INBOUND_DOMAINS`` set, the door is also those domains' MX: a session that does not log
in may deliver mail to them, and to nothing else (``inbound``).

A wrong key is ``535 5.7.8``; too many from one address within ``AUTH_FAILURE_WINDOW`` are
``421 4.7.0`` and the connection closes (``FailureThrottle``: the counts the API keeps in
PostgreSQL). Database work runs on a pool of threads, each in an app context of the door's
Flask app (``Door.run``), never on aiosmtpd's event loop.
"""

import asyncio
import logging
import ssl
import time
from concurrent.futures import ThreadPoolExecutor

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope
from flask import Flask
from sqlalchemy.exc import DBAPIError

from mailer import principals
from mailer.api.throttle import FailureThrottle
from mailer.database import engine_options, normalize_url
from mailer.events import outbox
from mailer.idempotency import LOCAL_SCOPE, key_scope
from mailer.loopback import is_loopback_host
from mailer.queue import keys as stored_keys
from mailer.smtp import replies
from mailer.smtp.handler import Handler
from mailer.smtp.inbound import domain_of
from mailer.smtp.submission import Login
from mailer.telemetry.smtp import SmtpMetrics
from models import db

log = logging.getLogger("mail_service.smtp")

THREADS = 8  # database calls in flight (each a pooled connection)
# aiosmtpd's own words for a message past the size limit, and the door's.
OWN_SIZE_REPLIES = ("552 Error: Too much mail data", "552 Error: message size exceeds")


def parse_listen(value):
    """``SMTP_LISTEN`` (``host:port``, ``[v6]:port``) as (host, port); ValueError if not."""
    host, sep, port = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"setting SMTP_LISTEN: {value!r} is not host:port")
    return host, int(port)


def protected_mode(config):
    """Whether the door runs without keys (loopback clients only, acting as ``LOCAL``)."""
    return not config["API_KEYS"]


def tls_context(config):
    """The server side of ``STARTTLS`` (TLS 1.2 or later), or None without a certificate;
    ValueError naming the setting that is missing or cannot be read."""
    cert, key = config["SMTP_TLS_CERT"], config["SMTP_TLS_KEY"]
    if not cert and not key:
        return None
    if not (cert and key):
        missing = "SMTP_TLS_KEY" if cert else "SMTP_TLS_CERT"
        raise ValueError(f"{missing} is not set: STARTTLS needs SMTP_TLS_CERT and SMTP_TLS_KEY")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as err:
        raise ValueError(
            f"cannot load SMTP_TLS_CERT {cert} with SMTP_TLS_KEY {key}: {err}"
        ) from None
    return context


def check_settings(config):
    """Refuse (ValueError) settings that would open the door, or lock it: protected mode
    beyond loopback, or keys without a certificate to take them over."""
    host, _ = parse_listen(config["SMTP_LISTEN"])
    tls = tls_context(config)
    if protected_mode(config) and not is_loopback_host(host):
        raise ValueError(
            f"refusing to listen on {host} in protected mode: set API_KEYS (and "
            "SMTP_TLS_CERT, SMTP_TLS_KEY), or set SMTP_LISTEN=127.0.0.1:2525"
        )
    if not protected_mode(config) and tls is None:
        raise ValueError(
            "API_KEYS is set, so SMTP clients log in with a key, which goes only over TLS: "
            "set SMTP_TLS_CERT and SMTP_TLS_KEY"
        )
    return tls


def make_app(config):
    """A Flask app holding the door's settings and database engine, for ``Door.run``'s app
    contexts (``transaction``, the templates and the throttle read them there), and the client
    webhooks that inbound mail may raise, as the API's app holds them."""
    app = Flask("smtp_service")
    app.config.update(config)
    app.config["SQLALCHEMY_DATABASE_URI"] = normalize_url(config["DATABASE_URL"])
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options(config, pool_size=THREADS)
    app.extensions["webhooks"] = outbox.subscription(config)
    db.init_app(app)
    return app


class DoorEnvelope(Envelope):
    """aiosmtpd's envelope, and whether its transaction delivers inbound mail (its first
    recipient decided)."""

    def __init__(self):
        super().__init__()
        self.inbound = False


class DoorSMTP(SMTP):
    """aiosmtpd's SMTP session with the key of ``AUTH`` checked off the event loop, and the
    door's words for a message that is too large."""

    def __init__(self, handler, door, **kwargs):
        super().__init__(handler, **kwargs)
        self.door = door

    def _create_envelope(self):
        """A new transaction's envelope."""
        return DoorEnvelope()

    async def check_auth_needed(self, caller_method):
        """With ``INBOUND_DOMAINS``, MAIL, RCPT and DATA go on without AUTH: the handler takes
        mail for those domains and refuses any other recipient."""
        if self.door.inbound_domains and caller_method in ("MAIL", "RCPT", "DATA"):
            return False
        return await super().check_auth_needed(caller_method)

    async def auth_PLAIN(self, _, args):
        """``AUTH PLAIN``: aiosmtpd decodes it, the door checks the key."""
        return await self._checked(await super().auth_PLAIN(_, args))

    async def auth_LOGIN(self, _, args):
        """``AUTH LOGIN``: aiosmtpd asks for it, the door checks the key."""
        return await self._checked(await super().auth_LOGIN(_, args))

    async def _checked(self, result):
        """The ``AuthResult`` of the credentials in ``result``: the ``Login`` of a valid key;
        535 for a wrong one; 421, closing the connection, for a client refused for a while."""
        if not result.success:
            return result
        password = result.auth_data.password.decode("utf-8", "surrogateescape")
        try:
            login = await self.door.run(self.door.authenticate, password, self.session.peer[0])
        except replies.Refusal as refusal:
            reply = self.door.refused(refusal)
            if refusal.reason != "throttled":
                return AuthResult(success=False, handled=False, message=reply)
            await self.push(reply)
            self.transport.close()
            return AuthResult(success=False, handled=True)
        return AuthResult(success=True, auth_data=login, message=replies.AUTHENTICATED)

    async def push(self, status):
        """Send a reply; aiosmtpd's own for a message past the size limit in the door's words."""
        if isinstance(status, str) and status.startswith(OWN_SIZE_REPLIES):
            status = self.door.refused(replies.message_too_large(self.data_size_limit))
        await super().push(status)


def credentials_as_given(server, session, envelope, mechanism, auth_data):
    """aiosmtpd's authenticator: every credential goes on to ``DoorSMTP._checked``."""
    return AuthResult(success=True, auth_data=auth_data)


class DoorController(Controller):
    """aiosmtpd's threaded controller making ``DoorSMTP`` sessions, counting them once it
    serves (its own check that the server answers is not a session)."""

    def __init__(self, door, **kwargs):
        super().__init__(Handler(door), **kwargs)
        self.door = door
        self.serving = False

    def factory(self):
        """A new session per connection."""
        if self.serving:
            self.door.metrics.sessions.inc()
        return DoorSMTP(self.handler, self.door, **self.SMTP_kwargs)

    def _trigger_server(self):
        """Learn the port bound (port 0 picks one) before aiosmtpd's own first connection."""
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class Door:
    """The SMTP door of ``config`` (checked by ``check_settings``): ``start()``, then ``host``
    and ``port``; ``stop()``."""

    def __init__(self, config, app=None):
        self.config = config
        self.tls = check_settings(config)
        self.host, self.port = parse_listen(config["SMTP_LISTEN"])
        self.protected = protected_mode(config)
        self.inbound_domains = frozenset(domain_of(f"@{d}") for d in config["INBOUND_DOMAINS"])
        self.app = app or make_app(config)
        self.metrics = SmtpMetrics()
        self.throttle = FailureThrottle(
            config["AUTH_FAILURE_LIMIT"],
            config["AUTH_FAILURE_WINDOW"],
            config["AUTH_BLOCK_SECONDS"],
        )
        self._threads = None
        self._controller = None
        self._loopback = is_loopback_host(self.host)
        self._keys_checked = (False, 0.0)  # (a stored key is live, until when that holds)

    def start(self):
        """Listen and serve on aiosmtpd's thread; return self."""
        self._threads = ThreadPoolExecutor(THREADS, thread_name_prefix="smtp-db")
        self._controller = DoorController(
            self,
            hostname=self.host,
            port=self.port,
            server_hostname="localhost" if self._loopback else None,
            tls_context=self.tls,
            data_size_limit=self.config["SMTP_MAX_MESSAGE_BYTES"],
            authenticator=credentials_as_given,
            auth_required=not self.protected,
            # Protected mode serves loopback only: no network to read a key on.
            auth_require_tls=not self.protected,
        )
        self._controller.start()
        self._controller.serving = True
        self.port = self._controller.port
        log.info("SMTP door on %s:%s", self.host, self.port)
        return self

    def stop(self):
        """Stop serving; the sessions' database calls under way finish first."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
        if self._threads is not None:
            self._threads.shutdown(wait=True)
            self._threads = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    async def run(self, function, *args):
        """``function(*args)`` on one of the door's threads, in an app context."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, self._in_app, function, args)

    def _in_app(self, function, args):
        """Call ``function`` in an app context of the door's app."""
        with self.app.app_context():
            return function(*args)

    def authenticate(self, key, client):
        """The ``Login`` of API key ``key``; ``replies.Refusal`` for a wrong one (counted
        against ``client``, the peer's address, and 421 once it failed too often)."""
        principal = principals.authenticate(self.config, key)
        if principal is not None:
            return Login(principal, key_scope(principal.key_id, key))
        seconds = self.throttle.failed(client)
        raise replies.throttled(seconds) if seconds else replies.wrong_key()

    def login_of(self, session):
        """Whom ``session`` acts for: its login, ``LOCAL`` in protected mode, else None."""
        if session.authenticated:
            return session.auth_data
        if self.protected and self._loopback and not self.stored_keys_live():
            return Login(principals.LOCAL, LOCAL_SCOPE)
        return None

    def is_inbound(self, session, envelope, address):
        """Whether RCPT ``address`` makes ``envelope`` a transaction of inbound mail (the first
        recipient decides; an authenticated session's never is); ``replies.Refusal``
        (550 5.7.1) for a recipient a session without AUTH may not send to."""
        if session.authenticated or not self.inbound_domains:
            return False
        inbound = domain_of(address) in self.inbound_domains
        if envelope.rcpt_tos:
            if envelope.inbound and not inbound:
                raise replies.relay_denied()
            return envelope.inbound
        if not inbound and self.login_of(session) is None:
            raise replies.relay_denied()
        return inbound

    def stored_keys_live(self):
        """Whether a stored key is live, which ends protected mode as it does for the API
        (``auth.stored_keys_live``): asked at most once a second; no while the database cannot
        be asked, a connection found dead included (the API answers 503 for that; here it would
        end the session with the driver's words)."""
        now = time.monotonic()
        if self._keys_checked[1] <= now:
            try:
                live = stored_keys.any_live_if_known(lambda: principals.connection(self.config))
            except DBAPIError:
                live = None
            if live is None:
                return False
            self._keys_checked = (live, now + 1.0)
        return self._keys_checked[0]

    def refused(self, refusal):
        """Count a refusal by its reason; its reply line."""
        self.metrics.refused.labels(refusal.reason).inc()
        return refusal.reply
