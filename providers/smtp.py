"""Any SMTP relay (a company's Postfix, a hosting provider's relay, a local Mailpit), through the
standard library's ``smtplib``.

A send is one mail transaction on a connection that this send thread keeps open between sends:
``MAIL FROM``, a ``RCPT TO`` per recipient, then ``DATA`` with a MIME message built by
``email.message.EmailMessage``. Cc are a header and recipients; bcc are recipients only, never a
header. We write the ``Message-ID`` (``<{mail id}@{MESSAGE_ID_DOMAIN}>``, by default the
sender's domain: ``Provider.message_id_for``) and answer it as the provider's message id: a
relay gives no id of its own that anything later would carry. Inline parts go beside the HTML
in multipart/related, each with its Content-ID (``providers.mime``).

Security (``SMTP_SECURITY``): ``starttls`` (the default, port 587) upgrades the connection
before we log in; ``tls`` speaks TLS from the start (port 465); ``none`` sends in clear text and
is allowed to a loopback host only. The certificate is verified as for HTTPS, with the host
name checked: against ``SMTP_CA_FILE`` if set, else the system's bundle (``SSL_CERT_FILE``).

Each reply is judged by its code and the command it answers (RFC 5321, section 4.2.1: "4yz
Transient Negative Completion reply", "5yz Permanent Negative Completion reply"):

- no connection, a timeout, a 4xx: the relay is unavailable for now (``ProviderUnavailable``);
- a timeout or a lost connection once ``DATA`` went out: the relay may have the mail
  (``OutcomeUnknown``);
- the relay refuses our login or our TLS, or asks for a login (RFC 4954: "530 5.7.0
  Authentication required", "534 5.7.9 Authentication mechanism is too weak", "535 5.7.8
  Authentication credentials invalid", "538 5.7.11 Encryption required for requested
  authentication mechanism"): ``ProviderMisconfigured``, fail over;
- another 5xx to ``MAIL FROM`` or ``DATA``, or to every ``RCPT TO``: ``MessageRejected``.

When some recipients are refused with a 5xx and others accepted, the mail goes to the accepted
ones and ``Sent.refused`` holds each refused address with the relay's reply (the worker records
them as bounced). A 4xx to any ``RCPT TO`` ends the transaction before ``DATA`` instead: sent
to the others now, a retry would send to them twice.
"""

import smtplib
import ssl
import threading
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, getaddresses, parseaddr

from mailer.loopback import is_loopback_host
from providers.base import (
    MessageRejected,
    OutcomeUnknown,
    Provider,
    ProviderMisconfigured,
    ProviderUnavailable,
    Sent,
)
from providers.mime import add_parts

SECURITY_MODES = ("starttls", "tls", "none")
# Replies that mean our login or our connection's security is wrong, not the message (RFC 4954).
AUTH_REPLIES = (530, 534, 535, 538)
# Bodies and headers 7-bit: quoted-printable or base64 where needed, so that any relay takes
# the message without 8BITMIME or SMTPUTF8; lines end in CRLF, as DATA sends them.
POLICY = SMTP_POLICY.clone(cte_type="7bit")
MAIL_FROM, RCPT_TO, DATA = "MAIL FROM", "RCPT TO", "DATA"
MAX_REPLY = 1000  # characters of a relay's reply that we keep


def bare(address):
    """The addr-spec of ``"Name <local@domain>"``, as the envelope carries it."""
    return parseaddr(address)[1] or address


def reply_text(code, reply):
    """An SMTP reply as one line of text, cut to ``MAX_REPLY``: ``"550 5.1.1 <ann@example.com>:
    Recipient address rejected"``."""
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return f"{code} {' '.join(text.split())}"[:MAX_REPLY]


