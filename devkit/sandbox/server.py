"""The Sandbox: the sandbox's WSGI app served by Werkzeug's threaded server in a thread.

Werkzeug's development server always answers ``Connection: close``, because http.server cannot
drain a body the app left unread. The sandbox's app reads every body in full, so its handler
writes the app's answer itself and keeps the connection open: the mail service's workers and
the benchmarks reuse their connections to it as they do to the real providers.
"""

from __future__ import annotations

import socket
import sys
import threading

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler, select_address_family

from devkit.sandbox import inbound
from devkit.sandbox.app import App
from devkit.sandbox.control import set_keep, tally
from devkit.sandbox.events import Poster
from devkit.sandbox.smtp import Relay
from devkit.sandbox.store import Store, check_provider, copy_record

POLL_INTERVAL = 0.05  # seconds: how quickly serve_forever notices stop()
BACKLOG = 1024  # pending connections: benchmarks open many at once


class _Handler(WSGIRequestHandler):
    """Werkzeug's request handler with keep-alive, quiet, and with small answers sent whole."""

    protocol_version = "HTTP/1.1"
    wbufsize = 64 * 1024  # headers and body leave in one send; flushed per request
    disable_nagle_algorithm = True  # no 40 ms delayed-ACK stalls on small answers

    def version_string(self) -> str:
        """The Server header."""
        return "mail-sandbox"

    def log_request(self, code="-", size="-") -> None:
        """No line per request: a benchmark sends hundreds of thousands."""

    def handle_expect_100(self) -> bool:
        """Send 100 Continue right away (the write buffer would otherwise hold it)."""
        result = super().handle_expect_100()
        self.wfile.flush()
        return result

    def run_wsgi(self) -> None:
        """Write the app's answer to one request, leaving the connection open."""
        self.environ = environ = self.make_environ()
        try:
            response = self.server.app.respond(environ)
        except ConnectionAbortedError:  # the app cut the connection on purpose
            self.close_connection = True
            return
        body, _, headers = response.get_wsgi_response(environ)
        self.send_response(response.status_code)
        for name, value in headers:
            self.send_header(name, value)  # a "Connection: close" here closes it too
        if response.content_length is None and response.status_code not in (204, 304):
            self.close_connection = True  # the body's end is the connection's end
        if "Connection" not in response.headers:
            if self.close_connection:
                self.send_header("Connection", "close")
            elif self.request_version == "HTTP/1.0":
                self.send_header("Connection", "keep-alive")  # HTTP/1.0 clients must be told
        self.end_headers()
        for chunk in body:
            self.wfile.write(chunk)


