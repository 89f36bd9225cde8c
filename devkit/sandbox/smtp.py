"""An SMTP relay as the sandbox plays it: aiosmtpd on loopback, with STARTTLS and AUTH.

At start it makes a private CA and a certificate for ``localhost``, 127.0.0.1 and ::1 signed by
it (with ``cryptography``, in a temporary folder gone at stop): the relay's clients trust it
through ``ca_file``, as a company relay's private certificate is trusted through
``SMTP_CA_FILE``. AUTH (PLAIN, LOGIN) is offered only once the connection is encrypted
(aiosmtpd's ``auth_require_tls``); with a user name set it is required, and only that user and
password pass, else any non-empty pair does.

Each mail accepted becomes a message record in the sandbox's store (provider ``smtp``), parsed
from the MIME it received: its headers, bodies, attachments and inline parts, its Message-ID
(a relay delivers it as given), and the envelope (``bcc`` are the envelope's recipients that no
header names). A relay has no event feed: nothing is posted.

Its behaviour is set as the other providers' (``Sandbox.configure("smtp", ...)``, ``PUT
/_sandbox/behaviour/smtp``), in its own words:

- ``reject_to``: each recipient whose address contains it is refused at ``RCPT TO`` with
  ``550 5.1.1``; the others are taken;
- ``status`` (an SMTP reply code: 421, 451, 554, ...) at ``stage`` (``mail``, the default,
  ``rcpt`` or ``data``), with ``body`` as the reply's text if given; ``count`` limits it to the
  next mail transactions, ``hang`` waits that many seconds before answering the stage;
- ``refuse_auth``: every login is refused with ``535 5.7.8``;
- ``latency_ms``: a wait before answering ``MAIL FROM``.
"""

import asyncio
import datetime
import ipaddress
import logging
import secrets
import ssl
import tempfile
import time
from email import policy
from email.parser import BytesParser
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from devkit.sandbox.wire import mime_files, now_iso

NAME = "smtp"
STAGES = ("mail", "rcpt", "data")
REFUSED_RECIPIENT = "550 5.1.1 <{}>: Recipient address rejected: User unknown in local table"
AUTH_REFUSED = "535 5.7.8 Authentication credentials invalid"
# The texts of injected replies, as Postfix words them; another code gets a generic text.
REPLIES = {
    421: "421 4.7.0 Service not available, closing transmission channel",
    450: "450 4.2.0 Mailbox unavailable",
    451: "451 4.3.0 Local error in processing",
    452: "452 4.3.1 Insufficient system storage",
    550: "550 5.7.1 Requested action not taken: mailbox unavailable",
    552: "552 5.3.4 Message size exceeds fixed limit",
    554: "554 5.7.1 Transaction failed",
}
CERTIFICATE_DAYS = 30
# aiosmtpd logs every command at INFO, and each login warns of an attribute of its own that is
# deprecated: the sandbox's relay keeps to its errors.
logging.getLogger("mail.log").setLevel(logging.ERROR)


def fault_reply(fault):
    """The reply of an injected ``status``: its ``body`` as the text, or the usual text."""
    status = fault["status"]
    if "body" in fault:
        body = fault["body"]
        return f"{status} {body.decode() if isinstance(body, bytes) else body}"
    return REPLIES.get(status, f"{status} {status // 100}.0.0 Sandbox fault")


# The certificate -----------------------------------------------------------------------------


def make_certificates(folder, hosts=()):
    """A private CA and a server certificate signed by it for ``localhost``, 127.0.0.1, ::1 and
    ``hosts``, as PEM files in ``folder``: ``(ca_file, cert_file, key_file)``."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Mail sandbox CA")])
    ca = (
        _builder(ca_name, ca_name, ca_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    server = (
        _builder(name, ca_name, key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(_names(hosts)), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    folder = Path(folder)
    files = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    files[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    files[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return tuple(str(path) for path in files)


def _builder(subject, issuer, public_key, now):
    """A certificate builder with the parts every certificate here shares."""
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CERTIFICATE_DAYS))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _key_usage(cert_sign):
    """A CA signs certificates; a server signs its handshakes."""
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _names(hosts):
    """The server certificate's names: loopback's, and ``hosts`` (names or addresses)."""
    names = [x509.DNSName("localhost")]
    addresses = {"127.0.0.1", "::1", *hosts} - {"localhost"}
    for host in sorted(addresses):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


# The message record --------------------------------------------------------------------------


def message_record(envelope):
    """What the sandbox keeps of a mail received: the shape of the other providers' records,
    with the envelope."""
    message = BytesParser(policy=policy.default).parsebytes(envelope.content)
    to, cc = _addresses(message, "To"), _addresses(message, "Cc")
    named = {_bare(entry) for entry in to + cc}
    return {
        "provider": NAME,
        "id": message.get("Message-ID"),
        "message_id": message.get("Message-ID"),
        "received_at": now_iso(),
        "from": str(message.get("From", "")),
        "to": to,
        "cc": cc,
        "bcc": [address for address in envelope.rcpt_tos if address.lower() not in named],
        "reply_to": message.get("Reply-To"),
        "subject": message.get("Subject"),
        "text": _body(message, "plain"),
        "html": _body(message, "html"),
        "custom": {},
        "headers_in": {name: str(value) for name, value in message.items()},
        "attachments": mime_files(message),
        "envelope": {"mail_from": envelope.mail_from, "rcpt_to": list(envelope.rcpt_tos)},
        "size": len(envelope.content),
    }


def _addresses(message, header):
    """The entries of an address header, as written (``"Ann <ann@example.com>"``)."""
    value = message.get(header)
    return [str(address) for address in value.addresses] if value is not None else []


def _bare(entry):
    """The address of ``"Name <local@domain>"``, lower-cased, for comparing."""
    start, end = entry.rfind("<"), entry.rfind(">")
    if start != -1 and end > start:
        entry = entry[start + 1 : end]
    return entry.strip().lower()


def _body(message, subtype):
    """The text of the message's ``text/<subtype>`` body, or None."""
    part = message.get_body(preferencelist=(subtype,))
    return part.get_content().replace("\r\n", "\n") if part is not None else None


