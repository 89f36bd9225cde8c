"""The operators' admin UI at ``/admin``: the dashboard (``mailer.admin.dashboard``, refreshing
itself
from ``/admin/dashboard.json``), every mail with its recipients and timeline and the actions on
it (retry, cancel, resend, release, send now: single on its page, bulk on the list, each with a
confirmation and recorded with who did it), a provider's breaker opened and closed by hand, the
list's CSV export (streamed), the suppression list, the client webhooks with their attempts,
the received mail (``mailer.admin.inbound``) and the audit log. Every change an operator makes
here is appended to the audit log (``audited``) in the transaction of the change.

Every page requires HTTP Basic (``ADMIN_USERNAME``/``ADMIN_PASSWORD``), or a loopback client
when no password is set; forms carry a CSRF token; pages carry a Content-Security-Policy and may
not be framed. A mail created here goes through the same validation and the same ``enqueue`` as
one posted to the API. Hostile query strings get a 400 or an empty list, never a 500.
"""

import csv
import io
import json
import secrets
import uuid
from datetime import UTC, datetime

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    request,
    session,
    stream_with_context,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface
from flask_admin import Admin, AdminIndexView, expose
from flask_admin.actions import action
from flask_admin.contrib.sqla import ModelView
from flask_admin.contrib.sqla.filters import (
    BaseSQLAFilter,
    DateTimeBetweenFilter,
    DateTimeEqualFilter,
    DateTimeGreaterFilter,
    DateTimeNotBetweenFilter,
    DateTimeNotEqualFilter,
    DateTimeSmallerFilter,
    FilterConverter,
    FilterEmpty,
    FilterEqual,
    FilterInList,
    FilterNotEqual,
)
from flask_admin.form import SecureForm
from flask_admin.model import typefmt
from flask_admin.model.template import DeleteRowAction, TemplateLinkRowAction
from flask_admin.theme import Bootstrap4Theme
from flask_admin.tools import iterdecode
from markupsafe import Markup
from sqlalchemy import false, func, or_, tuple_
from wtforms import SelectField, StringField, TextAreaField

from mailer.admin import chart, dashboard, ui
from mailer.api.auth import admin_allowed, client_address
from mailer.database import transaction
from mailer.events import outbox
from mailer.principals import TENANT_NAME
from mailer.queue import actions, audit, counts, heartbeats, reads, submit, suppressions
from mailer.shapes.mail import recipients_shown
from mailer.validation.mail import ValidationError, validate_address, validate_mail
from mailer.worker import circuit
from models import (
    HANDED_OFF,
    QUEUED,
    SENDING,
    STATUSES,
    WAITING,
    AuditLog,
    Email,
    Suppression,
    WebhookEndpoint,
    WebhookMessage,
    db,
)
from providers import REGISTRY

# The largest OFFSET PostgreSQL takes (a bigint); a page beyond it is past any table's end.
MAX_OFFSET = 2**63 - 1