class _Server(ThreadedWSGIServer):
    """Thread-per-connection server that tracks its connections so stop() can end them."""

    block_on_close = False  # server_close() must not wait for hung or idle keep-alive threads

    def __init__(self, host, port, app):
        """Listen on (host, port) and serve ``app``."""
        self.conn_lock = threading.Lock()
        self.open_conns: set[socket.socket] = set()
        self.accepted = 0
        # Werkzeug exits the process when it cannot bind; binding here raises OSError instead.
        family = select_address_family(host, port)
        with socket.create_server((host, port), family=family, backlog=BACKLOG) as listener:
            super().__init__(host, port, app, _Handler, fd=listener.fileno())

    def process_request(self, request, client_address):
        """Count and remember the connection, then hand it to a thread."""
        with self.conn_lock:
            self.accepted += 1
            self.open_conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        """Forget the connection once its thread is done with it."""
        with self.conn_lock:
            self.open_conns.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Shut down every open client socket so blocked handler threads exit."""
        with self.conn_lock:
            conns = list(self.open_conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the peer

    def handle_error(self, request, client_address):
        """Stay quiet about clients that went away; report real bugs."""
        if isinstance(sys.exc_info()[1], OSError) or self.app.stopping.is_set():
            return
        super().handle_error(request, client_address)


class Sandbox:
    """A Mailgun, SendGrid, Amazon SES and Postmark look-alike served over HTTP on loopback (and
    an SMTP relay)."""

    def __init__(
        self,
        host="127.0.0.1",
        port=0,
        mailgun_key=None,
        sendgrid_key=None,
        latency_ms=0,
        events=None,
        allowed_hosts=(),
        ses_access_key_id=None,
        ses_secret_access_key=None,
        smtp=False,
        smtp_port=0,
        smtp_username=None,
        smtp_password=None,
        postmark_token=None,
        keep=None,
    ):
        """Configure (but do not start) the sandbox; ``events``: see ``events.DEFAULTS``.

        Requests must name it in their ``Host``: by a loopback name or address, by ``host``,
        or by one of ``allowed_hosts`` (for clients that reach it by another name). SES's
        requests must be signed with ``ses_access_key_id`` and ``ses_secret_access_key`` (any
        SigV4 signature without them). With ``smtp`` it also serves an SMTP relay on
        ``smtp_port`` (see ``smtp``), taking only ``smtp_username`` and ``smtp_password`` if they
        are set. It keeps the newest ``keep`` messages, requests and event posts (None: all);
        ``tally`` counts every one."""
        self.host, self.port = host, port
        self.allowed_hosts = (host, *allowed_hosts)
        self.mailgun_key = mailgun_key or None
        self.sendgrid_key = sendgrid_key or None
        self.ses_credentials = None
        if ses_access_key_id and ses_secret_access_key:
            self.ses_credentials = (ses_access_key_id, ses_secret_access_key)
        self.postmark_token = postmark_token or None
        self._store = Store(latency_ms, events, keep)
        self._stopping = threading.Event()
        self._poster = Poster(self._stopping, keep)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._relay = Relay(self._store, host, smtp_port, smtp_username, smtp_password)
        self._relay_wanted = smtp

    def start(self) -> Sandbox:
        """Bind and serve in a background daemon thread; return self."""
        if self._server is not None:
            raise RuntimeError("sandbox already started (a stopped one cannot restart)")
        keys = {
            "mailgun": self.mailgun_key,
            "sendgrid": self.sendgrid_key,
            "ses": self.ses_credentials,
            "postmark": self.postmark_token,
        }
        app = App(self._store, keys, self._stopping, self._poster, self.allowed_hosts)
        self._server = _Server(self.host, self.port, app)
        self._poster.start()
        self.port = self._server.port
        self._poster.base_url = self.url  # where the SNS certificate is served
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": POLL_INTERVAL},
            name=f"sandbox-{self.port}",
            daemon=True,
        )
        self._thread.start()
        if self._relay_wanted:
            self._relay.start()
        return self

    def stop(self) -> None:
        """Stop serving, waking hung requests and closing open connections."""
        server = self._server
        if server is None or self._stopping.is_set():
            return
        self._stopping.set()  # wakes any request waiting out a hang or latency
        server.shutdown()
        server.server_close()
        server.close_connections()
        self._thread.join(timeout=5)
        self._relay.stop()

    def __enter__(self) -> Sandbox:
        """Start if needed; return self."""
        return self if self._server is not None else self.start()

    def __exit__(self, *exc) -> None:
        """Stop on leaving the with-block."""
        self.stop()

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:8025."""
        if self._server is None:
            raise RuntimeError("sandbox not started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def smtp_port(self) -> int:
        """The SMTP relay's port (``smtp=True``)."""
        return self._relay.port

    @property
    def smtp_ca_file(self) -> str | None:
        """The PEM file of the CA that signed the SMTP relay's certificate (``SMTP_CA_FILE``)."""
        return self._relay.ca_file

    @property
    def smtp_connections(self) -> int:
        """How many connections the SMTP relay has accepted (connection reuse checks)."""
        return self._relay.connections_accepted

    @property
    def connections_accepted(self) -> int:
        """How many TCP connections the server has accepted (keep-alive checks)."""
        return self._server.accepted if self._server else 0

    def messages(self, provider=None) -> list[dict]:
        """Accepted messages, oldest first, optionally for one provider."""
        if provider is not None:
            check_provider(provider)
        return [copy_record(m) for m in self._store.snapshot("messages", provider)]

    def requests(self, provider=None) -> list[dict]:
        """Every send request received: provider, at (unix time), status answered."""
        if provider is not None:
            check_provider(provider)
        return [dict(r) for r in self._store.snapshot("requests", provider)]

    def reset(self) -> None:
        """Clear messages, requests, the tally, all behaviour and the event settings and
        posts; keep as at the start."""
        self._store.reset()
        self._poster.reset()

    def tally(self) -> dict:
        """Counts of everything taken and posted, however little is kept (``GET
        /_sandbox/tally``): requests by provider and status, messages, mail ids, the mail ids
        taken more than once, and the event posts."""
        return tally(self._store, self._poster)

    def set_keep(self, keep) -> None:
        """Keep only the newest ``keep`` messages, requests and event posts (None: all)."""
        set_keep(self._store, self._poster, keep)

    def configure_events(self, **settings) -> dict:
        """Merge settings of the event webhooks (``events.DEFAULTS`` keys); the result."""
        return self._store.configure_events(settings)

    def posted_events(self) -> list[dict]:
        """Every event post so far: provider, status answered, (event, recipient) pairs."""
        return self._poster.snapshot()

    def post_inbound(self, provider, times=1, **mail) -> list[dict]:
        """Post a mail the provider received (``inbound.MAIL_FIELDS``) to the events URL's
        ``/inbound/<provider>``, as ``provider`` posts it, ``times`` times (a retry sends the
        same bytes); each answer, ``{"status", "answer"}``."""
        settings = self._store.event_settings()
        return inbound.post(self._poster.session, settings, provider, mail, times)

    def confirm_sns_subscription(self, topic_arn, **fields) -> int:
        """Post a signed SNS SubscriptionConfirmation of ``topic_arn`` to the events URL now;
        the status it answered (``fields``: ``subscribe_url`` replaces the sandbox's own)."""
        return self._poster.confirm_subscription(self._store.event_settings(), topic_arn, **fields)

    def sns_confirmations(self) -> list[dict]:
        """The GETs of the sandbox's SubscribeURL so far: ``{"topic", "token"}``."""
        return self._poster.signer.confirmations()

    @property
    def sns_signer(self):
        """The sandbox's SNS signing key and certificate (``sns.Signer``), for tests that
        build SNS messages of their own."""
        return self._poster.signer

    def configure(self, provider, **behaviour) -> None:
        """Merge behaviour into a provider's (a None value removes that key)."""
        self._store.configure(provider, behaviour)

    def set_behaviour(self, provider, behaviour: dict) -> None:
        """Replace a provider's behaviour entirely."""
        self._store.set_behaviour(provider, behaviour)

    def behaviour(self, provider) -> dict:
        """A copy of a provider's current behaviour (JSON-friendly)."""
        return self._store.behaviour(provider)
