"""The SMTP door's metrics and readiness, served on ``SMTP_HEALTH_PORT`` (off while it is 0).

- ``mail_smtp_sessions_total``: SMTP connections the door served;
- ``mail_smtp_messages_accepted_total``: messages stored (answered ``250`` at the end of DATA);
- ``mail_smtp_inbound_received_total``: messages received for ``INBOUND_DOMAINS`` (``250``);
- ``mail_smtp_messages_refused_total{reason}``: refusals, by reason (``invalid``,
  ``invalid_address``, ``too_large``, ``too_many_recipients``, ``sender_not_allowed``,
  ``forbidden``, ``unauthorized``, ``throttled``, ``idempotency_conflict``,
  ``database_unavailable``, ``internal_error``, ``relay_denied``).

``GET /readyz`` answers 200 while the database answers with this code's schema, else 503;
``GET /metrics`` the metrics (behind ``METRICS_TOKEN`` when it is set). The server listens on
loopback only.
"""

import json
import logging
import threading

from prometheus_client import CollectorRegistry, Counter
from werkzeug.serving import make_server

from mailer.telemetry.worker import QuietHandler, guarded

log = logging.getLogger("mail_service.metrics")

HEALTH_ADDRESS = "127.0.0.1"


class SmtpMetrics:
    """The door's counters, in a registry of their own."""

    def __init__(self):
        self.registry = CollectorRegistry(auto_describe=False)
        self.sessions = Counter(
            "mail_smtp_sessions_total", "SMTP sessions served", registry=self.registry
        )
        self.accepted = Counter(
            "mail_smtp_messages_accepted_total",
            "Messages stored and answered 250",
            registry=self.registry,
        )
        self.received = Counter(
            "mail_smtp_inbound_received_total",
            "Messages for INBOUND_DOMAINS received and answered 250",
            registry=self.registry,
        )
        self.refused = Counter(
            "mail_smtp_messages_refused_total",
            "Commands and messages refused, by reason",
            ["reason"],
            registry=self.registry,
        )


def health_app(metrics, token, ready):
    """The WSGI app of ``/readyz`` (``ready()``: None when ready, else why not) and
    ``/metrics``."""
    exposition = guarded(metrics.registry, token)

    def app(environ, start_response):
        if environ.get("PATH_INFO") != "/readyz":
            return exposition(environ, start_response)
        problem = ready()
        body = {"status": "ready"} if problem is None else {"status": "unready", "reason": problem}
        data = json.dumps(body).encode()
        status = "200 OK" if problem is None else "503 SERVICE UNAVAILABLE"
        start_response(
            status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
        )
        return [data]

    return app


class HealthServer:
    """``health_app`` on ``port`` of loopback, on a thread: ``start()``, ``stop()``."""

    def __init__(self, port, app):
        self.port = port
        self.app = app
        self.server = None

    def start(self):
        """Serve, if a port is set; a port in use is logged, not fatal."""
        if not self.port:
            return self
        try:
            self.server = make_server(
                HEALTH_ADDRESS, self.port, self.app, threaded=True, request_handler=QuietHandler
            )
        except OSError as err:
            log.error("cannot serve SMTP health on %s:%s: %s", HEALTH_ADDRESS, self.port, err)
            return self
        self.port = self.server.port
        threading.Thread(target=self.server.serve_forever, name="health", daemon=True).start()
        log.info("SMTP door health on http://%s:%s/readyz", HEALTH_ADDRESS, self.port)
        return self

    def stop(self):
        """Stop serving."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