class SMTPRelay(Provider):
    """Sends through an SMTP relay, one connection per send thread."""

    name = "smtp"
    required_settings = ("SMTP_HOST",)

    def __init__(self, config):
        super().__init__(config)
        self.host = config["SMTP_HOST"]
        self.port = config["SMTP_PORT"]
        self.username = config["SMTP_USERNAME"]
        self.password = config["SMTP_PASSWORD"]
        self.security = config["SMTP_SECURITY"]
        self.timeout = config["SMTP_TIMEOUT"]
        self.ca_file = config["SMTP_CA_FILE"]
        if self.security not in SECURITY_MODES:
            raise ValueError(
                f"SMTP_SECURITY {self.security!r} is not one of {', '.join(SECURITY_MODES)}"
            )
        if self.security == "none" and self.host and not is_loopback_host(self.host):
            raise ValueError(
                f"SMTP_SECURITY none sends mail and the password in clear text: it is allowed "
                f"only to a loopback SMTP_HOST (localhost, 127.0.0.1, ::1), not {self.host!r}; "
                f"use starttls or tls"
            )
        self._context = None if self.security == "none" else self._tls_context()
        self._local = threading.local()
        self._open_connections = set()  # of every thread, for ``close``
        self._lock = threading.Lock()

    def missing_settings(self):
        """``SMTP_HOST``, and ``SMTP_PASSWORD`` when a user name is set without one."""
        missing = super().missing_settings()
        if self.username and not self.password:
            missing.append("SMTP_PASSWORD")
        return missing

    @classmethod
    def tags_for(cls, tags):
        """None: a relay has no tags (the mail keeps them with us)."""
        return []

    # The message ---------------------------------------------------------------------------

    def build_message(self, message):
        """The MIME message: headers with our Message-ID, then the parts (``providers.mime``)."""
        mime = EmailMessage(policy=POLICY)
        mime["From"] = message.from_address
        mime["To"] = ", ".join(message.to)
        if message.cc:
            mime["Cc"] = ", ".join(message.cc)
        if message.reply_to:
            mime["Reply-To"] = message.reply_to
        mime["Subject"] = message.subject
        mime["Date"] = format_datetime(datetime.now(UTC))
        mime["Message-ID"] = self.message_id_for(message)
        for name, value in message.headers.items():
            mime[name] = value
        add_parts(mime, message)
        return mime

    @staticmethod
    def envelope(message):
        """The envelope's sender and its recipients (to, cc and bcc, each once, in order)."""
        recipients = [address for _, address in getaddresses(message.to + message.cc)]
        recipients += [bare(address) for address in message.bcc]
        return bare(message.from_address), list(dict.fromkeys(filter(None, recipients)))

    # The send ------------------------------------------------------------------------------

    def send(self, session, message):
        """Send ``message`` over this thread's connection; ``Sent`` or a ``ProviderError``.

        ``session`` (the worker's HTTP session) is not used. A kept connection that the relay
        closed meanwhile is opened again, once, as long as nothing of the mail went out.
        """
        mime = self.build_message(message)
        data = mime.as_bytes(policy=POLICY)
        sender, recipients = self.envelope(message)
        for fresh in (False, True):
            connection = self._connection(fresh)
            try:
                return self._transaction(connection, sender, recipients, data, mime)
            except smtplib.SMTPServerDisconnected as err:
                self._drop()
                if fresh or getattr(err, "stage", None) == DATA:
                    raise _lost(err) from err
        raise AssertionError("unreachable")  # pragma: no cover

    def _transaction(self, connection, sender, recipients, data, mime):
        """MAIL FROM, RCPT TO each recipient, DATA: ``Sent``, or the error of the first
        reply that ends the transaction."""
        stage = MAIL_FROM
        try:
            code, reply = connection.mail(sender)
            if code != 250:
                raise self._refusal(connection, code, reply, stage)
            stage = RCPT_TO
            refused = self._recipients(connection, recipients)
            stage = DATA
            code, reply = connection.data(data)
        except smtplib.SMTPServerDisconnected as err:
            err.stage = stage  # a reused connection is retried only if no DATA went out
            raise
        except smtplib.SMTPResponseException as err:  # DATA itself answered with no 354
            raise self._refusal(connection, err.smtp_code, err.smtp_error, stage) from err
        except (TimeoutError, OSError) as err:
            self._drop()
            if stage == DATA:
                raise OutcomeUnknown(f"no answer to DATA within {self.timeout:g}s: {err}") from err
            raise ProviderUnavailable(f"{stage}: {err}") from err
        if code != 250:
            raise self._refusal(connection, code, reply, DATA)
        return Sent(str(mime["Message-ID"]), code, reply_text(code, reply), refused=refused)

    def _recipients(self, connection, recipients):
        """RCPT TO each recipient; the refused ones by address with the relay's reply.

        A 4xx for any of them, or a 5xx for all of them, ends the transaction.
        """
        refused, transient = {}, None
        for address in recipients:
            code, reply = connection.rcpt(address)
            if code not in (250, 251):
                refused[address] = reply_text(code, reply)
                if 400 <= code < 500 and transient is None:
                    transient = (code, reply)
        if transient is not None:
            raise self._refusal(connection, *transient, RCPT_TO)
        if len(refused) == len(recipients):
            raise MessageRejected(
                f"every recipient refused: {'; '.join(refused.values())}",
                int(next(iter(refused.values()))[:3]),
                refused,
            )
        return refused

    def _refusal(self, connection, code, reply, stage):
        """The error that a refusing reply means. The transaction is left as it is: the next
        send's ``RSET`` ends it. After a 421 ("Service not available, closing transmission
        channel") the relay closes the connection, so it is forgotten."""
        if code == 421 or connection.sock is None:
            self._drop()
        return _judged(code, reply, stage)

    # The connection ------------------------------------------------------------------------

    def _connection(self, fresh):
        """This thread's connection: the kept one if it still answers ``RSET``, else a new one
        (``fresh``: a new one in any case)."""
        connection = getattr(self._local, "connection", None)
        if connection is not None and not fresh:
            try:
                if connection.rset()[0] == 250:
                    return connection
            except (smtplib.SMTPException, OSError):
                pass
        self._drop()
        connection = self._open()
        self._local.connection = connection
        with self._lock:
            self._open_connections.add(connection)
        return connection

    def _open(self):
        """Connect, secure the connection as ``SMTP_SECURITY`` says, and log in."""
        try:
            if self.security == "tls":
                connection = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self.timeout, context=self._context
                )
            else:
                connection = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        except ssl.SSLError as err:
            raise _tls_failed(err) from err
        except smtplib.SMTPConnectError as err:
            raise _judged(err.smtp_code, err.smtp_error, "connect") from err
        except (TimeoutError, OSError, smtplib.SMTPException) as err:
            raise ProviderUnavailable(f"cannot connect to {self.host}:{self.port}: {err}") from err
        try:
            self._secure_and_log_in(connection)
        except BaseException:
            _close(connection)
            raise
        return connection

    def _secure_and_log_in(self, connection):
        """STARTTLS if asked for, then AUTH if a user name is set; errors classified."""
        try:
            if self.security == "starttls":
                connection.starttls(context=self._context)
            if self.username:
                connection.login(self.username, self.password)
            else:
                connection.ehlo_or_helo_if_needed()
        except ssl.SSLError as err:
            raise _tls_failed(err) from err
        except smtplib.SMTPServerDisconnected as err:
            raise ProviderUnavailable(f"{self.host} closed the connection: {err}") from err
        except smtplib.SMTPNotSupportedError as err:  # no STARTTLS, or no AUTH, offered
            raise ProviderMisconfigured(
                f"{self.host}: {err}; check SMTP_SECURITY, SMTP_PORT and SMTP_USERNAME"
            ) from err
        except smtplib.SMTPResponseException as err:
            raise _judged(err.smtp_code, err.smtp_error, "AUTH") from err
        except smtplib.SMTPException as err:  # no AUTH mechanism we share
            raise ProviderMisconfigured(f"cannot log in to {self.host}: {err}") from err
        except (TimeoutError, OSError) as err:
            raise ProviderUnavailable(f"connection to {self.host} lost: {err}") from err

    def _tls_context(self):
        """Verify the relay as for HTTPS, host name included: against ``SMTP_CA_FILE``, else
        the system's bundle (``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` honoured). Made once, at
        start, so that a CA file that cannot be read stops the worker there."""
        try:
            return ssl.create_default_context(cafile=self.ca_file or None)
        except (OSError, ssl.SSLError) as err:
            raise ValueError(
                f"SMTP_CA_FILE {self.ca_file!r} is not a readable PEM bundle: {err}"
            ) from err

    def close(self):
        """Close every thread's connection (the worker's send threads have ended)."""
        with self._lock:
            connections, self._open_connections = self._open_connections, set()
        for connection in connections:
            _close(connection)

    def _drop(self):
        """Close and forget this thread's connection, if any."""
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            with self._lock:
                self._open_connections.discard(connection)
            _close(connection)


