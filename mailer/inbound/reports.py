"""Bounce reports and automatic replies among the mail received: which mail of ours a report
returns, who failed and why (``read_report``), and whether a mail is an automatic reply
(``is_auto_reply``). Pure: no database, no Flask.

A report is read from the whole MIME message when the way in kept it (``InboundMail.raw``),
else from a message rebuilt from the parts it gave (its headers, its text, and the attachments
that carry a report: ``message/delivery-status``, ``message/rfc822``, ``text/rfc822-headers``).

Two shapes of report:

- RFC 3464's ``multipart/report; report-type=delivery-status`` (Postfix, Sendmail, Exchange and
  Office 365, Gmail today, most MTAs): its ``message/delivery-status`` part is a block of fields
  per recipient (``Final-Recipient``, ``Action``, ``Status``, ``Diagnostic-Code``), which the
  ``email`` package parses as a list of header blocks. The same fields written into the body of
  a mail that looks like a report (its MIME structure lost on the way) are read too.
- Plain bodies in each MTA's own words (qmail's "Hi. This is the qmail-send program" with its
  ``<address>:`` blocks, Exim's "This message was created automatically by mail delivery
  software" with the address indented, old Sendmail's and Postfix's, Gmail's and Exchange's
  older ones). GNU Mailman's detectors (``flufl.bounce``, tested on a hundred real bounces) find
  the addresses; the status code and words said of each are read from the text that follows
  its first mention.

Either shape is read only from a mail sent as a report is sent (``from_a_mail_system``): with
the null sender ``<>``, or by a mail daemon or a postmaster. A person's mail, a reply that
quotes a report or a report a recipient forged in a mail client, comes from the person's own
address: it is no report, and is stored as received mail like any other.

A report names the mail it returns by the Message-ID of the returned message's headers (a
``message/rfc822`` or ``text/rfc822-headers`` part, or a copy quoted in the body), then by its
own In-Reply-To and References.
"""

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.parser import BytesHeaderParser, BytesParser
from email.utils import parseaddr, parsedate_to_datetime
from html.parser import HTMLParser

from flufl.bounce import all_failures

FAILED, DELAYED = "failed", "delayed"
MAX_DIAGNOSTIC = 1000  # characters of a recipient's diagnostic that we keep
MAX_REGION = 3000  # characters after an address's first mention searched for its status
STATUS_PARTS = ("message/delivery-status", "message/global-delivery-status")  # RFC 3464, 6533
RETURNED_MESSAGES = ("message/rfc822", "message/global")
RETURNED_HEADERS = ("text/rfc822-headers", "message/global-headers")
ENCODINGS = ("base64", "quoted-printable")  # of a part's text, that the parser leaves as it is
RECIPIENT_FIELDS = ("Action", "Final-Recipient", "Original-Recipient")
INLINE_RECIPIENT = re.compile(r"^(?:Final|Original)-Recipient:", re.I | re.M)
# An enhanced status code (RFC 3463), e.g. 5.1.1; not a piece of an IP address or a version.
STATUS_CODE = re.compile(r"(?<![\d.])([245]\.\d{1,3}\.\d{1,3})(?!\.?\d)")
REPLY_CODE = re.compile(r"\s*([245])\d\d\b")  # an SMTP reply's basic code, at its start
MESSAGE_ID = re.compile(r"<[^<>\s]+>")
# A Message-ID line of a returned message copied into the body (qmail, Exim, Gmail's older).
QUOTED_MESSAGE_ID = re.compile(r"^[ \t>]*Message-Id:[ \t]*(<[^<>\s]+>)", re.I | re.M)
# The first header of a returned message copied into the body: where its report ends.
QUOTED_HEADERS = re.compile(
    r"^[ \t>]*(?:Return-Path|Received|DKIM-Signature|Message-Id|X-Received):", re.I | re.M
)
DIAGNOSTIC_LINE = re.compile(r"^[ \t]*Diagnostic-Code:[ \t]*(.*(?:\n[ \t]+\S.*)*)", re.I | re.M)
DAEMONS = ("mailer-daemon", "mailer_daemon", "mailerdaemon", "mail-daemon", "postmaster")


