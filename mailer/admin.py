"""The operators' admin UI at ``/admin``: the queue at a glance, every mail with its recipients
and timeline, the suppression list, and the client webhooks with their attempts.

Every page requires HTTP Basic (``ADMIN_USERNAME``/``ADMIN_PASSWORD``), or a loopback client
when no password is set; forms carry a CSRF token; pages carry a Content-Security-Policy and may
not be framed. A mail created here goes through the same validation and the same ``enqueue`` as
one posted to the API. Hostile query strings get a 400 or an empty list, never a 500.
"""

import json
import secrets
import uuid
from datetime import UTC, datetime

from flask import Response, abort, current_app, flash, g, request
from flask.sessions import SecureCookieSessionInterface
from flask_admin import Admin, AdminIndexView, expose
from flask_admin.actions import action
from flask_admin.contrib.sqla import ModelView
from flask_admin.contrib.sqla.filters import (
    BaseSQLAFilter,
    FilterEmpty,
    FilterEqual,
    FilterNotEqual,
)
from flask_admin.form import SecureForm
from flask_admin.model import typefmt
from flask_admin.theme import Bootstrap4Theme
from markupsafe import Markup, escape
from wtforms import SelectField, StringField, TextAreaField

from models import QUEUED, STATUSES, Email, Suppression, WebhookMessage, db
from providers import REGISTRY

from . import circuit, mailqueue, outbox, suppressions
from .api import transaction
from .auth import admin_allowed
from .validation import ValidationError, validate_address, validate_mail

# The largest OFFSET PostgreSQL takes (a bigint); a page beyond it is past any table's end.
MAX_OFFSET = 2**63 - 1

ADMIN_URL = "/admin"
# Admin pages run nothing but Flask-Admin's own bundled files and our one inline script (by its
# nonce), and no other site may frame them: the Retry button could be clickjacked.
# (Bootstrap's style sheet draws a few icons as data: images.)
CONTENT_POLICY = ("default-src 'self'; script-src 'self'{nonce}; img-src 'self' data:; "
                  "object-src 'none'; base-uri 'none'; form-action 'self'; "
                  "frame-ancestors 'none'")

LAST_ERROR_SHOWN = 80  # characters of last_error in the list; the whole of it on hover

# Form field of each API field, to show a validation error next to the right input.
FORM_FIELDS = {"from": "from_address", "to": "to", "cc": "cc", "bcc": "bcc",
               "reply_to": "reply_to", "subject": "subject", "text": "text", "html": "html"}


class Protected:
    """Mixin: only an authenticated operator (or loopback, without a password) gets in."""

    def is_accessible(self):
        """Whether the request carries the admin credentials."""
        return admin_allowed()

    def inaccessible_callback(self, name, **kwargs):
        """Ask the browser for credentials."""
        return Response("Admin credentials required.\n", 401,
                        {"WWW-Authenticate": 'Basic realm="mail service admin"'})

    def _handle_view(self, name, **kwargs):
        """Before any page: the access check, then refuse a NUL anywhere in the query string.

        PostgreSQL text cannot hold a NUL, so no search or filter with one can match, and
        psycopg2 refuses to send it (a 500 if it got that far).
        """
        refused = super()._handle_view(name, **kwargs)
        if refused is None and any("\x00" in key or "\x00" in value
                                   for key, value in request.args.items(multi=True)):
            abort(400, "The query string must not contain NUL characters.")
        return refused


class DashboardView(Protected, AdminIndexView):
    """The admin's home page: mail by status and each provider's health."""

    @expose("/")
    def index(self):
        """Render the queue counts and the provider circuits."""
        conn = db.session.connection()
        health = circuit.health(conn, current_app.config["PROVIDERS"])
        return self.render("admin/dashboard.html", counts=mailqueue.counts(conn),
                           statuses=STATUSES, health=health)


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


def _utc(_view, value, _name):
    """Flask-Admin's formatter of every datetime column."""
    return utc_text(value)


def database_now():
    """The database's clock for this request, read once: leases are compared with it."""
    if "database_now" not in g:
        g.database_now = mailqueue.database_now(db.session.connection())
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
        return error
    return Markup('<span title="{}">{}…</span>').format(
        error, error[:LAST_ERROR_SHOWN - 1].rstrip())


def _address_list(_view, _context, model, name):
    """Show a list of addresses as the comma-separated line people read."""
    return ", ".join(getattr(model, name) or ())