def _judged(code, reply, stage):
    """The ``ProviderError`` that the reply ``code`` to ``stage`` means (see the module)."""
    text = f"{stage}: {reply_text(code, reply)}"
    if code in AUTH_REPLIES:
        return ProviderMisconfigured(f"{text}: check SMTP_USERNAME and SMTP_PASSWORD", code, text)
    if 400 <= code < 500:
        return ProviderUnavailable(text, code, text)
    if 500 <= code < 600 and stage in (MAIL_FROM, RCPT_TO, DATA):
        return MessageRejected(text, code, text)
    if stage in ("connect", "AUTH") and 500 <= code < 600:
        return ProviderMisconfigured(text, code, text)
    return ProviderUnavailable(f"unexpected reply: {text}", code, text)


def _lost(err):
    """A connection lost mid-transaction: after DATA the relay may have the mail."""
    if getattr(err, "stage", None) == DATA:
        return OutcomeUnknown(f"connection lost after DATA: {err}")
    return ProviderUnavailable(f"connection lost: {err}")


def _tls_failed(err):
    """A TLS handshake that failed: a certificate we do not trust, or no TLS we share."""
    return ProviderMisconfigured(
        f"TLS with the relay failed ({err}): check SMTP_CA_FILE, SMTP_SECURITY and SMTP_PORT"
    )


def _close(connection):
    """QUIT and close, quietly: the relay may have gone already."""
    try:
        connection.quit()
    except (smtplib.SMTPException, OSError):
        connection.close()
