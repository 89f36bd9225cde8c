"""The admin's templates: every template listed and searched by name, the deleted ones marked;
a template's page with its versions, a preview of any version rendered with variables typed in
as JSON, and a form that adds a version, recorded with the operator who added it.

The checks are the API's own, so the admin and the API can never disagree: a preview's version
and variables, and what stops a template from rendering, are the 400 that
``POST /templates/<name>/render`` answers (``mailer.api.templates.preview``); a new version's
fields are checked and compiled as ``PUT /templates/<name>`` checks them (``validate_version``).
The page shows that answer's message and fields, with its status, never a 500. The rendered
HTML is shown as a mail's HTML body is, in a sandboxed frame loaded from its own URL
(``preview.html?version=&variables=``, served by ``views.sandboxed_html``): the template's own
inline styles applied, no script, no form, no remote load. Forms carry a CSRF token, as every
admin form does.

A page names a template by its id, not its name: a deleted template keeps its versions and its
page, and its name may be taken again by a new template.
"""

from flask import abort, flash, redirect, request, url_for
from flask_admin import BaseView, expose
from flask_admin.form import SecureForm
from wtforms import StringField, TextAreaField

from mailer.admin.views import Protected, operator, sandboxed_html
from mailer.api.errors import ApiError, error_response
from mailer.api.templates import VERSION_FIELDS, preview, templated_ask, validate_version
from mailer.database import transaction
from mailer.queue import templates

PAGE_SIZE = 50  # templates per page of the list
VERSIONS_SHOWN = 100  # the latest versions shown on a template's page (all can be previewed)
MAX_ID = 2**63 - 1  # the database's bigint: a larger id names no template
# The longest URL of the HTML preview's frame (it carries the variables): gunicorn refuses a
# request line over 4,094 bytes (``limit_request_line``). Longer variables show the source only.
PREVIEW_URL_MAX = 3_500  # characters
CSRF_PROBLEM = ApiError(
    400,
    "The form's CSRF token is missing or expired; nothing was done. Please submit it again.",
    [{"field": "csrf_token", "message": "Missing or expired"}],
)


class PreviewForm(SecureForm):
    """Render a version with variables typed in as a JSON object."""

    version = StringField("Version")
    variables = TextAreaField("Variables (a JSON object)")


class VersionForm(SecureForm):
    """A new version's fields, as ``PUT /templates/<name>`` takes them."""

    subject = StringField("Subject")
    text = TextAreaField("Text")
    html = TextAreaField("HTML")
    description = StringField("Description")