def _attachment_list(_view, _context, model, _name):
    """Each attachment by name, type and size (the content stays in the database)."""
    items = [Markup("<li>{} ({}, {:,} bytes)</li>").format(a.filename, a.content_type, a.size)
             for a in model.attachments]
    return Markup("<ul>{}</ul>").format(Markup("").join(items)) if items else ""


def _pretty_json(_view, _context, model, name):
    """Show a JSON column indented."""
    value = getattr(model, name)
    if value is None:
        return ""
    return Markup("<pre>{}</pre>").format(json.dumps(value, indent=2, default=str))


def _recipient_table(_view, _context, model, _name):
    """Each recipient with its status and reason."""
    rows = [Markup("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>").format(
        r["address"], r["status"], r["reason"] or "", utc_text(r["updated_at"]))
        for r in model.recipient_list()]
    head = Markup("<tr><th>address</th><th>status</th><th>reason</th><th>since</th></tr>")
    return Markup('<table class="table table-sm" id="recipients">{}{}</table>').format(
        head, Markup("").join(rows))


def _timeline(_view, _context, model, _name):
    """The providers' events, oldest first."""
    rows = [Markup("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
                   "</tr>").format(utc_text(e.occurred_at), e.provider, e.type,
                                   e.provider_event, e.recipient or "", e.reason or "")
            for e in model.events]
    head = Markup("<tr><th>at</th><th>provider</th><th>event</th><th>provider's name</th>"
                  "<th>recipient</th><th>reason</th></tr>")
    return Markup('<table class="table table-sm" id="timeline">{}{}</table>').format(
        head, Markup("").join(rows))


def _webhook_attempts(_view, _context, model, _name):
    """Each call made to deliver a client webhook."""
    rows = [Markup("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>").format(
        utc_text(a.created_at), a.status_code or "", a.duration_ms, a.error or "")
        for a in model.attempt_log]
    head = Markup("<tr><th>at</th><th>HTTP</th><th>ms</th><th>error</th></tr>")
    return Markup('<table class="table table-sm">{}{}</table>').format(
        head, Markup("").join(rows))


def _attempt_table(_view, _context, model, _name):
    """Show the mail's attempts as a table."""
    rows = [
        Markup("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
               "<td>{}</td></tr>").format(
            a.number, utc_text(a.created_at), a.provider or a.actor or "", a.outcome,
            a.status_code or "", a.duration_ms if a.duration_ms is not None else "",
            a.error or "")
        for a in model.attempt_log
    ]
    head = Markup("<tr><th>#</th><th>at</th><th>provider</th><th>outcome</th><th>HTTP</th>"
                  "<th>ms</th><th>error</th></tr>")
    return Markup('<table class="table table-sm">{}{}</table>').format(
        head, Markup("").join(rows))


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


class TagFilter(BaseSQLAFilter):
    """Mail that carries a tag (exactly as given), through the tags' GIN index."""

    def apply(self, query, value, alias=None):
        """Keep the mail whose tags contain ``value``."""
        return query.filter(self.get_column(alias).contains([value]))

    def operation(self):
        """The filter's label in the admin."""
        return "has"


def choice_filters(column, name, values):
    """Equals and not-equal filters on ``column`` offering ``values`` as a drop-down."""
    options = [(value, value) for value in values]
    return (ChoiceEqual(column, name, options=options),
            ChoiceNotEqual(column, name, options=options))