@dataclass(frozen=True)
class FailedRecipient:
    """One recipient a report says was not delivered (yet)."""

    address: str  # bare, lower case
    action: str  # RFC 3464's: "failed" (given up) or "delayed" (still trying)
    status: str | None  # the enhanced status code, e.g. "5.1.1"
    diagnostic: str | None  # what the receiving server said, e.g. "550 5.1.1 User unknown"
    permanent: bool  # given up (failed) or a 5.x.x status


@dataclass(frozen=True)
class BounceReport:
    """A delivery report received as mail."""

    original_message_ids: tuple[str, ...]  # "<id@domain>": the returned message's first
    failures: tuple[FailedRecipient, ...]
    reported_at: datetime | None = None  # the report's Date, if it has a readable one

    @property
    def bounces(self):
        """The recipients given up on for good: only these are bounces (a delayed one is
        still being tried)."""
        return tuple(f for f in self.failures if f.action == FAILED and f.permanent)


def read_report(inbound):
    """The ``BounceReport`` of ``inbound`` (an ``InboundMail``), or None if it is not one."""
    if not from_a_mail_system(inbound):
        return None
    message = _message(inbound)
    blocks = _recipient_blocks(message)  # None: no delivery-status part
    if blocks is None:
        blocks = _inline_blocks(_report_text(message)) or None
    if blocks:  # RFC 3464's fields
        failures = _dedupe(filter(None, map(_block_failure, blocks)))
    else:  # a status part without fields, or plain words
        failures = _heuristic_failures(message)
    if blocks is None and not failures:
        return None  # a daemon's mail that reports no failure (a postmaster's answer)
    return BounceReport(
        original_message_ids=_original_message_ids(inbound, message),
        failures=tuple(failures),
        reported_at=_date(inbound.header("Date")),
    )


# The message -----------------------------------------------------------------------------


def _message(inbound):
    """The report as an ``email`` message: ``raw`` parsed, else rebuilt from the parts."""
    data = inbound.raw if inbound.raw else _rebuilt(inbound)
    return BytesParser(policy=policy.default).parsebytes(data)


def _rebuilt(inbound):
    """The MIME text of a mail a way in gave as parts: its headers, its text (or its html as
    text), and the attachments that carry a report, in a ``multipart/report`` if one is its
    delivery status."""
    boundary = f"=_report_{uuid.uuid4().hex}"
    carried = [
        attachment
        for attachment in inbound.attachments
        if _type(attachment.content_type) in STATUS_PARTS + RETURNED_MESSAGES + RETURNED_HEADERS
    ]
    is_report = any(_type(a.content_type) in STATUS_PARTS for a in carried)
    kind = "report; report-type=delivery-status" if is_report else "mixed"
    skipped = ("content-type", "content-transfer-encoding", "mime-version")
    lines = [
        f"{name}: {_one_line(value)}"
        for name, value in inbound.headers
        if name.lower() not in skipped
    ]
    lines += ["MIME-Version: 1.0", f'Content-Type: multipart/{kind}; boundary="{boundary}"', ""]
    body = inbound.text if inbound.text is not None else _html_text(inbound.html)
    parts = [("text/plain; charset=utf-8", (body or "").encode("utf-8", "replace"))]
    parts += [(_type(a.content_type), a.content) for a in carried]
    data = "\r\n".join(lines).encode("utf-8", "replace")
    for content_type, content in parts:
        head = f"--{boundary}\r\nContent-Type: {content_type}\r\n"
        head += "Content-Transfer-Encoding: 8bit\r\n\r\n"
        data += b"\r\n" + head.encode() + content.rstrip(b"\r\n") + b"\r\n"
    return data + f"--{boundary}--\r\n".encode()