# The server ----------------------------------------------------------------------------------


class Handler:
    """aiosmtpd's hooks: each mail transaction takes the behaviour once, at ``MAIL FROM``."""

    def __init__(self, store):
        self.store = store

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        """Take the behaviour of this transaction; answer an injected fault of ``mail``."""
        latency_ms, fault, reject_to = self.store.take(NAME)
        envelope.started = time.time()
        envelope.fault, envelope.reject_to = fault or {}, reject_to
        if latency_ms:
            await asyncio.sleep(latency_ms / 1000)
        reply = await self._fault(envelope, "mail")
        if reply is not None:
            self.store.record(NAME, envelope.started, int(reply[:3]), [])
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        """Refuse ``reject_to``'s recipients with 550 5.1.1; answer a fault of ``rcpt``."""
        reply = await self._fault(envelope, "rcpt")
        if reply is not None:
            return reply
        if envelope.reject_to and envelope.reject_to in address:
            return REFUSED_RECIPIENT.format(address)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        """Keep the mail, or answer a fault of ``data``."""
        reply = await self._fault(envelope, "data")
        if reply is not None:
            self.store.record(NAME, envelope.started, int(reply[:3]), [])
            return reply
        record = message_record(envelope)
        self.store.record(NAME, envelope.started, 250, [record])
        return f"250 2.0.0 Ok: queued as {secrets.token_hex(6).upper()}"

    async def _fault(self, envelope, stage):
        """The injected reply at ``stage``, after its ``hang``; None if there is none here."""
        fault = envelope.fault
        if fault.get("stage", "mail") != stage:
            return None
        if fault.get("hang"):
            await asyncio.sleep(fault["hang"])
        return fault_reply(fault) if "status" in fault else None


class _Controller(Controller):
    """aiosmtpd's threaded controller, on a free port if asked for port 0, counting the
    connections it accepts."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.accepted = 0

    def factory(self):
        """A new SMTP session per connection: count it."""
        self.accepted += 1
        return SMTP(self.handler, **self.SMTP_kwargs)

    def _trigger_server(self):
        """The port bound (port 0 picks one) before the controller's own first connection."""
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class Relay:
    """The sandbox's SMTP relay: ``start()``, then ``port`` and ``ca_file``; ``stop()``."""

    def __init__(self, store, host="127.0.0.1", port=0, username=None, password=None):
        self.store, self.host, self.port = store, host, port
        self.username, self.password = username or None, password or None
        self.ca_file = None
        self._folder = None
        self._controller = None

    def start(self):
        """Make the certificates, listen, and serve on aiosmtpd's thread; return self."""
        self._folder = tempfile.TemporaryDirectory(prefix="mail-sandbox-smtp-")
        self.ca_file, cert_file, key_file = make_certificates(self._folder.name, [self.host])
        tls = _server_tls(cert_file, key_file)
        self._controller = _Controller(
            Handler(self.store),
            hostname=self.host,
            port=self.port,
            server_hostname="localhost",
            tls_context=tls,
            authenticator=self._authenticate,
            auth_required=self.username is not None,
        )
        self._controller.start()
        self._controller.accepted = 0  # not the controller's own check that it answers
        self.port = self._controller.port
        return self

    def stop(self):
        """Stop serving and delete the certificates."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None

    @property
    def connections_accepted(self):
        """How many connections clients opened (connection reuse checks)."""
        return self._controller.accepted if self._controller else 0

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        """aiosmtpd's authenticator: the configured user and password, or any if none."""
        login, password = auth_data.login, auth_data.password
        refused = AuthResult(success=False, handled=False, message=AUTH_REFUSED)
        if self.store.behaviour(NAME).get("refuse_auth") or not (login and password):
            return refused
        if self.username is not None and not (
            secrets.compare_digest(login, self.username.encode())
            and secrets.compare_digest(password, (self.password or "").encode())
        ):
            return refused
        return AuthResult(success=True, auth_data=auth_data)


def _server_tls(cert_file, key_file):
    """The server side of STARTTLS with the sandbox's certificate."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context