class MailView(Protected, ModelView):
    """The list, search, filters, details and create form of mail."""

    can_edit = False
    can_delete = False
    can_view_details = True
    page_size = 50
    list_template = "admin/mail_list.html"  # its menu bar keeps to the CSP
    form = MailForm
    form_base_class = SecureForm  # the action (Retry) form needs a CSRF token too
    named_filter_urls = True  # ?flt0_status_equals=failed, stable for links and bookmarks
    column_list = ("created_at", "status", "from_address", "to_address", "subject", "tags",
                   "provider", "attempts", "next_attempt_at", "locked_by", "locked_until",
                   "last_error", "updated_at")
    column_labels = {"next_attempt_at": "Next Attempt", "locked_by": "Lease Owner",
                     "locked_until": "Lease Until", "send_at": "Send At", "meta": "Metadata",
                     "recipient_rows": "Recipients", "events": "Timeline"}
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
        "created_at",
        "send_at",
    )
    column_details_list = (
        "id", "status", "from_address", "to_address", "cc", "bcc", "reply_to", "subject",
        "text", "html", "headers", "tags", "meta", "attachments", "send_at", "provider",
        "provider_message_id", "attempts", "last_error", "next_attempt_at", "locked_by",
        "locked_until", "created_at", "updated_at", "sent_at", "recipient_rows", "events",
        "result", "attempt_log",
    )
    column_formatters = {
        "to_address": _address_list, "cc": _address_list, "bcc": _address_list,
        "tags": _address_list,
        "next_attempt_at": _next_attempt, "locked_until": _lease_end, "last_error": _short_error,
    }
    column_formatters_detail = {
        "to_address": _address_list, "cc": _address_list, "bcc": _address_list,
        "next_attempt_at": _next_attempt, "locked_until": _lease_end,
        "result": _pretty_json, "headers": _pretty_json, "meta": _pretty_json,
        "tags": _address_list, "attachments": _attachment_list,
        "attempt_log": _attempt_table, "recipient_rows": _recipient_table, "events": _timeline,
        "html": lambda _v, _c, model, _n: Markup("<pre>{}</pre>").format(escape(model.html or "")),
    }

    def get_one(self, id):
        """The mail with this id, or None (Flask-Admin then says so) if it is not a UUID."""
        found = _uuids([id])
        return db.session.get(Email, found[0]) if found else None

    def get_list(self, page, *args, **kwargs):
        """A page of mail: a negative ?page= shows the first, one past the end is empty.

        PostgreSQL refuses a negative OFFSET and one beyond a bigint, so neither reaches it.
        """
        size = kwargs.get("page_size") or self.page_size
        return super().get_list(min(max(page or 0, 0), MAX_OFFSET // size), *args, **kwargs)

    def get_invalid_value_msg(self, value, filter):
        """A filter value the filter cannot read (a date that is not one) is a 400.

        Flask-Admin would drop the filter and list every mail as if it matched.
        """
        abort(400, super().get_invalid_value_msg(value, filter))

    def validate_form(self, form):
        """Validate; on the create form, say so when the CSRF token failed (it shows nothing)."""
        valid = super().validate_form(form)
        if isinstance(form, MailForm) and form.csrf_token.errors:
            flash("The form's CSRF token is missing or expired; please submit it again.",
                  "error")
        return valid

    def create_model(self, form):
        """Validate like the API and enqueue; on bad input, show each error at its field."""
        data = {api_field: getattr(form, form_field).data or None
                for api_field, form_field in FORM_FIELDS.items()}
        try:
            clean = validate_mail(data, current_app.config["MAX_RECIPIENTS"])
        except ValidationError as err:
            for error in err.errors:
                field = getattr(form, FORM_FIELDS.get(error["field"], ""), None)
                if field is not None:
                    field.errors = [*field.errors, error["message"]]
                flash(f"{error['field']}: {error['message']}", "error")
            return False
        return mailqueue.as_email(mailqueue.enqueue_many(transaction, [clean])[0])

    @action("retry", "Retry", "Queue the selected failed mails for another delivery?")
    def action_retry(self, ids):
        """Put failed mails back in the queue, due now, with a fresh budget; log who did it."""
        count = mailqueue.retry(db.session.connection(), _uuids(ids), operator())
        db.session.commit()
        flash(f"{count} failed mail(s) queued again.", "success")

    @action("cancel", "Cancel", "Cancel the selected queued or scheduled mails? They will not "
            "be sent.")
    def action_cancel(self, ids):
        """Cancel mail no worker has taken yet; log who did it. Others are left as they are."""
        cancelled = mailqueue.cancel(db.session.connection(), _uuids(ids), operator(),
                                     current_app.extensions["webhooks"])
        db.session.commit()
        skipped = len(ids) - len(cancelled)
        note = f"; {skipped} already sending or finished were left alone" if skipped else ""
        flash(f"{len(cancelled)} mail(s) cancelled{note}.", "success")


class SuppressionForm(SecureForm):
    """Add an address to the suppression list by hand."""

    address = StringField("Address")
    reason = SelectField("Reason", choices=list(suppressions.REASONS),
                         default=suppressions.MANUAL)
    detail = StringField("Detail", description="Why, for the next operator")


class SuppressionView(Protected, ModelView):
    """The suppression list: entries in force, newest first; add and remove by hand."""

    can_edit = False
    can_view_details = False
    page_size = 50
    list_template = "admin/mail_list.html"  # the menu bar that keeps to the CSP
    form = SuppressionForm
    form_base_class = SecureForm
    column_list = ("address", "reason", "detail", "email_id", "created_at", "expires_at")
    column_labels = {"email_id": "Caused By Mail", "expires_at": "Expires"}
    column_type_formatters = {**typefmt.BASE_FORMATTERS, datetime: _utc}
    column_default_sort = ("created_at", True)
    column_searchable_list = ("address",)
    column_filters = (*choice_filters(Suppression.reason, "Reason", suppressions.REASONS),)

    def get_query(self):
        """Only entries in force: an expired bounce no longer suppresses."""
        return super().get_query().filter(suppressions.in_force())

    def get_count_query(self):
        """Counted like ``get_query``."""
        return super().get_count_query().filter(suppressions.in_force())

    def create_model(self, form):
        """Validate the address like the API, then add it (``suppressions.add``)."""
        try:
            address = validate_address(form.address.data or None)
        except ValidationError as err:
            form.address.errors = [*form.address.errors, err.errors[0]["message"]]
            flash(f"address: {err.errors[0]['message']}", "error")
            return False
        row, added = suppressions.add(db.session.connection(), address, form.reason.data,
                                      form.detail.data or None,
                                      current_app.config["SUPPRESSION_DAYS"])
        db.session.commit()
        if not added:
            flash(f"{row['address']} was already suppressed ({row['reason']}).", "info")
        return db.session.get(Suppression, row["address"])

    def delete_model(self, model):
        """Take the address off the list (``suppressions.remove``)."""
        suppressions.remove(db.session.connection(), model.address)
        db.session.commit()
        return True


class WebhookView(Protected, ModelView):
    """The client webhooks: each one's delivery, with every attempt in its details."""

    can_create = False
    can_edit = False
    can_delete = False
    can_view_details = True
    page_size = 50
    list_template = "admin/mail_list.html"
    column_list = ("created_at", "event_type", "email_id", "status", "attempts",
                   "next_attempt_at", "last_error", "delivered_at")
    column_labels = {"email_id": "Mail", "message_id": "Webhook Id"}
    column_type_formatters = {**typefmt.BASE_FORMATTERS, datetime: _utc}
    column_type_formatters_detail = {**typefmt.DETAIL_FORMATTERS, datetime: _utc}
    column_default_sort = ("id", True)
    column_filters = (*choice_filters(WebhookMessage.status, "Status",
                                      (outbox.PENDING, outbox.DONE, outbox.GAVE_UP)),
                      *choice_filters(WebhookMessage.event_type, "Event", outbox.EVENTS))
    column_details_list = ("message_id", "event_type", "email_id", "status", "attempts",
                           "next_attempt_at", "last_error", "created_at", "delivered_at",
                           "payload", "attempt_log")
    column_formatters = {"last_error": _short_error}
    column_formatters_detail = {"payload": _pretty_json, "attempt_log": _webhook_attempts}


def operator():
    """Who is acting in the admin: the HTTP Basic user, or the loopback client's address."""
    auth = request.authorization
    if auth is not None and auth.username:
        return f"admin:{auth.username}"
    return f"admin@{request.remote_addr}"


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
    """No site may frame or MIME-sniff an answer of ours; admin pages also get their policy."""
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    if request.path == ADMIN_URL or request.path.startswith(ADMIN_URL + "/"):
        response.headers.setdefault("Content-Security-Policy", content_policy())
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
        any other step of ``POST /mail`` outside our own code."""
        if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)


def init_app(app):
    """Mount the admin on ``app`` at /admin, with its security headers and session cookie."""
    if app.config["SESSION_COOKIE_SAMESITE"] is None:
        # The session only holds the CSRF secret; Lax keeps it off cross-site form posts.
        app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.session_interface = SessionInterface()
    app.after_request(harden)
    app.add_template_filter(utc_text, "utc")
    admin = Admin(app, name="Mail service", index_view=DashboardView(url=ADMIN_URL),
                  theme=Bootstrap4Theme(fluid=True),  # the full width: the list has 12 columns
                  csp_nonce_generator=csp_nonce)
    admin.add_view(MailView(Email, db, name="Mail", endpoint="email"))
    admin.add_view(SuppressionView(Suppression, db, name="Suppressions", endpoint="suppression"))
    admin.add_view(WebhookView(WebhookMessage, db, name="Webhooks", endpoint="webhook"))
    return admin
