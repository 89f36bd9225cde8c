"""The template resources: ``/templates`` (create, list), ``/templates/<name>`` (read the
latest version, add one, delete), ``/templates/<name>/versions/<n>`` and
``/templates/<name>/render`` (a preview: nothing is stored).

A template's fields are compiled when a version is stored, so one that does not compile is
refused then, with its line and Jinja's message, not when mail is sent. Versions are never
changed: ``PUT`` adds the next one. Every read and change goes through ``mailer.queue``.

Templates belong to the key's tenant (each tenant has names of its own); reading and
previewing need ``templates:read``, changing ``templates:write``.
"""

from flask import current_app, request
from flask_restful import Resource

from mailer.api import listing
from mailer.api.auditing import audited
from mailer.api.auth import current_principal
from mailer.api.errors import ApiError
from mailer.api.resources import actor, authenticated, needs, read_mail_request
from mailer.api.templated import NAME, RENDERER, Asked
from mailer.database import transaction
from mailer.queue import templates
from mailer.rendering import RenderError
from mailer.shapes.templates import (
    MAX_DESCRIPTION,
    MAX_SUBJECT_SOURCE,
    RenderedTemplate,
    Template,
    TemplatePage,
    TemplateVersion,
)
from mailer.validation.headers import header_problem

VERSION_FIELDS = ("subject", "text", "html", "description")


def unknown_template(name, version=None):
    """The 404 of a name (or a version) that names no live template."""
    if version is not None:
        return ApiError(
            404,
            "No such version of this template",
            [{"field": "version", "message": f"No version {version} of {name!r}"}],
        )
    return ApiError(404, "No template with this name", [{"field": "name", "message": "Unknown"}])


def known_name(name):
    """``name`` from a URL, or a 404 if no template could have it."""
    if not NAME.match(name):
        raise unknown_template(name)
    return name


def validate_version(data, named):
    """A new version's fields from a request body, checked and compiled; 400 names each bad
    field. ``named``: whether the body also gives the template's ``name`` (``POST``)."""
    allowed = set(VERSION_FIELDS) | ({"name"} if named else set())
    errors = [{"field": key, "message": "Unknown field"} for key in sorted(set(data) - allowed)]
    if named and not (isinstance(data.get("name"), str) and NAME.match(data["name"])):
        errors.append({"field": "name", "message": "1-100 letters, digits, _ . or -"})
    fields = {field: _text(data.get(field), field, errors) for field in VERSION_FIELDS}
    if fields["subject"] is None and not _has(errors, "subject"):
        errors.append({"field": "subject", "message": "This field is required"})
    if not fields["text"] and not fields["html"] and not _has(errors, "text", "html"):
        errors.append({"field": "text", "message": "Give a text or an html template (or both)"})
    if not errors:
        errors = RENDERER.compile_errors(fields)
    if errors:
        raise ApiError(400, "Invalid template", errors)
    return fields


def _has(errors, *fields):
    """Whether one of ``fields`` has an error listed already."""
    return any(error["field"] in fields for error in errors)


def _text(value, field, errors):
    """A text field of a version (None for none), checked."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        errors.append({"field": field, "message": "Must be a string"})
        return None
    if "\x00" in value:
        errors.append({"field": field, "message": "Must not contain NUL characters"})
        return None
    limit = {"subject": MAX_SUBJECT_SOURCE, "description": MAX_DESCRIPTION}.get(field)
    if limit is not None and len(value) > limit:
        errors.append({"field": field, "message": f"Must be at most {limit:,} characters"})
        return None
    problem = field == "subject" and header_problem(value)
    if problem:
        errors.append({"field": field, "message": problem})
        return None
    return value


def tenant():
    """The tenant whose templates the request acts on: its key's."""
    return current_principal().tenant


def version_summary(row):
    """What the audit log keeps of a stored version: its number and description (the
    templates' texts are in the version itself)."""
    return {"version": row["version"], "description": row["description"]}


def created(row):
    """The 201 of a stored version, with its Location."""
    location = f"/templates/{row['name']}/versions/{row['version']}"
    return Template.dump(row), 201, {"Location": location}


class TemplateList(Resource):
    """``/templates``: create a template, or list them."""

    method_decorators = [authenticated]

    @needs("templates:write")
    def post(self):
        """201 with version 1 of a new template; 409 if a live template has the name."""
        data = read_mail_request()
        fields = validate_version(data, named=True)
        with transaction() as conn:
            row = templates.create(conn, data["name"], fields, actor(), tenant())
            if row is not None:
                audited(conn, "template.create", row["name"], version_summary(row))
        if row is None:
            raise ApiError(
                409,
                "A template with this name exists",
                [{"field": "name", "message": "Taken: add a version with PUT /templates/<name>"}],
            )
        return created(row)

    @needs("templates:read")
    def get(self):
        """A page of templates, newest first (``?search=``, ``?limit=``, ``?cursor=``)."""
        search, limit, after = parse_template_query()
        with transaction(single_statement=True) as conn:
            rows, more = templates.page(conn, limit, after, search, tenant())
        last = rows[-1] if more else None
        return TemplatePage.dump(
            {
                "templates": rows,
                "count": len(rows),
                "next_cursor": last and listing.encode_position(last["created_at"], last["name"]),
            }
        )


