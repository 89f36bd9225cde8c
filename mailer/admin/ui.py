"""The admin's building blocks, one definition each, for the Python formatters of the list views
and for the templates alike (``init_app`` makes them Jinja globals):

- ``badge(status)``: a status as a coloured badge (``.badge.st-<status>`` in ``admin.css``);
  its tone says whether it is fine, waiting, trouble or final.
- ``readable(text)``: a long value wrapped over a few lines in its cell, the whole of it in the
  tooltip (``.readable``).
- ``link_to(endpoint, id)``: an id as a link to its page, shortened to its first characters
  (the whole id in the tooltip).
- ``gone_mark()``: the mark of mail whose worker stopped beating.

Pages the coming issues add use the same blocks, and the CSS classes beside them: ``.summary``
(the card that opens a record's page), ``.timeline`` (one history table with its actor column),
``.compact`` (a table that stacks at a narrow width) and ``.banner``.

The list calls ``badge`` and ``readable`` for every row, so they escape and join with an
f-string rather than ``Markup.format``, which is much slower (BENCHMARKS.md).
"""

from flask import url_for
from markupsafe import Markup, escape

# Each status's tone: the colour of its badge.
TONES = {
    "queued": "wait",
    "scheduled": "wait",
    "sending": "busy",
    "sent": "ok",
    "delivered": "ok",
    "bounced": "bad",
    "complained": "bad",
    "suppressed": "muted",
    "failed": "bad",
    "cancelled": "muted",
    "deferred": "wait",
    "unsubscribed": "muted",
    # A breaker's states and a webhook's delivery.
    "closed": "ok",
    "open": "bad",
    "half_open": "wait",
    "paused": "wait",
    "pending": "wait",
    "done": "ok",
    "gave_up": "bad",
}
SHORT_ID = 8  # characters of an id shown in a link


def badge(status, title=None):
    """``status`` as a coloured badge (its tone from ``TONES``)."""
    if not status:
        return ""
    status = escape(status)
    tone = TONES.get(status, "muted")
    titled = f' title="{escape(title)}"' if title else ""
    return Markup(
        f'<span class="badge st st-{status} tone-{tone}" data-status="{status}"{titled}>'
        f"{status}</span>"
    )


def gone_mark(worker):
    """The mark of mail in ``sending`` whose worker ``worker`` has no heartbeat."""
    return Markup(
        '<span class="badge tone-bad worker-gone" data-worker-gone="{}" '
        'title="{} has not sent a heartbeat: it stopped while holding this mail">'
        "worker gone</span>"
    ).format(worker or "", worker or "its worker")


def readable(text, css="readable"):
    """A long value wrapped over a few lines of its cell; the whole of it on hover."""
    text = escape((text or "").strip())
    if not text:
        return ""
    return Markup(f'<span class="{escape(css)}" title="{text}">{text}</span>')


def link_to(endpoint, record_id, **args):
    """``record_id`` as a link to its page (``endpoint``), its first characters shown."""
    if record_id is None or record_id == "":
        return ""
    shown = str(record_id)
    return Markup('<a href="{}" class="id-link" title="{}" data-id="{}">{}</a>').format(
        url_for(endpoint, id=shown, **args), shown, shown, shown[:SHORT_ID]
    )


def mail_link(mail_id):
    """A mail's id as a link to the mail's page."""
    return link_to("email.details_view", mail_id)


def inbound_link(inbound_id):
    """A received mail's id as a link to its page."""
    return link_to("inbound.details_view", inbound_id)


def plural(count, one, many=None):
    """``1 mail``, ``2 mails``: a count with its noun (``many`` when not just ``one`` + s)."""
    return f"{count:,} {one if count == 1 else (many or one + 's')}"


GLOBALS = {
    "badge": badge,
    "gone_mark": gone_mark,
    "readable": readable,
    "link_to": link_to,
    "mail_link": mail_link,
    "inbound_link": inbound_link,
    "plural": plural,
}
