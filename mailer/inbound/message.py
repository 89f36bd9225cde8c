"""The one shape of a mail received, whichever way it came in.

A way in fills what its provider gives and leaves the rest empty: Mailgun and SMTP give the
envelope, SendGrid gives it as JSON, Postmark gives none but its ``OriginalRecipient``; only
Mailgun gives the reply without its quoted history (``stripped-text``); Postmark's
``StrippedTextReply`` is the same. ``raw`` is the whole MIME message where the way in has it
(SMTP, SendGrid's raw mode, Mailgun's ``body-mime``); a bounce report is read from it when
present, else from the parts.
"""

from dataclasses import dataclass, field

SOURCES = ("mailgun", "sendgrid", "postmark", "smtp")


@dataclass(frozen=True)
class InboundAttachment:
    """One attached or inline part, decoded."""

    filename: str
    content_type: str
    content: bytes
    content_id: str | None = None  # without the angle brackets, for an inline part


@dataclass(frozen=True)
class InboundMail:
    """A received mail, normalised; addresses as given (display names kept in ``from_address``,
    bare in the envelope)."""

    source: str  # one of SOURCES
    delivery_id: str | None  # the provider's id of this delivery: a replay has the same
    envelope_from: str | None  # MAIL FROM; "" for the null sender <> (a bounce's), None: not given
    envelope_to: tuple[str, ...]
    from_address: str | None  # the From header
    to: tuple[str, ...]  # the To header's addresses
    cc: tuple[str, ...]
    subject: str
    text: str | None
    html: str | None
    stripped_text: str | None  # the reply without the quoted history, if the provider gives it
    headers: tuple[tuple[str, str], ...]  # every header, in order, names as written
    message_id: str | None  # the Message-ID header, angle brackets kept: "<id@domain>"
    in_reply_to: str | None
    references: tuple[str, ...]
    attachments: tuple[InboundAttachment, ...] = ()
    spam_score: float | None = None
    spam_verdict: str | None = None  # "spam" or "ham", when the provider says
    raw: bytes | None = field(default=None, repr=False)

    def header(self, name):
        """The first value of the header ``name`` (any case), or None."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)