def parse_template_query():
    """``GET /templates``' (search, limit, position after), checked; 400 names a bad one."""
    args = request.args
    unknown = sorted(set(args) - {"search", "limit", "cursor"})
    if unknown:
        raise listing.bad(unknown[0], "Unknown query parameter")
    search = args.get("search")
    if search is not None and not NAME.match(search):
        raise listing.bad("search", "1-100 letters, digits, _ . or -")
    return (
        search,
        listing.parse_limit(args.get("limit")),
        listing.decode_position(args.get("cursor")),
    )


class TemplateItem(Resource):
    """``/templates/<name>``: the latest version; add a version; delete the template."""

    method_decorators = [authenticated]

    @needs("templates:read")
    def get(self, name):
        """The latest version, with ``versions``; 404 for an unknown name."""
        with transaction(single_statement=True) as conn:
            row = templates.version(conn, known_name(name), tenant=tenant())
        if row is None:
            raise unknown_template(name)
        return Template.dump(row)

    @needs("templates:write")
    def put(self, name):
        """201 with the next version; the old ones stay. 404 for an unknown name."""
        data = read_mail_request()
        if data.get("name") not in (None, name):
            raise ApiError(
                400, "Invalid template", [{"field": "name", "message": "Must be the URL's name"}]
            )
        data.pop("name", None)
        fields = validate_version(data, named=False)
        with transaction() as conn:
            row = templates.add_version(conn, known_name(name), fields, actor(), tenant())
            if row is not None:
                audited(conn, "template.version", row["name"], version_summary(row))
        if row is None:
            raise unknown_template(name)
        return created(row)

    @needs("templates:write")
    def delete(self, name):
        """204 once deleted: no new mail can use it; mail rendered from it stays."""
        with transaction() as conn:
            deleted = templates.delete(conn, known_name(name), tenant())
            if deleted:
                audited(conn, "template.delete", name)
        if not deleted:
            raise unknown_template(name)
        return "", 204


class TemplateVersionItem(Resource):
    """``/templates/<name>/versions/<n>``: one version."""

    method_decorators = [authenticated]

    @needs("templates:read")
    def get(self, name, version):
        """The version; 404 for an unknown name or number."""
        with transaction(single_statement=True) as conn:
            row = templates.version(conn, known_name(name), version, tenant())
        if row is None:
            raise unknown_template(name, version)
        return TemplateVersion.dump(row)


class TemplateRender(Resource):
    """``/templates/<name>/render``: a preview, nothing stored."""

    method_decorators = [authenticated]

    @needs("templates:read")
    def post(self, name):
        """200 with the version (``version``, default the latest) rendered with
        ``variables``; 400 names what the template needs and did not get."""
        data = read_mail_request()
        unknown = sorted(set(data) - {"variables", "version"})
        if unknown:
            raise ApiError(
                400,
                "Invalid request",
                [{"field": key, "message": "Unknown field"} for key in unknown],
            )
        ask = templated_ask(data)
        with transaction(single_statement=True) as conn:
            found = templates.resolve(conn, {(known_name(name), ask.version)}, tenant()).get(
                (name, ask.version)
            )
        if found is None:
            raise unknown_template(name, ask.version)
        return RenderedTemplate.dump(preview(found, ask.variables)._asdict())


def preview(source, variables):
    """``source`` (a ``templates.Source``) rendered with ``variables``, a ``Rendered``; 400
    names what the template needs and did not get, or what it may not do."""
    try:
        return RENDERER.render(
            source.key, source.sources(), variables, current_app.config["MAX_RENDERED_BYTES"]
        )
    except RenderError as err:
        raise ApiError(400, "The template does not render", [err.as_error()]) from None


def templated_ask(data):
    """The version and variables of a preview, checked as a mail's; 400 if they are bad."""
    ask = Asked(
        {"template": "x", "template_version": data.get("version"), **_variables(data)},
        current_app.config["MAX_VARIABLES_BYTES"],
    )
    if ask.errors:
        raise ApiError(
            400,
            "Invalid request",
            [
                {
                    **error,
                    "field": "version" if error["field"] == "template_version" else error["field"],
                }
                for error in ask.errors
            ],
        )
    return ask


def _variables(data):
    """The ``variables`` member of a preview, if it has one."""
    return {"variables": data["variables"]} if "variables" in data else {}


def init_app(api):
    """Register the template resources on ``api`` (the mail API's ``JsonApi``)."""
    api.add_resource(TemplateList, "/templates")
    api.add_resource(TemplateItem, "/templates/<string:name>")
    api.add_resource(
        TemplateVersionItem, "/templates/<string:name>/versions/<int(max=2147483647):version>"
    )
    api.add_resource(TemplateRender, "/templates/<string:name>/render")