class TemplateView(Protected, BaseView):
    """``/admin/templates``: the list, a template's page, its preview and its new versions."""

    @expose("/")
    def index(self):
        """A page of templates, newest first, deleted ones too (``?search=`` part of a name,
        ``?before=`` the id after which the page starts)."""
        search = request.args.get("search", "").strip()
        before = _template_id(request.args.get("before"))
        with transaction(single_statement=True) as conn:
            rows, more = templates.admin_page(conn, PAGE_SIZE, before, search or None)
        return self.render(
            "admin/template_list.html",
            rows=rows,
            search=search,
            next_before=rows[-1]["id"] if more else None,
        )

    @expose("/<int(max=9223372036854775807):template_id>/")
    def details(self, template_id):
        """The template's page: its versions, the preview form and the new version's form."""
        return self._page(template_id)

    @expose("/<int(max=9223372036854775807):template_id>/preview", methods=["POST"])
    def preview(self, template_id):
        """The page with a version rendered with the variables typed in, or the 400's message;
        its HTML in a frame that loads ``preview_html`` with the same version and variables."""
        form = PreviewForm(request.form)
        if not form.validate():
            return self._page(template_id, preview_form=form, preview_problem=CSRF_PROBLEM)
        variables = (form.variables.data or "").strip()
        try:
            version, rendered = self._render(template_id, form.version.data, variables)
        except ApiError as err:
            return self._page(template_id, preview_form=form, preview_problem=err)
        url = url_for(
            ".preview_html", template_id=template_id, version=version, variables=variables
        )
        return self._page(
            template_id,
            preview_form=form,
            rendered=rendered,
            html_url=url if len(url) <= PREVIEW_URL_MAX else None,
        )

    @expose("/<int(max=9223372036854775807):template_id>/preview.html")
    def preview_html(self, template_id):
        """The HTML of version ``?version=`` rendered with ``?variables=`` (a JSON object),
        alone, for the preview's frame, as a mail's HTML body is served; the API's JSON 400 or
        404 if it does not render, or if the version has no HTML."""
        asked = request.args
        try:
            _, rendered = self._render(
                template_id, asked.get("version", ""), asked.get("variables", "")
            )
        except ApiError as err:
            return error_response(err.status, err.message, err.errors)
        if not rendered.html:
            return error_response(
                404, "This version has no HTML", [{"field": "html", "message": "None"}]
            )
        return sandboxed_html(rendered.html)

    @expose("/<int(max=9223372036854775807):template_id>/versions", methods=["POST"])
    def add_version(self, template_id):
        """Store the form as the template's next version, made by this operator; on a field
        that does not compile, the page with each error at its field."""
        form = VersionForm(request.form)
        if not form.validate():
            return self._page(template_id, version_form=form, version_problem=CSRF_PROBLEM)
        try:
            data = {name: form[name].data for name in VERSION_FIELDS}
            fields = validate_version(data, named=False)
        except ApiError as err:
            return self._page(template_id, version_form=form, version_problem=err)
        with transaction() as conn:
            found = templates.history(conn, template_id, limit=0)
            row = found and templates.add_version(
                conn, found["name"], fields, operator(), found["tenant"], template_id
            )
        if found is None:
            abort(404)
        if row is None:
            problem = ApiError(409, "This template is deleted: it takes no new version")
            return self._page(template_id, version_form=form, version_problem=problem)
        flash(f"Version {row['version']} of {row['name']} added by {operator()}.", "success")
        return redirect(url_for(".details", template_id=template_id))

    def _render(self, template_id, version, variables):
        """The number of the version asked (``version``, blank for the latest) and what it
        renders with ``variables`` (a JSON object's text); ApiError as the API's."""
        ask = templated_ask({"version": version, "variables": variables})
        with transaction(single_statement=True) as conn:
            source = templates.source_by_id(conn, template_id, ask.version)
        if source is None:
            raise ApiError(
                404, "No such version", [{"field": "version", "message": "Not a version of this"}]
            )
        return source.version, preview(source, ask.variables)

    def _page(self, template_id, preview_form=None, version_form=None, **shown):
        """The template's page, with what a form gave (``shown``); its status is the status of
        the problem shown, if there is one (a form that failed), else 200."""
        with transaction(single_statement=True) as conn:
            found = templates.history(conn, template_id, VERSIONS_SHOWN)
        if found is None:
            abort(404)
        latest = found["versions"][0]
        if preview_form is None:
            preview_form = PreviewForm(version=latest["version"], variables="{}")
        if version_form is None:
            version_form = VersionForm(**{name: latest[name] for name in VERSION_FIELDS})
        problem = shown.get("preview_problem") or shown.get("version_problem")
        page = self.render(
            "admin/template_details.html",
            record=found,
            preview_form=preview_form,
            version_form=version_form,
            field_errors=_by_field(shown.get("version_problem")),
            **shown,
        )
        return page, problem.status if problem else 200


def _template_id(value):
    """A template id from the query string (None for none); 400 for one that is not."""
    if value in (None, ""):
        return None
    if not (value.isascii() and value.isdigit()) or int(value) > MAX_ID:
        abort(400, "before must be a template's id")
    return int(value)


def _by_field(problem):
    """A new version's errors by the form's field: {field: [message]}."""
    found = {}
    for error in problem.errors if problem else ():
        found.setdefault(error["field"], []).append(error["message"])
    return found


def init_app(admin):
    """Add the templates' pages to the admin (``views.init_app``'s ``Admin``)."""
    admin.add_view(TemplateView(name="Templates", endpoint="templates"))
    return admin
