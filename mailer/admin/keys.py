"""The admin's API keys: every tenant's keys listed (never a key: its prefix and last four
characters), a form that makes one and shows it once, on the page that answers the form (never
in a flash message, which the session cookie would carry), and a confirmed revoke.
"""

import uuid
from datetime import datetime

from flask import current_app, flash, request
from flask_admin import expose
from flask_admin.actions import action
from flask_admin.contrib.sqla import ModelView
from flask_admin.form import SecureForm
from flask_admin.model import typefmt
from wtforms import BooleanField, SelectMultipleField, StringField

from mailer import principals
from mailer.admin.views import Protected, _utc, audited, operator
from mailer.database import transaction
from mailer.queue import keys as stored_keys
from models import ApiKey, db

OPERATOR = principals.Principal(
    principals.DEFAULT_TENANT, None, "admin", frozenset(principals.SCOPES)
)


class KeyForm(SecureForm):
    """A new key: its name, tenant, scopes and limits."""

    name = StringField("Name", description="What the key is for")
    tenant = StringField("Tenant", default=principals.DEFAULT_TENANT)
    scopes = SelectMultipleField(
        "Scopes",
        choices=list(principals.SCOPES),
        default=["mail:send", "mail:read"],
    )
    allowed_from_domains = StringField(
        "Allowed From Domains", description="Comma separated; empty: any"
    )
    rate_limit = StringField("Rate Limit", description="Mails a second; empty: no limit")
    daily_quota = StringField("Daily Quota", description="Mails a UTC day; empty: no limit")
    test = BooleanField("Test Key", description="mk_test_: its mail is never sent")


def _number(text, kind):
    """A form's number field as ``kind``, None when empty; the text itself when it is no
    number (``key_problems`` then names the field)."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        return kind(text)
    except ValueError:
        return text


def fields_of(form):
    """A key request (as ``POST /keys`` takes it) from the form."""
    return {
        "name": (form.name.data or "").strip(),
        "tenant": (form.tenant.data or "").strip(),
        "scopes": list(form.scopes.data or ()),
        "allowed_from_domains": [
            domain.strip()
            for domain in (form.allowed_from_domains.data or "").split(",")
            if domain.strip()
        ],
        "rate_limit": _number(form.rate_limit.data, float),
        "daily_quota": _number(form.daily_quota.data, int),
        "test": bool(form.test.data),
    }


class KeyView(Protected, ModelView):
    """API keys: listed newest first; made (shown once) and revoked here."""

    can_edit = False
    can_delete = False
    can_view_details = False
    page_size = 50
    list_template = "admin/mail_list.html"
    create_template = "admin/key_create.html"
    form = KeyForm
    form_base_class = SecureForm
    column_list = (
        "tenant",
        "name",
        "prefix",
        "last4",
        "scopes",
        "test",
        "rate_limit",
        "daily_quota",
        "created_at",
        "last_used_at",
        "revoked_at",
    )
    column_labels = {"last4": "Last 4", "last_used_at": "Last Used", "revoked_at": "Revoked"}
    column_type_formatters = {**typefmt.BASE_FORMATTERS, datetime: _utc}
    column_default_sort = ("created_at", True)
    column_searchable_list = ("tenant", "name")

    @expose("/new/", methods=("GET", "POST"))
    def create_view(self):
        """The form; once it is right, the page that shows the new key, this once."""
        form = self.create_form()
        made, errors = None, []
        if request.method == "POST" and self.validate_form(form):
            fields = fields_of(form)
            errors = principals.key_problems(fields, OPERATOR)
            if not errors:
                with transaction() as conn:
                    made = principals.issue(conn, fields, OPERATOR, operator())
                    row = made.row
                    audited(
                        conn,
                        "key.create",
                        str(row["id"]),
                        principals.key_summary(row),
                        row["tenant"],
                    )
                forget_cached_keys()
        return self.render(
            self.create_template, form=form, made=made, errors=errors, return_url=self.url
        )

    @action("revoke", "Revoke", "Revoke the selected keys? Clients using them are refused.")
    def action_revoke(self, ids):
        """Revoke keys: every API process refuses them within a second."""
        found = [uuid.UUID(value) for value in ids if _is_uuid(value)]
        with transaction() as conn:
            gone = [key_id for key_id in found if stored_keys.revoke(conn, key_id)]
            for key_id in gone:
                audited(conn, "key.revoke", str(key_id))
        revoked = len(gone)
        forget_cached_keys()
        flash(f"{revoked} key(s) revoked.", "success")


def _is_uuid(value):
    """Whether ``value`` is a UUID's text."""
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def forget_cached_keys():
    """This process made or revoked a key: its caches ask the database again."""
    current_app.extensions.pop("stored_keys_live", None)
    principals.KEYS.forget()


def init_app(admin):
    """Add the keys' view to ``admin``."""
    admin.add_view(KeyView(ApiKey, db, name="API Keys", endpoint="api_key"))