def _type(content_type):
    """A Content-Type's type/subtype, lower case, without its parameters."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def _one_line(value):
    """A header value on one line."""
    return " ".join(str(value).split())


class _TextOfHtml(HTMLParser):
    """The text of an html body, a line per block (for an html-only report)."""

    BLOCKS = {"p", "div", "br", "tr", "li", "table", "h1", "h2", "h3", "pre", "blockquote"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.pieces = []
        self.hidden = 0  # inside <style> or <script>

    def handle_starttag(self, tag, attrs):
        self.hidden += tag in ("style", "script")
        if tag in self.BLOCKS:
            self.pieces.append("\n")

    def handle_endtag(self, tag):
        if tag in ("style", "script"):
            self.hidden = max(0, self.hidden - 1)
        if tag in self.BLOCKS:
            self.pieces.append("\n")

    def handle_data(self, data):
        if not self.hidden:
            self.pieces.append(data)


def _html_text(html):
    """The text of ``html``, or None."""
    if not html:
        return None
    reader = _TextOfHtml()
    reader.feed(html)
    reader.close()
    return "".join(reader.pieces)


def _own_parts(part):
    """``part`` and its parts, depth first, without going into a message it returns."""
    yield part
    if part.get_content_maintype() == "multipart" and isinstance(part.get_payload(), list):
        for sub in part.get_payload():
            yield from _own_parts(sub)


def _header(message, name):
    """The first raw value of the header ``name`` of a parsed part, on one line, or None.

    Raw: a report's fields are plain text, and the ``email`` package's parse of a malformed
    header can raise."""
    wanted = name.lower()
    for key, value in message.raw_items():
        if key.lower() == wanted:
            return _clean(value)
    return None


def _clean(text):
    """``text`` on one line, as valid UTF-8 (a byte the parser could not decode becomes
    U+FFFD), without NULs (PostgreSQL text holds none)."""
    text = str(text).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return " ".join(text.replace("\x00", "").split())


def _body_text(part):
    """The decoded text of a ``text/*`` part ("" if it has none)."""
    data = part.get_payload(decode=True) or b""
    charset = part.get_content_charset() or "utf-8"
    try:
        return data.decode(charset, "replace")
    except LookupError:  # a charset Python does not know
        return data.decode("utf-8", "replace")


def _report_text(message):
    """The report's own words: its text parts (its html ones, if it has no text part), not
    those of the message it returns."""
    parts = [p for p in _own_parts(message) if not p.is_multipart()]
    texts = [_body_text(p) for p in parts if p.get_content_type() == "text/plain"]
    if not any(text.strip() for text in texts):
        htmls = [p for p in parts if p.get_content_type() == "text/html"]
        texts = [_html_text(_body_text(p)) or "" for p in htmls]
    return "\n\n".join(texts).replace("\r\n", "\n")


# RFC 3464 ---------------------------------------------------------------------------------


def _recipient_blocks(message):
    """The per-recipient field blocks of the report's delivery-status part, or None if it has
    none (not an RFC 3464 report).

    A block is a recipient's if it has an Action or a recipient field: the per-message block
    that should come first (Reporting-MTA, Arrival-Date) is missing from some (McAfee's)."""
    for part in _own_parts(message):
        if part.get_content_type() in STATUS_PARTS:
            return [block for block in _status_blocks(part) if _is_recipient_block(block)]
    return None


def _inline_blocks(text):
    """The recipient blocks of RFC 3464 fields written into the body (a report whose MIME
    structure was lost on the way, or an MTA that writes them there)."""
    parser = BytesHeaderParser(policy=policy.default)
    paragraphs = re.split(r"\n(?:[ \t]*\n)+", text)
    blocks = [
        parser.parsebytes(paragraph.strip().encode("utf-8", "replace") + b"\n")
        for paragraph in paragraphs
        if INLINE_RECIPIENT.search(paragraph)
    ]
    return [block for block in blocks if _is_recipient_block(block)]


def _is_recipient_block(block):
    """Whether a delivery-status block is about a recipient."""
    return any(_header(block, name) for name in RECIPIENT_FIELDS)


def _status_blocks(part):
    """The field blocks of a delivery-status part, as parsed messages.

    The ``email`` package parses them itself, but as they stand: a part that an MTA encoded
    (base64, quoted-printable) is decoded and split into its blocks here."""
    payload = part.get_payload()
    encoding = (_header(part, "Content-Transfer-Encoding") or "").lower()
    if isinstance(payload, list) and encoding not in ENCODINGS:
        return payload
    data = _status_bytes(part, payload, encoding)
    parser = BytesHeaderParser(policy=policy.default)
    blocks = re.split(rb"\r?\n(?:[ \t]*\r?\n)+", data.strip())
    return [parser.parsebytes(block + b"\n") for block in blocks if block.strip()]


def _status_bytes(part, payload, encoding):
    """The decoded bytes of a delivery-status part whose text is in ``encoding``."""
    if isinstance(payload, list):  # parsed as blocks of encoded text: join them back first
        text = "".join(block.as_string() for block in payload)
        data = f"Content-Transfer-Encoding: {encoding}\n\n{text}".encode("utf-8", "surrogateescape")
        part = BytesParser(policy=policy.default).parsebytes(data)
    return part.get_payload(decode=True) or b""


def _block_failure(block):
    """The ``FailedRecipient`` of one recipient's fields, or None: delivered, relayed or
    expanded (a success notice), or no address."""
    action = (_header(block, "Action") or "").lower().split(" ", 1)[0].rstrip(";")
    if action == "error":  # OpenSMTPD's word for failed (as flufl.bounce reads it)
        action = FAILED
    if action not in (FAILED, DELAYED):
        return None
    # The address we sent to: Original-Recipient when the report has it (Final-Recipient may be
    # where an alias or a forward led).
    address = (
        _typed_address(_header(block, "Original-Recipient"))
        or _typed_address(_header(block, "Final-Recipient"))
        or _typed_address(_header(block, "X-Actual-Recipient"))
    )
    if address is None:
        return None
    diagnostic = _diagnostic(_header(block, "Diagnostic-Code"))
    status = _status_code(_header(block, "Status")) or _status_of_reply(diagnostic)
    return FailedRecipient(
        address=address,
        action=action,
        status=status,
        diagnostic=diagnostic,
        permanent=action == FAILED or (status or "").startswith("5"),
    )


def _typed_address(value):
    """The bare address of a field ``address-type; address`` (``rfc822; ann@example.com``;
    some MTAs leave out the type), lower case, or None."""
    if not value:
        return None
    kind, separator, rest = value.partition(";")
    return _bare(rest if separator and "@" not in kind else value)


def _bare(text):
    """The bare address in ``text`` (``<ann@Example.com>``, ``Ann <ann@example.com>``), lower
    case, or None if it holds none."""
    address = parseaddr(text.strip())[1].strip().strip(".").lower()
    local, at, domain = address.rpartition("@")
    return address if at and local and "." in domain else None


def _status_code(text):
    """The first enhanced status code in ``text``, or None."""
    found = STATUS_CODE.search(text or "")
    return found.group(1) if found else None


def _status_of_reply(text):
    """The status of a server's reply without a Status field: its enhanced code, else the
    class of its basic reply code (RFC 3463: ``550`` is ``5.0.0``), else None."""
    found = _status_code(text)
    if found is None and text and (basic := REPLY_CODE.match(text)):
        found = f"{basic.group(1)}.0.0"
    return found


def _diagnostic(value):
    """A Diagnostic-Code without its type (``smtp;``), cut to ``MAX_DIAGNOSTIC``, or None."""
    if not value:
        return None
    kind, separator, rest = value.partition(";")
    if separator and re.fullmatch(r"[\w.-]+", kind.strip()):
        value = rest
    return _clean(value)[:MAX_DIAGNOSTIC] or None


def _dedupe(failures):
    """The first failure of each address, in order."""
    seen = {}
    for failure in failures:
        seen.setdefault(failure.address, failure)
    return list(seen.values())


# The MTAs' own words ----------------------------------------------------------------------


def from_a_mail_system(inbound):
    """Whether ``inbound`` was sent as a report is: with the null sender (RFC 5321, section
    4.5.5: a non-delivery report MUST be sent with the null reverse-path ``<>``), or by a mail
    daemon or a postmaster (its sender's or its From's local part: Sendmail's
    ``MAILER-DAEMON@host``, Exchange's ``postmaster@domain``).

    The sender is the envelope's when the way in gives it (the SMTP door's ``MAIL FROM``,
    Mailgun's ``sender``, SendGrid's ``envelope``, Postmark's ``Return-Path``); else the
    ``Return-Path`` header the delivering server wrote. Not the Subject, an
    ``X-Failed-Recipients`` header or a display name ("Mail Delivery System"): anyone writes
    those from an ordinary mail client, and a report would let them bounce another recipient.
    """
    sender = inbound.envelope_from
    if sender is None:
        sender = inbound.header("Return-Path")
    if sender is not None and _one_line(sender) in ("", "<>"):
        return True
    return any(_is_daemon(address) for address in (sender, inbound.from_address))


def _is_daemon(address):
    """Whether ``address`` (with or without a display name) is a mail daemon's or a
    postmaster's."""
    bare = parseaddr(address or "")[1]
    local = bare.rpartition("@")[0] if "@" in bare else bare
    return local.lower() in DAEMONS


def _heuristic_failures(message):
    """The failures that GNU Mailman's detectors find, each with the status code and words
    said of it: given up on (their permanent ones), else delayed."""
    if not _header(message, "From"):  # flufl.bounce's Yale detector needs one, if empty
        del message["From"]
        message["From"] = "<>"
    try:
        temporary, permanent = all_failures(message)
    except Exception:  # noqa: BLE001 - a detector tripped on a malformed mail: it found no one
        return []
    text = _report_words(message)
    addresses = {_decoded(a): FAILED for a in permanent}
    for raw in temporary:
        addresses.setdefault(_decoded(raw), DELAYED)
    addresses.pop(None, None)
    failures = []
    for address, action in sorted(addresses.items()):
        others = [a for a in addresses if a != address]
        status, diagnostic = _explanation(text, address, others, alone=len(addresses) == 1)
        failures.append(
            FailedRecipient(
                address=address,
                action=action,
                status=status,
                diagnostic=diagnostic,
                permanent=action == FAILED or (status or "").startswith("5"),
            )
        )
    return failures


def _report_words(message):
    """The report's own words, up to a copy of the returned message (qmail, Exim and Gmail
    copy it into the body)."""
    text = _report_text(message)
    copy = QUOTED_HEADERS.search(text)
    return text[: copy.start()] if copy else text


def _decoded(raw):
    """An address as flufl.bounce gives it (ASCII bytes), bare and lower case, or None."""
    return _bare(raw.decode("ascii", "replace"))


def _explanation(text, address, others, alone):
    """``(status, diagnostic)`` said of ``address`` in the report's ``text``.

    Read from the line of its first mention up to the next failed address (qmail's
    ``<address>:`` block, Exim's indented lines, Postfix's and Sendmail's paragraphs, Gmail's
    "The error that the other server returned was"): a Diagnostic-Code line, else the
    paragraph with the first enhanced status code, else all of it. A report with one failure
    whose text never names it (Exim's ``X-Failed-Recipients``) is read whole."""
    lowered = text.lower()
    start = lowered.find(address)
    if start < 0:
        if not alone:
            return None, None
        start = 0
    start = text.rfind("\n", 0, start) + 1  # the whole line of the mention
    mentions = [lowered.find(other, start + 1) for other in others]
    end = min([at for at in mentions if at > 0] + [len(text), start + MAX_REGION])
    region = text[start:end]
    line = DIAGNOSTIC_LINE.search(region)
    if line:
        diagnostic = _diagnostic(line.group(1))
        return _status_code(diagnostic) or _status_code(region), diagnostic
    code = STATUS_CODE.search(region)
    if code is None:  # the words alone (Gmail's "The recipient server did not accept ...")
        return None, _clean(region)[:MAX_DIAGNOSTIC] or None
    return code.group(1), _clean(_paragraph(region, code.start()))[:MAX_DIAGNOSTIC] or None


def _paragraph(text, at):
    """The paragraph of ``text`` (lines between blank lines) that holds position ``at``."""
    begin = text.rfind("\n\n", 0, at)
    finish = text.find("\n\n", at)
    return text[begin + 1 if begin >= 0 else 0 : finish if finish >= 0 else len(text)]


# What the report returns ------------------------------------------------------------------


def _original_message_ids(inbound, message):
    """The Message-IDs of the returned message (its headers in a part, or copied into the
    body), then the report's In-Reply-To and References; each once, in that order."""
    found = []
    for part in _own_parts(message):
        kind = part.get_content_type()
        if kind in RETURNED_MESSAGES:
            payload = part.get_payload()
            if isinstance(payload, list) and payload:
                found += _message_ids(_header(payload[0], "Message-ID"))
        elif kind in RETURNED_HEADERS:
            data = part.get_payload(decode=True) or b""
            headers = BytesHeaderParser(policy=policy.default).parsebytes(data)
            found += _message_ids(_header(headers, "Message-ID"))
    found += QUOTED_MESSAGE_ID.findall(_report_text(message))
    found += _message_ids(inbound.in_reply_to)
    for reference in inbound.references:
        found += _message_ids(reference)
    return tuple(dict.fromkeys(found))


def _message_ids(value):
    """The ``<id@domain>`` tokens of a header value (a bare ``id@domain`` gets its brackets)."""
    if not value:
        return []
    found = MESSAGE_ID.findall(value)
    if not found and "@" in value and " " not in value.strip():
        found = [f"<{value.strip()}>"]
    return found


def _date(value):
    """The aware datetime of a Date header, or None."""
    try:
        moment = parsedate_to_datetime(value) if value else None
    except (TypeError, ValueError, IndexError):
        return None
    return moment if moment is not None and moment.tzinfo is not None else None


# Automatic replies ------------------------------------------------------------------------

# Headers whose presence marks an automatic reply, as the software that sets them writes them
# (jpmckinney/multi_mail's "Detecting autoresponders", from real mail): Gmail's and Yahoo's
# X-Autoreply, cPanel's and BoxTrapper's X-Autorespond, Domain Technologie Control's
# X-AutoReply-From and X-Mail-Autoreply.
AUTO_REPLY_HEADERS = ("X-Autoreply", "X-Autorespond", "X-AutoReply-From", "X-Mail-Autoreply")
# Precedence values of automatic mail (Discourse's receiver reads them so; Gmail's vacation
# replies say bulk, cPanel's auto_reply). Not "list": a person's post to a mailing list says so.
AUTO_PRECEDENCE = ("auto_reply", "bulk", "junk")
# Subjects of the responders that set none of those headers (Exchange, Outlook, Lotus Notes):
# Outlook's "Automatic reply:" and its translations, Exchange's "Out of Office", and the list
# Discourse's receiver matches ("Abwesenheitsnotiz", "Autosvar", "Réponse automatique", ...).
AUTO_REPLY_SUBJECT = re.compile(
    r"^\s*(?:(?:re|aw|sv|vs|antw|fw|fwd)\s*:\s*)*"
    r"(?:auto(?:matic|matisch|matische|matisk|matico|matica)?[ -]?(?:reply|response|antwort"
    r"|antwoord|svar|risposta|respuesta|answer)\b|auto:|autosvar\b|abwesenheitsnotiz"
    r"|out of (?:the )?office|réponse automatique|respuesta automática|risposta automatica"
    r"|risposta non al computer|fuori sede|frånvaro|automatisk svar|afwezig\b"
    r"|automaattinen vastaus|odpowiedź automatyczna|resposta automática)"
    r"|\bis out of the office\b",
    re.I,
)


def is_auto_reply(inbound):
    """Whether ``inbound`` is an automatic reply (out of office, vacation, autoresponder).

    RFC 3834: an ``Auto-Submitted`` other than ``no`` (``auto-replied``, ``auto-generated``,
    ``auto-notified``; a comment may follow) marks one. So do the headers responders that
    predate it set (``AUTO_REPLY_HEADERS``; ``X-Autogenerated: Reply``, CommuniGate Pro's), an
    automatic ``Precedence`` (``AUTO_PRECEDENCE``), and a responder's Subject
    (``AUTO_REPLY_SUBJECT``). ``X-Auto-Response-Suppress`` alone marks none: it asks others not
    to answer, and Outlook and newsletters set it on ordinary mail (as arp242.net's survey of
    100,000 mails and Discourse's receiver, which leaves it out, read it). A bounce report is
    automatic too: read it with ``read_report`` first.
    """
    submitted = _token(inbound.header("Auto-Submitted"))
    if submitted and submitted != "no":
        return True
    if any(_token(inbound.header(name)) not in (None, "no") for name in AUTO_REPLY_HEADERS):
        return True
    if _token(inbound.header("X-Autogenerated")) == "reply":
        return True
    precedence = _token(inbound.header("Precedence") or inbound.header("X-Precedence"))
    if precedence in AUTO_PRECEDENCE:
        return True
    return AUTO_REPLY_SUBJECT.search(inbound.subject or "") is not None


def _token(value):
    """The first word of a header value, lower case, without a comment; None if absent."""
    if value is None:
        return None
    text = re.sub(r"\([^)]*\)", " ", str(value)).strip().lower()
    return re.split(r"[\s;,]+", text, maxsplit=1)[0] if text else ""