ADMIN_URL = "/admin"
# Admin pages run nothing but Flask-Admin's own bundled files and our one inline script (by its
# nonce), and no other site may frame them: the Retry button could be clickjacked.
# (Bootstrap's style sheet draws a few icons as data: images.)
CONTENT_POLICY = (
    "default-src 'self'; script-src 'self'{nonce}; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)

# A list row's delete button that asks for confirmation without an inline handler (the list
# template imports csp_row_actions.html under this name).
CSP_DELETE_ROW = TemplateLinkRowAction("csp_row_actions.delete_row", "Delete Record")

LAST_ERROR_SHOWN = 80  # characters of last_error in the list; the whole of it on hover

# Form field of each API field, to show a validation error next to the right input.
FORM_FIELDS = {
    "from": "from_address",
    "to": "to",
    "cc": "cc",
    "bcc": "bcc",
    "reply_to": "reply_to",
    "subject": "subject",
    "text": "text",
    "html": "html",
}


class Protected:
    """Mixin: only an authenticated operator (or loopback, without a password) gets in."""

    def is_accessible(self):
        """Whether the request carries the admin credentials."""
        return admin_allowed()

    def inaccessible_callback(self, name, **kwargs):
        """Ask the browser for credentials."""
        return Response(
            "Admin credentials required.\n",
            401,
            {"WWW-Authenticate": 'Basic realm="mail service admin"'},
        )

    def _handle_view(self, name, **kwargs):
        """Before any page: the access check, then refuse a NUL anywhere in the query string.

        PostgreSQL text cannot hold a NUL, so no search or filter with one can match, and
        psycopg2 refuses to send it (a 500 if it got that far).
        """
        refused = super()._handle_view(name, **kwargs)
        if refused is None and any(
            "\x00" in key or "\x00" in value for key, value in request.args.items(multi=True)
        ):
            abort(400, "The query string must not contain NUL characters.")
        return refused


CREATED = "Record was successfully created."  # Flask-Admin's words after a create


class Reworded:
    """Mixin: after a record is created, say what was created, in place of Flask-Admin's
    "Record was successfully created." (``created_message``)."""

    @expose("/new/", methods=("GET", "POST"))
    def create_view(self):
        """Flask-Admin's create view, its flash message reworded."""
        response = super().create_view()
        created = g.pop("created_record", None)
        if created is not None:
            message = self.created_message(created)
            session["_flashes"] = [
                (category, message if text == CREATED else text)
                for category, text in session.get("_flashes", [])
            ]
        return response

    def created_message(self, record):
        """What the flash says of ``record``, just created."""
        raise NotImplementedError


class BreakerForm(SecureForm):
    """Open or close a provider's breaker by hand (CSRF-checked), with an optional reason."""

    reason = StringField("Reason")


def minute_counts():
    """This app's chart minutes counted so far (``dashboard.MinuteCounts``), kept per process."""
    return current_app.extensions.setdefault("dashboard_minutes", dashboard.MinuteCounts())


class DashboardView(Protected, AdminIndexView):
    """The admin's home page: the queue, the chart, the providers and the workers at a glance.

    The page draws ``dashboard.snapshot`` and then polls ``dashboard.json`` every
    ``POLL_SECONDS`` (``mailer/admin/static/dashboard.js``), so it stays current by itself.
    """

    POLL_SECONDS = 5

    @expose("/")
    def index(self):
        """Render every panel from one snapshot."""
        data = dashboard.snapshot(db.session.connection(), current_app.config, minute_counts())
        return self.render(
            "admin/dashboard.html",
            data=data,
            statuses=STATUSES,
            poll_ms=self.POLL_SECONDS * 1000,
            rate_minutes=dashboard.RATE_MINUTES,
            live_minutes=dashboard.LIVE_MINUTES,
            alive_within=heartbeats.ALIVE_WITHIN,
            tones=ui.TONES,
            breaker_form=BreakerForm(),
            action_form=SecureForm(),
        )

    @expose("/dashboard.json")
    def snapshot(self):
        """The panels as JSON, for the page to poll."""
        response = jsonify(
            dashboard.snapshot(db.session.connection(), current_app.config, minute_counts())
        )
        response.headers["Cache-Control"] = "no-store"
        return response

    @expose("/dashboard/chart.svg")
    def chart(self):
        """Sent, failed and bounced per minute over the last hour, as an SVG image."""
        svg = chart.minute_chart(dashboard.series(db.session.connection(), minute_counts()))
        return Response(svg, mimetype="image/svg+xml", headers={"Cache-Control": "no-store"})

    @expose("/workers/<path:worker>/release", methods=["POST"])
    def release_worker(self, worker):
        """Hand every mail worker ``worker`` holds back to the queue, if it is gone (no
        heartbeat); recorded on each mail with the operator, as the list's Release is."""
        if not SecureForm(request.form).validate():
            flash("The form's CSRF token is missing or expired; nothing was changed.", "error")
            return redirect(url_for(".index"))
        conn = db.session.connection()
        alive = {row["name"] for row in dashboard.alive_workers(conn)}
        if worker in alive:
            flash(f"{worker} is beating again: its mail was left with it.", "info")
            return redirect(url_for(".index"))
        released = actions.release_stuck(
            conn,
            dashboard.held_by(conn, worker),
            operator(),
            alive,
            current_app.config["MAX_ATTEMPTS"],
        )
        audited_mails(conn, "mail.release", released)
        db.session.commit()
        flash(
            f"{ui.plural(len(released), 'mail')} held by {worker} released to the queue.", "success"
        )
        return redirect(url_for(".index"))

    @expose("/providers/<provider>/<any(open, close):action>", methods=["POST"])
    def breaker(self, provider, action):
        """Open or close ``provider``'s breaker by hand; recorded with who, when and why."""
        if provider not in current_app.config["PROVIDERS"]:
            abort(404)
        form = BreakerForm(request.form)
        if not form.validate():
            flash("The form's CSRF token is missing or expired; nothing was changed.", "error")
            return redirect(url_for(".index"))
        reason = (form.reason.data or "").strip() or None
        conn = db.session.connection()
        if action == circuit.OPEN_BY_HAND:
            circuit.open_by_hand(conn, provider, operator(), reason)
            audited(conn, "breaker.open", provider, {"reason": reason})
            flash(
                f"{provider} opened by hand: workers skip it until it is closed by hand.", "success"
            )
        elif circuit.close_by_hand(conn, provider, operator(), reason):
            audited(conn, "breaker.close", provider, {"reason": reason})
            flash(f"{provider} closed by hand: workers send through it again.", "success")
        else:
            flash(
                f"{provider} has no breaker yet (no worker has used it): nothing to close.", "info"
            )
        db.session.commit()
        return redirect(url_for(".index"))


class MailForm(SecureForm):
    """The create form: the API's fields, checked by the API's validation."""

    from_address = StringField("From")
    to = StringField("To", description="One address, or several separated by commas")
    cc = StringField("Cc")
    bcc = StringField("Bcc")
    reply_to = StringField("Reply-To")
    subject = StringField("Subject")
    text = TextAreaField("Text body")
    html = TextAreaField("HTML body")


def utc_text(value):
    """A timestamp (or ISO 8601 text) as people read it: UTC, to the second, zone named."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def age_text(seconds):
    """A duration in seconds as people read it: ``45s``, ``12m 03s``, ``3h 07m``, ``2d 04h``."""
    if seconds is None:
        return ""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d {seconds % 86400 // 3600:02d}h"


def _utc(_view, value, _name):
    """Flask-Admin's formatter of every datetime column."""
    return utc_text(value)


def database_now():
    """The database's clock for this request, read once: leases are compared with it."""
    if "database_now" not in g:
        g.database_now = reads.database_now(db.session.connection())
    return g.database_now


def _lease_end(_view, _context, model, _name):
    """When the lease of mail being sent ends, marked once it has (its worker stopped).

    The reaper hands such mail back to the queue; until it runs, this is how it looks.
    """
    if model.locked_until is None:
        return ""
    shown = utc_text(model.locked_until)
    if model.locked_until < database_now():
        return Markup('{} <span class="badge badge-warning">expired</span>').format(shown)
    return shown


def _next_attempt(_view, _context, model, _name):
    """When queued mail is tried next; other mail has no next attempt."""
    return utc_text(model.next_attempt_at) if model.status == QUEUED else ""


def _short_error(_view, _context, model, _name):
    """The last error cut to fit a list cell, all of it in the tooltip."""
    error = (model.last_error or "").strip()
    if len(error) <= LAST_ERROR_SHOWN:
        return ui.readable(error)
    return Markup('<span class="readable" title="{}">{}…</span>').format(
        error, error[: LAST_ERROR_SHOWN - 1].rstrip()
    )


def _status(view, _context, model, _name):
    """The status as a coloured badge; mail in ``sending`` whose worker stopped beating is
    marked (its lease may run for minutes yet)."""
    shown = ui.badge(model.status)
    if model.status == SENDING and view.worker_gone(model.locked_by):
        return shown + Markup(" ") + ui.gone_mark(model.locked_by)
    return shown


def _readable(_view, _context, model, name):
    """A long value wrapped in its cell, all of it in the tooltip."""
    value = getattr(model, name)
    if isinstance(value, list | tuple):
        value = ", ".join(value)
    return ui.readable(value)


def _mail_id(_view, _context, model, name):
    """A mail's id as a link to its page."""
    return ui.mail_link(getattr(model, name))


def _webhook_about(_view, _context, model, _name):
    """What a client webhook is about: its mail, or for ``mail.received`` the received
    mail."""
    if model.email_id is None and model.inbound_id is not None:
        return ui.inbound_link(model.inbound_id)
    return ui.mail_link(model.email_id)


def _address_list(_view, _context, model, name):
    """Show a list of addresses as the comma-separated line people read."""
    return ", ".join(getattr(model, name) or ())


def _attachment_list(_view, _context, model, _name):
    """Each attachment by name, type and size (the content stays in the database)."""
    items = [
        Markup("<li>{} ({}, {:,} bytes)</li>").format(a.filename, a.content_type, a.size)
        for a in model.attachments
    ]
    return Markup("<ul>{}</ul>").format(Markup("").join(items)) if items else ""


def _pretty_json(_view, _context, model, name):
    """Show a JSON column indented."""
    value = getattr(model, name)
    if value is None or value == {} or value == []:
        return ""
    return Markup("<pre>{}</pre>").format(json.dumps(value, indent=2, default=str))


def _webhook_delivery(_view, _context, model, _name):
    """A webhook's delivery to the client as a badge: pending, done or gave_up."""
    return ui.badge(model.status, title="the delivery of this webhook to the client")


def _webhook_next_attempt(_view, _context, model, _name):
    """When a webhook still being delivered is tried next; a finished one has none."""
    return utc_text(model.next_attempt_at) if model.status == outbox.PENDING else ""


def _webhook_attempts(_view, _context, model, _name):
    """Each call made to deliver a client webhook."""
    rows = [
        Markup("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>").format(
            utc_text(a.created_at), a.status_code or "", a.duration_ms, a.error or ""
        )
        for a in model.attempt_log
    ]
    head = Markup("<tr><th>at</th><th>HTTP</th><th>ms</th><th>error</th></tr>")
    return Markup('<table class="table table-sm">{}{}</table>').format(head, Markup("").join(rows))


def timeline(attempt_log, events):
    """A mail's one history, oldest first: its delivery attempts, its providers' events and its
    operators' actions, each a dict with ``at``, ``kind`` (attempt, event, action), ``actor``
    (the worker, the provider, the operator), ``what``, ``provider``, ``recipient`` and
    ``detail``."""
    entries = [_attempt_entry(entry) for entry in attempt_log]
    entries += [_event_entry(event) for event in events]
    entries.sort(key=lambda entry: entry["at"])
    return entries


def _attempt_entry(entry):
    """A delivery attempt (by a worker) or an operator's action, as a timeline entry."""
    details = []
    if not entry.actor:
        details.append(f"attempt {entry.number}")
        if entry.status_code:
            details.append(f"HTTP {entry.status_code}")
        if entry.duration_ms is not None:
            details.append(f"{entry.duration_ms} ms")
    note = _attempt_note(entry)
    text = Markup(", ").join(details)
    return {
        "at": entry.created_at,
        "kind": "action" if entry.actor else "attempt",
        "actor": entry.actor or entry.worker or "",
        "what": entry.outcome,
        "provider": entry.provider or "",
        "recipient": "",
        "detail": Markup("{}{}{}").format(text, Markup(": ") if text and note else "", note),
    }


def _event_entry(event):
    """A provider's event about the mail, as a timeline entry."""
    reason = event.reason or ""
    return {
        "at": event.occurred_at,
        "kind": "event",
        "actor": event.provider,
        "what": event.type,
        "provider": event.provider,
        "recipient": event.recipient or "",
        "detail": Markup("{}{}{}").format(event.provider_event, ": " if reason else "", reason),
    }


def mail_problem(model, recipients):
    """What went wrong with a mail, for its summary: ``{"text", "at", "source"}``, or None.

    A recipient's bounce or complaint is what the provider said after the hand-off, so it comes
    before the mail's last sending error."""
    for row in sorted(recipients, key=lambda r: r.updated_at or model.updated_at, reverse=True):
        if row.status in ("bounced", "complained") and row.reason:
            return {"text": row.reason, "at": row.updated_at, "source": row.address}
    if model.last_error:
        return {"text": model.last_error, "at": model.updated_at, "source": "last error"}
    return None


def _attempt_note(entry):
    """An attempt's error; a resend's row links to the other mail."""
    response = entry.response if isinstance(entry.response, dict) else {}
    for key, words in (("resent_as", "resent as"), ("resent_from", "a resend of")):
        other = response.get(key)
        if other and _uuids([other]):
            return Markup('{} <a href="{}" data-link="{}">{}</a>').format(
                words, url_for("email.details_view", id=other), key, other
            )
    return entry.error or ""


class ChoiceEqual(FilterEqual):
    """Equals one of a fixed list of lower-case values, however the URL capitalises it."""

    def clean(self, value):
        """The value as stored: ``Failed`` finds failed mail."""
        return value.strip().lower()


class ChoiceNotEqual(FilterNotEqual):
    """Differs from one of a fixed list of lower-case values, however capitalised."""

    def clean(self, value):
        """The value as stored."""
        return value.strip().lower()


def split_values(value):
    """Comma-separated values as stored (lower case), blanks dropped."""
    return [part.strip().lower() for part in (value or "").split(",") if part.strip()]


class ChoiceInList(FilterInList):
    """Equals any of several lower-case values, comma-separated (``bounced,complained``), as
    ``GET /mail?status=`` takes them; an unknown value matches nothing."""

    def clean(self, value):
        """The values as stored."""
        return split_values(value)


class BackoffFilter(BaseSQLAFilter):
    """Queued mail waiting for its next attempt after a failure (not yet due): the dashboard's
    "in backoff", through the claim's partial index."""

    def apply(self, query, value, alias=None):
        """Keep queued mail whose next attempt is later than now (any value)."""
        return query.filter(Email.status == QUEUED, self.get_column(alias) > func.now())

    def operation(self):
        """The filter's label in the admin."""
        return "in backoff"


class TagFilter(BaseSQLAFilter):
    """Mail that carries a tag (exactly as given), through the tags' GIN index."""

    def apply(self, query, value, alias=None):
        """Keep the mail whose tags contain ``value``."""
        return query.filter(self.get_column(alias).contains([value]))

    def operation(self):
        """The filter's label in the admin."""
        return "has"


class UUIDEqual(BaseSQLAFilter):
    """Equals a UUID; text that is none finds nothing (a stale or forged link, not a 500)."""

    def apply(self, query, value, alias=None):
        """Keep the rows whose column is ``value``."""
        try:
            wanted = uuid.UUID(value.strip())
        except ValueError:
            return query.filter(false())
        return query.filter(self.get_column(alias) == wanted)

    def operation(self):
        """The filter's label in the admin."""
        return "equals"


class UTCDateTime:
    """Mixin of the date filters: the value typed is UTC, whatever the database session's zone.

    Flask-Admin reads ``YYYY-MM-DD HH:MM:SS`` as a naive time, which PostgreSQL would read in
    the session's time zone; the list shows UTC, so the filter means UTC too.
    """

    def clean(self, value):
        """The typed time, in UTC."""
        cleaned = super().clean(value)
        if isinstance(cleaned, list):
            return [moment.replace(tzinfo=UTC) for moment in cleaned]
        return cleaned.replace(tzinfo=UTC)


def _utc_filter(base):
    """``base`` reading its value as UTC."""
    return type(f"UTC{base.__name__}", (UTCDateTime, base), {})


class UTCFilterConverter(FilterConverter):
    """Flask-Admin's filters, with the date and time ones reading UTC."""

    datetime_filters = tuple(
        _utc_filter(base)
        for base in (
            DateTimeEqualFilter,
            DateTimeNotEqualFilter,
            DateTimeGreaterFilter,
            DateTimeSmallerFilter,
            DateTimeBetweenFilter,
            DateTimeNotBetweenFilter,
        )
    )
    # Flask-Admin's converter also lists an "empty" filter; keep it as it was.
    datetime_filters = (*datetime_filters, *FilterConverter.datetime_filters[6:])


def choice_filters(column, name, values):
    """Equals, not-equal and in-list filters on ``column`` offering ``values``."""
    options = [(value, value) for value in values]
    return (
        ChoiceEqual(column, name, options=options),
        ChoiceNotEqual(column, name, options=options),
        ChoiceInList(column, name),
    )


STATUS_IN_LIST = "flt0_status_in_list"  # the list's filter of several statuses


class MailView(Protected, Reworded, ModelView):
    """The list, search, filters, details and create form of mail."""

    can_edit = False
    can_delete = False
    can_view_details = True
    page_size = 50
    list_template = "admin/mail_list.html"  # its menu bar keeps to the CSP
    details_template = "admin/mail_details.html"  # actions, bodies side by side
    filter_converter = UTCFilterConverter()
    form = MailForm
    form_base_class = SecureForm  # the action (Retry) form needs a CSRF token too
    named_filter_urls = True  # ?flt0_status_equals=failed, stable for links and bookmarks
    column_list = (
        "created_at",
        "status",
        "from_address",
        "to_address",
        "subject",
        "tags",
        "provider",
        "attempts",
        "next_attempt_at",
        "locked_by",
        "locked_until",
        "last_error",
        "updated_at",
        "tenant",
        "test",
    )
    column_labels = {
        "api_key_id": "API Key",
        "next_attempt_at": "Next Attempt",
        "locked_by": "Lease Owner",
        "locked_until": "Lease Until",
        "send_at": "Send At",
        "meta": "Metadata",
    }
    column_type_formatters = {**typefmt.BASE_FORMATTERS, datetime: _utc}
    column_type_formatters_detail = {**typefmt.DETAIL_FORMATTERS, datetime: _utc}
    column_default_sort = ("created_at", True)
    # Flask-Admin searches each column cast to text, which reads a text[] as "{a,b}".
    column_searchable_list = ("to_address", "cc", "bcc", "from_address", "subject")
    column_filters = (
        *choice_filters(Email.status, "Status", STATUSES),
        *choice_filters(Email.provider, "Provider", REGISTRY),
        FilterEmpty(Email.provider, "Provider"),  # not yet sent by any provider
        TagFilter(Email.tags, "Tag"),
        FilterEqual(Email.tenant, "Tenant"),
        "test",
        *choice_filters(Email.source, "Source", submit.SOURCES),
        BackoffFilter(Email.next_attempt_at, "Next Attempt", options=[("yes", "yes")]),
        "created_at",
        "send_at",
    )
    # The text and HTML bodies are shown above the table, side by side.
    column_details_list = (
        "id",
        "tenant",
        "api_key_id",
        "test",
        "status",
        "from_address",
        "to_address",
        "cc",
        "bcc",
        "reply_to",
        "subject",
        "headers",
        "tags",
        "meta",
        "attachments",
        "send_at",
        "provider",
        "provider_message_id",
        "route",
        "source",
        "attempts",
        "last_error",
        "next_attempt_at",
        "locked_by",
        "locked_until",
        "created_at",
        "updated_at",
        "sent_at",
    )
    column_formatters = {
        "status": _status,
        "from_address": _readable,
        "to_address": _readable,
        "subject": _readable,
        "cc": _address_list,
        "bcc": _address_list,
        "tags": _address_list,
        "next_attempt_at": _next_attempt,
        "locked_until": _lease_end,
        "last_error": _short_error,
    }
    # Columns shown only when a mail of the page has a value there (the lease is only mail
    # being sent's, the next attempt only queued mail's): ``hidden_columns``.
    optional_columns = (
        "tags",
        "provider",
        "next_attempt_at",
        "locked_by",
        "locked_until",
        "last_error",
    )
    column_formatters_detail = {
        "to_address": _address_list,
        "cc": _address_list,
        "bcc": _address_list,
        "next_attempt_at": _next_attempt,
        "locked_until": _lease_end,
        "headers": _pretty_json,
        "meta": _pretty_json,
        "tags": _address_list,
        "attachments": _attachment_list,
    }
    column_labels = {**column_labels, "attempt_log": "Log"}

    def get_one(self, id):
        """The mail with this id, or None (Flask-Admin then says so) if it is not a UUID."""
        found = _uuids([id])
        return db.session.get(Email, found[0]) if found else None

    def get_list(self, page, sort_column, sort_desc, search, filters, execute=True, page_size=None):
        """A page of mail and how many mails the list holds: a negative ?page= shows the
        first, one past the end is empty.

        PostgreSQL refuses a negative OFFSET and one beyond a bigint, so neither reaches it.
        The whole list, or a list of statuses, is counted from the status counts the database
        keeps (``counts.mail_count``), not by counting its rows.
        """
        page = min(max(page or 0, 0), MAX_OFFSET // (page_size or self.page_size))
        asked = (page, sort_column, sort_desc, search, filters, execute, page_size)
        statuses = self.counted_statuses(search, filters)
        if statuses is None:
            return super().get_list(*asked)
        g.mail_count_kept = True  # get_count_query: no COUNT over the rows
        try:
            _, rows = super().get_list(*asked)
        finally:
            g.pop("mail_count_kept", None)
        return counts.mail_count(db.session.connection(), statuses), rows

    def get_count_query(self):
        """Flask-Admin's count of the list's rows, unless ``get_list`` reads the kept counts."""
        return None if g.get("mail_count_kept") else super().get_count_query()

    def counted_statuses(self, search, filters):
        """The statuses of the list's mail when nothing but the status filters narrows it (no
        search, no other filter), so that the kept counts count it; else None."""
        if search:
            return None
        chosen = set(STATUSES)
        for index, _name, value in filters or ():
            found = self._filters[index]
            if getattr(found.column, "key", None) != "status":
                return None
            if isinstance(found, ChoiceInList):
                chosen &= set(found.clean(value))
            elif isinstance(found, ChoiceEqual):
                chosen &= {found.clean(value)}
            elif isinstance(found, ChoiceNotEqual):
                chosen -= {found.clean(value)}
            else:
                return None
        return sorted(chosen)

    def get_invalid_value_msg(self, value, filter):
        """A filter value the filter cannot read (a date that is not one) is a 400.

        Flask-Admin would drop the filter and list every mail as if it matched.
        """
        abort(400, super().get_invalid_value_msg(value, filter))

    def validate_form(self, form):
        """Validate; on the create form, say so when the CSRF token failed (it shows nothing)."""
        valid = super().validate_form(form)
        if isinstance(form, MailForm) and form.csrf_token.errors:
            flash("The form's CSRF token is missing or expired; please submit it again.", "error")
        return valid

    def create_model(self, form):
        """Validate like the API and enqueue; on bad input, show each error at its field."""
        data = {
            api_field: getattr(form, form_field).data or None
            for api_field, form_field in FORM_FIELDS.items()
        }
        try:
            clean = validate_mail(data, current_app.config["MAX_RECIPIENTS"])
        except ValidationError as err:
            for error in err.errors:
                field = getattr(form, FORM_FIELDS.get(error["field"], ""), None)
                if field is not None:
                    field.errors = [*field.errors, error["message"]]
                flash(f"{error['field']}: {error['message']}", "error")
            return False
        row = submit.enqueue_many(transaction, [clean])[0]
        audited(db.session.connection(), "mail.create", row["id"], {"subject": row["subject"]})
        db.session.commit()
        g.created_record = submit.as_email(row)
        return g.created_record

    def created_message(self, record):
        """The new mail, queued."""
        return Markup('Mail <a href="{}" id="created-mail">{}</a> queued: {}.').format(
            url_for(".details_view", id=str(record.id)),
            record.subject,
            ", ".join(record.to_address),
        )

    def search_placeholder(self):
        """What the search box finds, in the operator's words."""
        return "address or subject"

    def render(self, template, **kwargs):
        """Every page of the view; the list also gets the columns it hides and the status
        chips, the details page its summary, timeline, actions and HTML preview."""
        if template == self.list_template and "data" in kwargs:
            kwargs.update(
                hidden_columns=self.hidden_columns(kwargs["data"]),
                status_chips=self.status_chips(),
            )
        if template == self.details_template and kwargs.get("model") is not None:
            kwargs.update(self.details_context(kwargs["model"]))
            kwargs["details_columns"] = [
                (name, label)
                for name, label in kwargs.get("details_columns", ())
                if self.has_value(kwargs["model"], name)
            ]
        return super().render(template, **kwargs)

    def has_value(self, model, name):
        """Whether the field ``name`` of ``model`` shows anything (its page hides those that
        do not: an empty Cc or Lease Owner is noise)."""
        formatter = self.column_formatters_detail.get(name)
        value = formatter(self, None, model, name) if formatter else getattr(model, name)
        return value not in (None, "", [], {}, ())

    def hidden_columns(self, rows):
        """The ``optional_columns`` empty on every mail of this page: the list hides them."""
        hidden = []
        for name in self.optional_columns:
            formatter = self.column_formatters.get(name)
            if not any(
                (formatter(self, None, row, name) if formatter else getattr(row, name))
                for row in rows
            ):
                hidden.append(name)
        return hidden

    def status_chips(self):
        """Each status as a link that adds it to, or takes it from, the list's status filter
        (``flt0_status_in_list``): several statuses at once, without JavaScript."""
        chosen = set(split_values(request.args.get(STATUS_IN_LIST)))
        if not chosen and request.args.get("flt0_status_equals"):
            chosen = {request.args["flt0_status_equals"].strip().lower()}
        others = {
            key: request.args.getlist(key)
            for key in request.args
            if key not in (STATUS_IN_LIST, "flt0_status_equals", "page")
        }
        chips = []
        for status in STATUSES:
            after = chosen ^ {status}
            args = dict(others)
            if after:
                args[STATUS_IN_LIST] = ",".join(s for s in STATUSES if s in after)
            chips.append((status, status in chosen, url_for(".index_view", **args)))
        return chips

    def details_context(self, model):
        """What a mail's page shows above Flask-Admin's table of fields: the summary card,
        the actions that apply, the one timeline, and where the HTML preview comes from."""
        conn = db.session.connection()
        seen_by = suppressions.view(model.tenant, model.test)  # whose entries hold it back
        blocked = suppressions.active(conn, model.recipients or [], (seen_by,))
        suppressed = suppressions.for_tenant(blocked, seen_by)
        recipients = recipients_shown(model.recipients, model.status, model.recipient_rows)
        with transaction(single_statement=True) as read:
            detail = reads.mail_detail(read, model.id, current_app.config["MAX_EVENTS_SHOWN"])
        return {
            "mail_actions": self.single_actions(model, suppressed),
            "action_form": self.action_form(),
            "html_preview_url": (
                url_for(".html_body", mail_id=str(model.id)) if model.html else None
            ),
            "summary": {
                "recipients": recipients,
                "suppressed": suppressed,
                "problem": mail_problem(model, recipients),
                "worker_gone": model.status == SENDING and self.worker_gone(model.locked_by),
            },
            "timeline": timeline(model.attempt_log, detail["events"]),
            "event_count": detail["event_count"],
            "events_shown": len(detail["events"]),
            "replies": detail["replies"],
            "reply_count": detail["reply_count"],
        }

    def single_actions(self, model, suppressed=None):
        """The actions that apply to this mail now: (name, label, confirmation, why not), the
        last None unless the action is shown disabled (a resend to suppressed addresses)."""
        now = database_now()
        applies = {
            "retry": model.status in actions.RETRYABLE,
            "cancel": model.status in WAITING,
            "send_now": model.status in WAITING
            and model.next_attempt_at is not None
            and model.next_attempt_at > now,
            "resend": model.status in HANDED_OFF,
            "release": model.status == SENDING
            and (
                model.locked_until is None
                or model.locked_until < now
                or self.worker_gone(model.locked_by)
            ),
        }
        blocked = {}
        if suppressed and set(model.recipients or ()) <= set(suppressed):
            blocked["resend"] = "Every recipient is on the suppression list: " + "; ".join(
                f"{address} ({why})" for address, why in sorted(suppressed.items())
            )
        return [
            (name, text, SINGLE_CONFIRMATIONS[name], blocked.get(name))
            for name, text in self._actions
            if applies.get(name)
        ]

    @expose("/<uuid:mail_id>/body.html")
    def html_body(self, mail_id):
        """The HTML body alone, for the preview's frame on the mail's page, as sent
        (``sandboxed_html``)."""
        mail = db.session.get(Email, mail_id)
        if mail is None or not mail.html:
            abort(404)
        return sandboxed_html(mail.html)

    def alive_workers(self):
        """The names of the workers alive now (their heartbeats), read once per request."""
        if "alive_workers" not in g:
            g.alive_workers = {
                row["name"] for row in dashboard.alive_workers(db.session.connection())
            }
        return g.alive_workers

    def worker_gone(self, name):
        """Whether worker ``name`` has stopped beating: its mail is stuck, whatever its lease."""
        return name not in self.alive_workers()

    @action("retry", "Retry", "Queue the selected failed mails for another delivery?")
    def action_retry(self, ids):
        """Put failed mails back in the queue, due now, with a fresh budget; log who did it."""
        conn = db.session.connection()
        retried = actions.retry(conn, _uuids(ids), operator())
        audited_mails(conn, "mail.retry", retried)
        db.session.commit()
        flash(f"{ui.plural(len(retried), 'failed mail')} queued again.", "success")

    @action(
        "cancel", "Cancel", "Cancel the selected queued or scheduled mails? They will not be sent."
    )
    def action_cancel(self, ids):
        """Cancel mail no worker has taken yet; log who did it. Others are left as they are."""
        conn = db.session.connection()
        cancelled = actions.cancel(
            conn, _uuids(ids), operator(), current_app.extensions["webhooks"]
        )
        audited_mails(conn, "mail.cancel", cancelled)
        db.session.commit()
        flash(
            _counted(
                len(cancelled),
                len(ids),
                "cancelled",
                "already sending or finished",
            ),
            "success",
        )

    @action(
        "send_now",
        "Send now",
        "Send the selected mails now, without waiting for their backoff or schedule?",
    )
    def action_send_now(self, ids):
        """Make mail waiting for its backoff or its schedule due now; log who did it."""
        conn = db.session.connection()
        hurried = actions.send_now(conn, _uuids(ids), operator())
        audited_mails(conn, "mail.send_now", hurried)
        db.session.commit()
        flash(
            _counted(len(hurried), len(ids), "made due now", "not waiting for a later time"),
            "success",
        )

    @action(
        "resend",
        "Resend as new mail",
        "Send the selected mails again, each as a NEW mail "
        "(a copy with its attachments)? The recipients will get them twice.",
    )
    def action_resend(self, ids):
        """Copy mail a provider took into new queued mail; both logs name the other."""
        conn = db.session.connection()
        pairs = actions.resend(conn, _uuids(ids), operator())
        for old, new in pairs.items():
            audited(conn, "mail.resend", old, {"resent_as": new})
        db.session.commit()
        flash(_counted(len(pairs), len(ids), "resent as new mail", "not sent yet"), "success")
        if len(pairs) == 1 and request.form.get("single"):
            [new_id] = pairs.values()
            return redirect(url_for(".details_view", id=str(new_id)))
        return None

    @action(
        "release",
        "Release stuck",
        "Hand the selected mails stuck in sending back to the "
        "queue? Their worker is gone; the provider may already have them, so a recipient "
        "may get one twice.",
    )
    def action_release(self, ids):
        """Return mail whose lease expired or whose worker is gone to the queue; log who."""
        conn = db.session.connection()
        released = actions.release_stuck(
            conn,
            _uuids(ids),
            operator(),
            self.alive_workers(),
            current_app.config["MAX_ATTEMPTS"],
        )
        audited_mails(conn, "mail.release", released)
        db.session.commit()
        flash(
            _counted(
                len(released),
                len(ids),
                "released to the queue",
                "not stuck (a live worker holds them, or they are not sending)",
            ),
            "success",
        )

    @expose("/export.csv")
    def export_csv(self):
        """The list as filtered and searched now, as CSV, streamed in keyset pages."""
        view_args = self._get_list_extra_args()
        query = self.filtered_query(view_args.search, view_args.filters)
        stream = stream_with_context(csv_rows(query))
        stamp = database_now().strftime("%Y%m%dT%H%M%SZ")
        return Response(
            stream,
            mimetype="text/csv",
            headers={
                "Content-Disposition": f'attachment; filename="mail-{stamp}.csv"',
                "Cache-Control": "no-store",
            },
        )

    def filtered_query(self, search, filters):
        """The list's query with its search and filters applied (no sorting, no paging)."""
        query = self.get_query()
        if self._search_supported and search:
            query, _, _, _ = self._apply_search(query, None, {}, {}, search)
        if filters and self._filters:
            query, _, _, _ = self._apply_filters(query, None, {}, {}, filters)
        return query


EXPORT_COLUMNS = (
    "id",
    "created_at",
    "status",
    "from_address",
    "to_address",
    "cc",
    "bcc",
    "subject",
    "tags",
    "provider",
    "provider_message_id",
    "attempts",
    "next_attempt_at",
    "last_error",
    "sent_at",
    "updated_at",
)
EXPORT_PAGE = 1000  # rows read per query: the export never holds more than this
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet reads as a formula


def csv_rows(query):
    """The CSV text of ``query``'s mail, newest first, a page at a time (keyset on
    (created_at, id), so each page is an index range, however deep)."""
    columns = [getattr(Email, name) for name in EXPORT_COLUMNS]
    yield _csv_line((*EXPORT_COLUMNS, "recipient_reasons"))
    after = None
    while True:
        page = query.with_entities(*columns).order_by(Email.created_at.desc(), Email.id.desc())
        if after is not None:
            page = page.filter(tuple_(Email.created_at, Email.id) < after)
        rows = page.limit(EXPORT_PAGE).all()
        if not rows:
            return
        reasons = reads.recipient_reasons(db.session.connection(), [row.id for row in rows])
        yield "".join(
            _csv_line([*_csv_values(row), _inert(_reasons_text(reasons.get(row.id, ())))])
            for row in rows
        )
        last = rows[-1]
        after = tuple_(last.created_at, last.id)
        if len(rows) < EXPORT_PAGE:
            return


def _reasons_text(reasons):
    """A mail's recipients' reasons as one cell: ``address (status): reason; ...``."""
    return "; ".join(f"{address} ({status}): {reason}" for address, status, reason in reasons)


def _csv_values(row):
    """One mail's cells: lists joined by commas, times in UTC to the second, text inert."""
    values = []
    for value in row:
        if isinstance(value, datetime):
            value = utc_text(value)
        elif isinstance(value, list | tuple):
            value = ", ".join(value)
        if isinstance(value, str):
            value = _inert(value)
        values.append("" if value is None else value)
    return values


def _inert(text):
    """``text`` as a spreadsheet shows it and never runs it.

    A cell that begins with one of ``FORMULA_STARTS`` is a formula to Excel, LibreOffice and
    Google Sheets, and a client chooses subjects, names and tags: "=HYPERLINK(...)" or
    "=cmd|' /C calc'!A0" would run when the admin opens the export. A leading single quote
    makes such a cell text (OWASP's rule for CSV injection)."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _csv_line(values):
    """One CSV line (RFC 4180 quoting)."""
    buffer = io.StringIO()
    csv.writer(buffer).writerow(values)
    return buffer.getvalue()


def _counted(done, asked, what, left_alone):
    """The flash message of a bulk action: how many were changed, how many left alone."""
    skipped = asked - done
    verb = "was" if skipped == 1 else "were"
    note = f"; {skipped} {left_alone} {verb} left alone" if skipped else ""
    return f"{ui.plural(done, 'mail')} {what}{note}."


# The policy of HTML served to a preview frame (a mail's body, a template's rendering): its
# inline styles and data: images, nothing else; sandboxed even if opened on its own (no script,
# form or popup), and framed only by the admin's own pages.
HTML_BODY_POLICY = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; font-src data:; "
    "form-action 'none'; base-uri 'none'; sandbox; frame-ancestors 'self'"
)
# A mail's page asks about the one mail (the list's bulk actions ask about "the selected").
SINGLE_CONFIRMATIONS = {
    "retry": "Queue this failed mail for another delivery?",
    "cancel": "Cancel this mail? It will not be sent.",
    "send_now": "Send this mail now, without waiting for its backoff or schedule?",
    "resend": "Send this mail again as a NEW mail (a copy with its attachments)? "
    "The recipients will get it twice.",
    "release": "Hand this mail back to the queue? Its worker is gone; the provider may "
    "already have it, so a recipient may get it twice.",
}


def sandboxed_html(html):
    """``html`` alone, for a preview's frame (the frame is sandboxed too): shown as a mail
    client shows it, its own inline styles applied, under a policy of its own that runs no
    script, submits no form and loads nothing (``HTML_BODY_POLICY``). A ``srcdoc`` frame would
    take the admin page's policy, which drops inline styles."""
    return Response(
        html,
        mimetype="text/html",
        headers={
            "Content-Security-Policy": HTML_BODY_POLICY,
            "X-Frame-Options": "SAMEORIGIN",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
        },
    )


class SuppressionForm(SecureForm):
    """Add an address to the suppression list by hand."""

    address = StringField("Address")
    reason = SelectField("Reason", choices=list(suppressions.REASONS), default=suppressions.MANUAL)
    detail = StringField("Detail", description="Why, for the next operator")
    tenant = StringField(
        "Tenant",
        default=suppressions.ALL_TENANTS,
        description="Whose mail it holds back: a tenant's name, or * for every tenant's",
    )


class SuppressionView(Protected, Reworded, ModelView):
    """The suppression list: entries in force, newest first; add and remove by hand."""

    can_edit = False
    can_view_details = False
    page_size = 50
    list_template = "admin/mail_list.html"  # the menu bar that keeps to the CSP
    form = SuppressionForm
    form_base_class = SecureForm
    column_list = (
        "tenant",
        "address",
        "reason",
        "detail",
        "email_id",
        "created_at",
        "expires_at",
    )
    column_labels = {"email_id": "Caused By Mail", "expires_at": "Expires"}
    column_type_formatters = {**typefmt.BASE_FORMATTERS, datetime: _utc}
    column_default_sort = ("created_at", True)
    column_searchable_list = ("address",)
    column_filters = (
        *choice_filters(Suppression.reason, "Reason", suppressions.REASONS),
        FilterEqual(Suppression.tenant, "Tenant"),
    )
    column_formatters = {"email_id": _mail_id}

    def search_placeholder(self):
        """What the search box finds."""
        return "address"

    def get_list_row_actions(self):
        """Flask-Admin's row actions, with a delete button that keeps to the CSP.

        Flask-Admin's asks "Are you sure?" in an inline onclick, which the policy does not run.
        """
        return [
            CSP_DELETE_ROW if isinstance(row_action, DeleteRowAction) else row_action
            for row_action in super().get_list_row_actions()
        ]

    # An entry in force, as the queue's statements of the list say it: an expired bounce no
    # longer suppresses.
    in_force = or_(Suppression.expires_at.is_(None), Suppression.expires_at > func.now())

    def get_query(self):
        """Only entries in force (Flask-Admin's query of the model)."""
        return super().get_query().filter(self.in_force)

    def get_count_query(self):
        """Counted like ``get_query``."""
        return super().get_count_query().filter(self.in_force)

    def create_model(self, form):
        """Validate the address like the API, then add it (``suppressions.add``)."""
        try:
            address = validate_address(form.address.data or None)
        except ValidationError as err:
            form.address.errors = [*form.address.errors, err.errors[0]["message"]]
            flash(f"address: {err.errors[0]['message']}", "error")
            return False
        tenant = (form.tenant.data or suppressions.ALL_TENANTS).strip()
        if tenant != suppressions.ALL_TENANTS and not TENANT_NAME.match(tenant):
            form.tenant.errors = [*form.tenant.errors, "A tenant's name, or *"]
            flash("tenant: a tenant's name (letters, digits, _ . -), or *", "error")
            return False
        conn = db.session.connection()
        row, added = suppressions.add(
            conn,
            address,
            form.reason.data,
            form.detail.data or None,
            current_app.config["SUPPRESSION_DAYS"],
            tenant,
        )
        if added:
            summary = {"reason": row["reason"], "detail": row["detail"]}
            audited(conn, "suppression.add", row["address"], summary, row["tenant"])
        db.session.commit()
        if not added:
            flash(f"{row['address']} was already suppressed ({row['reason']}).", "info")
        g.created_record = db.session.get(Suppression, (row["tenant"], row["address"]))
        return g.created_record

    def created_message(self, record):
        """The address, now on the list."""
        return f"{record.address} is on the suppression list ({record.reason})."

    def get_one(self, id):
        """The entry of an id: ``tenant.address`` as Flask-Admin writes a two-column key, or an
        address alone (links written before entries had a tenant): its first entry."""
        parts = iterdecode(id)
        if len(parts) == 2:
            return db.session.get(Suppression, parts)
        query = db.session.query(Suppression).filter(Suppression.address == parts[0])
        return query.order_by(Suppression.tenant).first()

    def delete_model(self, model):
        """Take the address off its tenant's list (``suppressions.remove``)."""
        conn = db.session.connection()
        if suppressions.remove(conn, model.address, model.tenant):
            audited(conn, "suppression.remove", model.address, {}, model.tenant)
        db.session.commit()
        return True


def _endpoint(_view, _context, model, _name):
    """A webhook's endpoint: a link to the tenant's endpoint, or the settings' WEBHOOK_URL."""
    if model.endpoint_id is None:
        return "WEBHOOK_URL"
    return Markup('<a href="{}">{}</a>').format(
        url_for("webhook_endpoint.details_view", id=model.endpoint_id),
        model.endpoint.url if model.endpoint is not None else model.endpoint_id,
    )


def _deliveries(_view, _context, model, _name):
    """A link to an endpoint's webhooks in the outbox."""
    return Markup('<a href="{}">deliveries</a>').format(
        url_for("webhook.index_view", flt0_endpoint_equals=model.id)
    )


class WebhookView(Protected, ModelView):
    """The client webhooks: each one's delivery to its endpoint, with every attempt in its
    details; filtered by tenant or endpoint."""

    can_create = False
    can_edit = False
    can_delete = False
    can_view_details = True
    page_size = 50
    list_template = "admin/mail_list.html"
    named_filter_urls = True  # ?flt0_endpoint_equals=<id>, the endpoints' links
    column_list = (
        "created_at",
        "event_type",
        "tenant",
        "endpoint",
        "email_id",
        "status",
        "attempts",
        "next_attempt_at",
        "last_error",
        "delivered_at",
    )
    column_labels = {"email_id": "Mail", "message_id": "Webhook Id", "status": "Delivery"}
    column_type_formatters = {**typefmt.BASE_FORMATTERS, datetime: _utc}
    column_type_formatters_detail = {**typefmt.DETAIL_FORMATTERS, datetime: _utc}
    column_default_sort = ("id", True)
    column_filters = (
        *choice_filters(
            WebhookMessage.status, "Status", (outbox.PENDING, outbox.DONE, outbox.GAVE_UP)
        ),
        *choice_filters(WebhookMessage.event_type, "Event", outbox.EVENTS),
        FilterEqual(WebhookMessage.tenant, "Tenant"),
        UUIDEqual(WebhookMessage.endpoint_id, "Endpoint"),
    )
    column_details_list = (
        "message_id",
        "event_type",
        "tenant",
        "endpoint",
        "email_id",
        "status",
        "attempts",
        "next_attempt_at",
        "last_error",
        "created_at",
        "delivered_at",
        "payload",
        "attempt_log",
    )
    column_formatters = {
        "last_error": _short_error,
        "email_id": _webhook_about,
        "status": _webhook_delivery,
        "next_attempt_at": _webhook_next_attempt,
        "endpoint": _endpoint,
    }
    column_formatters_detail = {
        "payload": _pretty_json,
        "attempt_log": _webhook_attempts,
        "email_id": _webhook_about,
        "status": _webhook_delivery,
        "next_attempt_at": _webhook_next_attempt,
        "endpoint": _endpoint,
    }


class WebhookEndpointView(Protected, ModelView):
    """The tenants' webhook endpoints (made through ``/webhook-endpoints``), each with a link
    to its deliveries; never their secrets."""

    can_create = False
    can_edit = False
    can_delete = False
    can_view_details = True
    page_size = 50
    list_template = "admin/mail_list.html"  # the menu bar that keeps to the CSP
    column_list = (
        "created_at",
        "tenant",
        "url",
        "events",
        "disabled",
        "deleted_at",
        "deliveries",
    )
    column_details_list = (
        "id",
        "tenant",
        "url",
        "events",
        "disabled",
        "created_by",
        "created_at",
        "updated_at",
        "deleted_at",
        "deliveries",
    )
    column_type_formatters = {**typefmt.BASE_FORMATTERS, datetime: _utc}
    column_type_formatters_detail = {**typefmt.DETAIL_FORMATTERS, datetime: _utc}
    column_default_sort = ("created_at", True)
    column_filters = (FilterEqual(WebhookEndpoint.tenant, "Tenant"),)
    column_formatters = {"deliveries": _deliveries}
    column_formatters_detail = {"deliveries": _deliveries}


class AuditView(Protected, ModelView):
    """The audit log: every change an operator or a managing key made, newest first; read
    only (rows are appended by ``audit.record`` and never changed)."""

    can_create = False
    can_edit = False
    can_delete = False
    can_view_details = True
    page_size = 50
    list_template = "admin/mail_list.html"
    column_list = ("at", "actor", "tenant", "action", "target", "summary", "client")
    column_labels = {"at": "When", "key_id": "Key"}
    column_type_formatters = {**typefmt.BASE_FORMATTERS, datetime: _utc}
    column_type_formatters_detail = {**typefmt.DETAIL_FORMATTERS, datetime: _utc}
    column_default_sort = [("at", True), ("id", True)]
    column_filters = (
        FilterEqual(AuditLog.tenant, "Tenant"),
        FilterEqual(AuditLog.action, "Action"),
        FilterEqual(AuditLog.target, "Target"),
        FilterEqual(AuditLog.actor, "Actor"),
        "at",
    )
    named_filter_urls = True  # ?flt0_tenant_equals=shop
    column_formatters = {"summary": lambda _v, _c, model, _n: json.dumps(model.summary)}
    column_formatters_detail = {"summary": _pretty_json}

    def get_list(self, page, *args, **kwargs):
        """A page of the log: a negative ?page= shows the first (as ``MailView``'s)."""
        size = kwargs.get("page_size") or self.page_size
        return super().get_list(min(max(page or 0, 0), MAX_OFFSET // size), *args, **kwargs)


def operator():
    """Who is acting in the admin: the HTTP Basic user, or the loopback client's address."""
    auth = request.authorization
    if auth is not None and auth.username:
        return f"admin:{auth.username}"
    return f"admin@{request.remote_addr}"


def audited(conn, action, target, summary=None, tenant=None):
    """Append an operator's change to the audit log (``audit.record``), in the transaction
    of the change (the admin's session, committed with it)."""
    who = audit.operator(operator())
    audit.record(conn, who, tenant, action, target, summary, client_address())


def audited_mails(conn, action, ids):
    """One audit row per mail an action changed (``ids``)."""
    for mail_id in ids:
        audited(conn, action, mail_id)


def _uuids(values):
    """The UUIDs among the list view's row ids (a forged or stale id is skipped, not a 500)."""
    found = []
    for value in values:
        try:
            found.append(uuid.UUID(str(value)))
        except ValueError:
            continue
    return found


def csp_nonce():
    """This request's nonce for inline scripts (Flask-Admin puts it on each script tag)."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


def content_policy():
    """The admin's Content-Security-Policy, admitting this request's nonce if a page used it."""
    nonce = f" 'nonce-{g.csp_nonce}'" if "csp_nonce" in g else ""
    return CONTENT_POLICY.format(nonce=nonce)


def harden(response):
    """No site may frame or MIME-sniff an answer of ours; admin pages also get their policy.

    A header the view set already stays. The names present are read from the header list
    once: werkzeug's ``setdefault`` raises and catches an exception for each header missing,
    and on an API answer every one of them is."""
    headers = response.headers
    present = {name.lower() for name, _ in headers}
    if "x-frame-options" not in present:
        headers.add("X-Frame-Options", "DENY")
    if "x-content-type-options" not in present:
        headers.add("X-Content-Type-Options", "nosniff")
    if (request.path == ADMIN_URL or request.path.startswith(ADMIN_URL + "/")) and (
        "content-security-policy" not in present
    ):
        headers.add("Content-Security-Policy", content_policy())
    return response


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie session, sent with ``Secure`` to a request that came over HTTPS.

    Behind a TLS-terminating proxy that is the scheme the proxy reports (gunicorn reads
    X-Forwarded-Proto from the addresses in ``forwarded_allow_ips``).
    """

    def get_cookie_secure(self, app):
        """Secure when configured so, or when this request is HTTPS."""
        return super().get_cookie_secure(app) or request.is_secure

    def open_session(self, app, request):
        """A new empty session for a request without the cookie (every API call), as Flask's
        own gives, but without building its signing serializer first: that cost more than
        any other step of ``POST /mail`` outside our own code. Without a Cookie header (an API
        client) not even the cookies are parsed."""
        if app.secret_key and (
            "HTTP_COOKIE" not in request.environ
            or not request.cookies.get(self.get_cookie_name(app))
        ):
            return self.session_class()
        return super().open_session(app, request)


ASSETS = Blueprint(
    "admin_assets", __name__, static_folder="static", static_url_path=ADMIN_URL + "/assets"
)


def init_app(app):
    """Mount the admin on ``app`` at /admin, with its security headers and session cookie."""
    if app.config["SESSION_COOKIE_SAMESITE"] is None:
        # The session only holds the CSRF secret; Lax keeps it off cross-site form posts.
        app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.session_interface = SessionInterface()
    app.after_request(harden)
    app.add_template_filter(utc_text, "utc")
    app.add_template_filter(age_text, "age")
    app.jinja_env.globals.update(ui.GLOBALS)
    app.register_blueprint(ASSETS)
    admin = Admin(
        app,
        name="Mail service",
        index_view=DashboardView(name="Dashboard", url=ADMIN_URL),
        theme=Bootstrap4Theme(fluid=True),  # the full width: the list has 12 columns
        csp_nonce_generator=csp_nonce,
    )
    admin.add_view(MailView(Email, db, name="Mail", endpoint="email"))
    from mailer.admin import inbound as admin_inbound  # it builds on this module's views

    admin_inbound.init_app(admin)
    admin.add_view(SuppressionView(Suppression, db, name="Suppressions", endpoint="suppression"))
    admin.add_view(WebhookView(WebhookMessage, db, name="Webhooks", endpoint="webhook"))
    admin.add_view(
        WebhookEndpointView(
            WebhookEndpoint, db, name="Webhook endpoints", endpoint="webhook_endpoint"
        )
    )
    admin.add_view(AuditView(AuditLog, db, name="Audit log", endpoint="audit"))
    from mailer.admin import keys as admin_keys  # it builds on this module's views

    admin_keys.init_app(admin)
    return admin
