"""Stored templates: create one, add a version, read, list, delete, and resolve the versions
that mail asks for (``sql/templates.sql``).

A template is a name and its versions, numbered from 1; a version is never changed, only
followed by the next. Deleting a template hides it from everything here (no new mail can use
it) and keeps its rows, so the name may be taken again by a new template. Rendering is not done
here: ``mailer.rendering`` compiles and renders what ``resolve`` returns. Each tenant has
templates of its own (``tenant``: the ``default`` tenant's unless said).
"""

from typing import NamedTuple

from mailer.queue.queries import as_json, load

SQL = load("templates.sql")
DEFAULT_TENANT = "default"


class Source(NamedTuple):
    """A version to render: its template's ``id``, its ``version`` and the template texts."""

    id: int
    version: int
    subject: str
    text: str | None
    html: str | None

    @property
    def key(self):
        """What identifies the version's compiled code: (template id, version)."""
        return (self.id, self.version)

    def sources(self):
        """The texts by field, as ``rendering`` takes them."""
        return {"subject": self.subject, "text": self.text, "html": self.html}


def _fields(name, fields, created_by, tenant):
    """The parameters of a new version."""
    return {
        "tenant": tenant,
        "name": name,
        "subject": fields["subject"],
        "text": fields.get("text"),
        "html": fields.get("html"),
        "description": fields.get("description"),
        "created_by": created_by,
    }


def create(conn, name, fields, created_by, tenant=DEFAULT_TENANT):
    """A new template ``name`` with ``fields`` as its version 1: the version as a dict (with
    ``versions``), or None if a live template has that name."""
    params = _fields(name, fields, created_by, tenant)
    row = conn.exec_driver_sql(SQL.create, params).mappings().first()
    return None if row is None else dict(row)


def add_version(conn, name, fields, created_by, tenant=DEFAULT_TENANT, template_id=None):
    """The next version of ``tenant``'s template ``name``, as a dict, or None if there is none.
    With ``template_id``, only if the template of that name is still that one (the admin's page
    names a template by id: a deleted one's name may have been taken since)."""
    params = {**_fields(name, fields, created_by, tenant), "id": template_id}
    row = conn.exec_driver_sql(SQL.add_version, params).mappings().first()
    return None if row is None else dict(row)


def version(conn, name, number=None, tenant=DEFAULT_TENANT):
    """The template ``name``'s version ``number`` (None: its latest) as a dict with
    ``versions`` (every number), or None."""
    params = {"name": name, "version": number, "tenant": tenant}
    row = conn.exec_driver_sql(SQL.version, params).mappings().first()
    return None if row is None else dict(row)


def page(conn, limit=50, after=None, search=None, tenant=DEFAULT_TENANT):
    """A page of live templates, newest first, and whether more follow: ``(rows, more)``.
    ``after``: the (created_at, name) of the previous page's last."""
    created, name = after or (None, None)
    params = {
        "search": search or None,
        "tenant": tenant,
        "after_created": created,
        "after_name": name,
        "limit": limit + 1,
    }
    rows = [dict(row) for row in conn.exec_driver_sql(SQL.page, params).mappings()]
    return rows[:limit], len(rows) > limit


def admin_page(conn, limit=50, before=None, search=None):
    """The admin's list: a page of every template, deleted ones too, newest first, and whether
    more follow: ``(rows, more)``. ``before``: the id of the previous page's last."""
    params = {"search": search or None, "before": before, "limit": limit + 1}
    rows = [dict(row) for row in conn.exec_driver_sql(SQL.admin_page, params).mappings()]
    return rows[:limit], len(rows) > limit


def history(conn, template_id, limit=100):
    """The template ``template_id`` (deleted or not) as a dict with ``version_count`` and
    ``versions``, its latest ``limit`` versions newest first (every field); or None."""
    row = conn.exec_driver_sql(SQL.template_by_id, {"id": template_id}).mappings().first()
    if row is None:
        return None
    params = {"id": template_id, "limit": limit}
    versions = [dict(v) for v in conn.exec_driver_sql(SQL.versions_by_id, params).mappings()]
    return {**row, "versions": versions}


def source_by_id(conn, template_id, number=None):
    """The ``Source`` of the template ``template_id``'s version ``number`` (None: its latest),
    deleted or not; or None."""
    params = {"id": template_id, "version": number}
    row = conn.exec_driver_sql(SQL.source_by_id, params).first()
    return None if row is None else Source(*row)


def delete(conn, name, tenant=DEFAULT_TENANT):
    """Delete the template ``name``; whether there was one."""
    return conn.exec_driver_sql(SQL.delete, {"name": name, "tenant": tenant}).first() is not None


def resolve(conn, wanted, tenant=DEFAULT_TENANT):
    """The versions asked for: ``wanted`` is a set of (name, version or None for the latest);
    the answer maps each pair found to its ``Source`` (a pair missing was not found)."""
    if not wanted:
        return {}
    pairs = [{"name": name, "version": number} for name, number in sorted(wanted, key=str)]
    rows = conn.exec_driver_sql(SQL.resolve, {"wanted": as_json(pairs), "tenant": tenant})
    return {(row.name, row.asked): Source(*row[2:]) for row in rows}
