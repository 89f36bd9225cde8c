"""The admin's received mail: every received mail listed, newest first, filtered by tenant,
way in, automatic reply or the mail it answers; and its page, the answer first: who wrote to
whom about what, the mail of ours it answers (a link), its text and its HTML in the same
sandboxed frame a mail's page uses (``HTML_BODY_POLICY``: no script, no form, nothing loaded),
its attachments (each a download that runs nothing), and every header.

Read only: received mail is written by ``mailer.queue.inbound.receive`` and purged with
``RETENTION_DAYS``.
"""

from datetime import datetime

from flask import Response, abort, url_for
from flask_admin import expose
from flask_admin.contrib.sqla import ModelView
from flask_admin.contrib.sqla.filters import FilterEqual
from flask_admin.model import typefmt
from markupsafe import Markup

from mailer.admin.views import (
    HTML_BODY_POLICY,
    MAX_OFFSET,
    Protected,
    UTCFilterConverter,
    UUIDEqual,
    _address_list,
    _mail_id,
    _readable,
    _utc,
    _uuids,
    choice_filters,
)
from mailer.api.inbound import download
from mailer.database import transaction
from mailer.inbound.message import SOURCES
from mailer.queue import inbound
from models import Inbound, db


def _auto_reply(_view, _context, model, _name):
    """An automatic reply's mark; nothing for a reply written by someone."""
    if not model.auto_reply:
        return ""
    return Markup('<span class="badge badge-secondary" data-auto-reply="1">auto-reply</span>')


class InboundView(Protected, ModelView):
    """Received mail: the list, its filters, and each one's page."""

    can_create = False
    can_edit = False
    can_delete = False
    can_view_details = True
    page_size = 50
    list_template = "admin/mail_list.html"  # the menu bar that keeps to the CSP
    details_template = "admin/inbound_details.html"
    filter_converter = UTCFilterConverter()
    named_filter_urls = True  # ?flt0_in_reply_to_equals=<mail id>, the mail page's link
    column_list = (
        "received_at",
        "source",
        "from_address",
        "to_address",
        "subject",
        "in_reply_to_mail_id",
        "auto_reply",
        "tenant",
        "spam_verdict",
    )
    column_labels = {
        "from_address": "From",
        "to_address": "To",
        "in_reply_to_mail_id": "In Reply To",
        "auto_reply": "Auto-reply",
        "reference_ids": "References",
    }
    column_type_formatters = {**typefmt.BASE_FORMATTERS, datetime: _utc}
    column_type_formatters_detail = {**typefmt.DETAIL_FORMATTERS, datetime: _utc}
    column_default_sort = [("received_at", True), ("id", True)]
    column_searchable_list = ("from_address", "subject", "to_address")
    column_filters = (
        FilterEqual(Inbound.tenant, "Tenant"),
        *choice_filters(Inbound.source, "Source", SOURCES),
        UUIDEqual(Inbound.in_reply_to_mail_id, "In reply to"),
        "auto_reply",
        "received_at",
    )
    column_formatters = {
        "from_address": _readable,
        "to_address": _readable,
        "subject": _readable,
        "in_reply_to_mail_id": _mail_id,
        "auto_reply": _auto_reply,
    }
    # The summary, bodies, attachments and headers are shown above the table.
    column_details_list = (
        "id",
        "message_id",
        "in_reply_to",
        "reference_ids",
        "delivery_id",
        "envelope_from",
        "envelope_to",
        "cc",
        "spam_score",
        "spam_verdict",
    )
    column_formatters_detail = {
        "envelope_to": _address_list,
        "cc": _address_list,
        "reference_ids": _address_list,
    }

    def search_placeholder(self):
        """What the search box finds."""
        return "address or subject"

    def get_one(self, id):
        """The received mail with this id, or None if it is not a UUID."""
        found = _uuids([id])
        return db.session.get(Inbound, found[0]) if found else None

    def get_list(self, page, *args, **kwargs):
        """A page of the list: a negative ?page= shows the first (as the mail list's)."""
        size = kwargs.get("page_size") or self.page_size
        return super().get_list(min(max(page or 0, 0), MAX_OFFSET // size), *args, **kwargs)

    def render(self, template, **kwargs):
        """The details page also gets where its HTML preview comes from and the headers."""
        model = kwargs.get("model")
        if template == self.details_template and model is not None:
            kwargs["html_preview_url"] = (
                url_for(".html_body", inbound_id=str(model.id)) if model.html else None
            )
            kwargs["headers"] = [tuple(pair) for pair in model.headers or ()]
        return super().render(template, **kwargs)

    @expose("/<uuid:inbound_id>/body.html")
    def html_body(self, inbound_id):
        """The HTML body alone, for the preview's frame: as received, under the policy of a
        mail's preview (``HTML_BODY_POLICY``), which runs no script and loads nothing."""
        found = db.session.get(Inbound, inbound_id)
        if found is None or not found.html:
            abort(404)
        return Response(
            found.html,
            mimetype="text/html",
            headers={
                "Content-Security-Policy": HTML_BODY_POLICY,
                "X-Frame-Options": "SAMEORIGIN",
                "Referrer-Policy": "no-referrer",
                "Cache-Control": "no-store",
            },
        )

    @expose("/<uuid:inbound_id>/attachments/<int:position>")
    def attachment(self, inbound_id, position):
        """An attachment's bytes as the API serves them: a download that runs nothing; 404
        if there are none."""
        with transaction(single_statement=True) as conn:
            found = inbound.attachment(conn, inbound_id, position)
        if found is None or found["content"] is None:
            abort(404)
        return download(found["content"], found["content_type"], found["filename"], position)


def init_app(admin):
    """Add the received mail's view to ``admin``."""
    admin.add_view(InboundView(Inbound, db, name="Inbound", endpoint="inbound"))
