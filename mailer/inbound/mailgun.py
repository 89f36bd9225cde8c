"""Mailgun's inbound mail: what a route's ``forward("https://host/inbound/mailgun")`` posts.

Mailgun posts a form (urlencoded, or multipart with the attachments), signed as its delivery
webhooks are (``timestamp``, ``token``, ``signature``: the endpoint checks them). Two shapes:

- **fully parsed** (any URL): ``recipient`` and ``sender`` (the SMTP envelope), ``from``,
  ``subject``, ``body-plain``, ``body-html``, ``stripped-text`` (the reply without its quoted
  history), ``message-headers`` (a JSON list of ``[name, value]``, in order), the files
  ``attachment-1`` ... ``attachment-<attachment-count>``, and ``content-id-map`` (a JSON object
  ``{"<cid>": "attachment-2"}`` naming the inline ones). Every field is UTF-8.
- **raw MIME**, when the route's URL ends in ``mime`` (``/inbound/mailgun/mime``): ``recipient``,
  ``sender``, ``from``, ``subject`` and the whole message in ``body-mime``.

Mailgun's spam filter says its verdict in the headers ``X-Mailgun-Sflag`` (``Yes``/``No``) and
``X-Mailgun-Sscore``. The signature's ``token`` is the delivery's id: Mailgun retrying a post
sends the same one. A store() notification (an ``attachments`` JSON field) or a legacy tracking
webhook (an ``event`` field) posted here is refused: its route or webhook is set up wrong.
"""

import json
import re

from mailer.inbound import mime
from mailer.inbound.fields import (
    Malformed,
    content_id,
    filename,
    first,
    from_headers,
    header_text,
    mimetype,
    spam_score,
)
from mailer.inbound.message import InboundAttachment, InboundMail

MAILGUN = "mailgun"
SIGNATURE_FIELDS = ("timestamp", "token", "signature")
ATTACHMENT = re.compile(r"attachment-(\d+)")
HEADERS_EXPECTED = "Must be a JSON list of [name, value] pairs, as Mailgun posts it"


def inbound(form):
    """The ``InboundMail`` of Mailgun's posted ``form`` (``fields.Form``)."""
    _refuse_other_posts(form)
    envelope = {
        "envelope_from": form.text("sender"),  # "": the null sender, <>
        "envelope_to": _recipients(form.text("recipient")),
        "delivery_id": form.text("token"),
    }
    raw = form.raw("body-mime")
    if raw is not None:
        mail = mime.parse(raw, MAILGUN, "body-mime", **envelope)
    else:
        mail = _parsed(form, envelope)
    return mime.with_extras(mail, **_spam(mail.headers))


def _refuse_other_posts(form):
    """Refuse what Mailgun posts elsewhere: a store() notification, a tracking webhook."""
    if form.raw("attachments") is not None:
        raise Malformed(
            "attachments",
            "A store() notification: the route must forward() to this URL",
        )
    event = form.text("event")
    if event is not None and event != "inbound":
        raise Malformed(
            "event",
            f"A {event!r} tracking webhook: set it to /webhooks/mailgun, not the inbound URL",
        )


def _recipients(value):
    """The envelope's recipients of ``recipient`` (one, or several comma separated)."""
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


def _parsed(form, envelope):
    """The mail of the fully parsed shape."""
    headers = _headers(form)
    fields = from_headers(headers)
    return InboundMail(
        source=MAILGUN,
        **envelope,
        **{
            **fields,
            "from_address": form.text("from") or fields["from_address"],
            "subject": form.text("subject") or fields["subject"],
        },
        text=form.text("body-plain"),
        html=form.text("body-html"),
        stripped_text=form.text("stripped-text"),
        headers=headers,
        attachments=_attachments(form),
    )


def _headers(form):
    """``message-headers``: the headers in order, as (name, text)."""
    pairs = form.json("message-headers", list, HEADERS_EXPECTED)
    if pairs is None:
        raise Malformed("message-headers", "Missing: " + HEADERS_EXPECTED)
    if not all(
        isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) for p in pair)
        for pair in pairs
    ):
        raise Malformed("message-headers", HEADERS_EXPECTED)
    return tuple((name, header_text(name, value)) for name, value in pairs)


def _attachments(form):
    """The files ``attachment-1`` ... ``attachment-<attachment-count>``, the inline ones with
    their Content-ID from ``content-id-map``."""
    count = _count(form)
    inline = _content_ids(form)
    files = []
    for number in range(1, count + 1):
        name = f"attachment-{number}"
        upload = form.file(name)
        if upload is None:
            raise Malformed(name, f"Missing: attachment-count says {count}")
        kind = mimetype(upload.content_type)
        files.append(
            InboundAttachment(
                filename=filename(upload.filename, number, kind),
                content_type=kind,
                content=upload.content,
                content_id=inline.get(name),
            )
        )
    return tuple(files)


def _count(form):
    """``attachment-count``, or the number of attachment files posted without one."""
    text = form.text("attachment-count")
    if text is None:
        return sum(1 for name in form.files if ATTACHMENT.fullmatch(name))
    if not text.strip().isdigit():
        raise Malformed("attachment-count", "Must be a whole number")
    return int(text)


def _content_ids(form):
    """``content-id-map`` turned round: {attachment field: Content-ID}. Mailgun has been seen
    to repeat a Content-ID (even an empty one) for several files, so the object's pairs are
    read in order rather than as a dict."""
    text = form.text("content-id-map")
    if text is None:
        return {}
    try:
        pairs = json.loads(text, object_pairs_hook=ObjectPairs)
    except (ValueError, RecursionError):
        pairs = None
    if not isinstance(pairs, ObjectPairs) or not all(isinstance(v, str) for _, v in pairs):
        raise Malformed(
            "content-id-map", 'Must be a JSON object of {"<content id>": "attachment-<n>"}'
        )
    return {value: content_id(key) for key, value in pairs}


class ObjectPairs(list):
    """A JSON object read as its (key, value) pairs, in order."""


def _spam(headers):
    """Mailgun's verdict: ``X-Mailgun-Sflag`` Yes (spam) or No (ham), ``X-Mailgun-Sscore``."""
    flag = (first(headers, "X-Mailgun-Sflag") or "").strip().lower()
    verdict = {"yes": "spam", "no": "ham"}.get(flag)
    return {"spam_verdict": verdict, "spam_score": spam_score(first(headers, "X-Mailgun-Sscore"))}
