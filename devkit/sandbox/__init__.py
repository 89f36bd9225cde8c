"""A local stand-in for the Mailgun, SendGrid and Postmark send APIs, for tests and benchmarks.

The network reaches no real provider, so the mail service is pointed at this server on loopback
instead. It is a test tool: never expose it beyond localhost. Run it with ``scripts/sandbox
--port 8025`` (``python -m devkit.sandbox``) or embed it::

    with Sandbox(mailgun_key="k").start() as sb:
        ...  # POST to f"{sb.url}/v3/<domain>/messages"
        sb.messages("mailgun")

Faults are injected per provider with ``Sandbox.configure`` or
``PUT /_sandbox/behaviour/<provider>`` (see ``store`` for the keys).

Modules: ``server`` (the Sandbox and its Werkzeug server), ``app`` (the WSGI app and the
faults), ``store`` (what was received, the behaviours), ``control`` (``/_sandbox/``), and one
module per provider's wire format, as in ``providers/``: ``mailgun``, ``sendgrid``, ``ses``,
``postmark``, and ``smtp``, an SMTP relay (aiosmtpd) served beside the HTTP ones with
``Sandbox(smtp=True)``.
"""

from devkit.sandbox.server import Sandbox

__all__ = ["Sandbox"]
