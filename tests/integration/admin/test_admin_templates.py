"""The admin's templates: the list and its search, a template's page with its versions, the
preview (the sandboxed frame, the API's 400s shown, never a 500) and a new version recorded
with the operator."""

import html
import json
import re

import pytest

from integration.admin.pages import OPERATOR, csrf_token, log_in, text_of
from mailer.admin.views import HTML_BODY_POLICY

RECEIPT = {
    "name": "receipt",
    "subject": "Order {{ order_id }}",
    "text": "Hi {{ first_name }}, thanks for order {{ order_id }}.",
    "html": "<p>Hi {{ first_name }}</p>",
    "description": "The receipt",
}
PEOPLE = '{"first_name": "Ann", "order_id": "42"}'


@pytest.fixture
def ops(app, client):
    """The test client, logged in to the admin as user ``ops``."""
    return log_in(app, client)


def create(client, **fields):
    """POST /templates of RECEIPT with ``fields`` replaced; the template's admin page's path."""
    response = client.post("/templates", json={**RECEIPT, **fields})
    assert response.status_code == 201, response.get_json()
    return page_of(client, fields.get("name", RECEIPT["name"]))


def page_of(client, name):
    """The admin page of the template listed as ``name`` (the newest of that name)."""
    listing = client.get("/admin/templates/").get_data(as_text=True)
    found = re.search(rf'<tr data-template="{re.escape(name)}" data-id="(\d+)">', listing)
    return f"/admin/templates/{found.group(1)}/"


def listed(client, query=""):
    """The list's rows as {name: {column: text}}."""
    page = client.get(f"/admin/templates/{query}")
    assert page.status_code == 200
    rows = {}
    for row in re.findall(r"<tr data-template.*?</tr>", page.get_data(as_text=True), re.S):
        cells = {
            name: text_of(value)
            for name, value in re.findall(r'<td class="col-(\w+)[^"]*">(.*?)</td>', row, re.S)
        }
        rows[cells["name"]] = cells
    return rows


def preview(client, path, variables=PEOPLE, version=""):
    """Post the page's preview form; the response."""
    data = {"csrf_token": csrf_token(client, path), "variables": variables, "version": version}
    return client.post(f"{path}preview", data=data)


def by_id(page, element_id):
    """The inner HTML of the element with ``element_id`` (pre, p, div or li)."""
    found = re.search(rf'<(\w+)[^>]* id="{element_id}"[^>]*>(.*?)</\1>', page, re.S)
    return found and found.group(2)


def test_the_list_shows_each_template_s_latest_version_and_whether_it_is_deleted(ops, client):
    create(ops)
    create(ops, name="welcome", description="Hello")
    assert ops.put("/templates/welcome", json={"subject": "v2", "text": "x"}).status_code == 201
    create(ops, name="old")
    assert ops.delete("/templates/old").status_code == 204
    rows = listed(ops)
    assert set(rows) == {"receipt", "welcome", "old"}
    assert (rows["receipt"]["version"], rows["receipt"]["description"]) == ("1", "The receipt")
    assert rows["welcome"]["version"] == "2" and rows["welcome"]["updated"].endswith("UTC")
    assert rows["receipt"]["deleted"] == "no" and rows["old"]["deleted"].startswith("deleted ")


def test_the_list_is_searched_by_part_of_a_name_in_any_case(ops):
    for name in ("receipt", "order-receipt", "welcome"):
        create(ops, name=name)
    assert set(listed(ops, "?search=RECEIPT")) == {"receipt", "order-receipt"}
    assert listed(ops, "?search=nothing%25") == {}
    assert ops.get("/admin/templates/?before=x").status_code == 400
    assert ops.get("/admin/templates/?search=a%00b").status_code == 400


def test_the_list_pages_older_templates(ops, monkeypatch):
    monkeypatch.setattr("mailer.admin.templates.PAGE_SIZE", 2)
    for name in ("one", "two", "three"):
        create(ops, name=name)
    first = ops.get("/admin/templates/").get_data(as_text=True)
    assert set(listed(ops)) == {"three", "two"}
    older = html.unescape(re.search(r'href="([^"]+)" id="next-page"', first).group(1))
    assert set(listed(ops, older.removeprefix("/admin/templates/"))) == {"one"}


def test_the_page_shows_every_version_with_who_made_it(ops):
    path = create(ops)
    ops.put("/templates/receipt", json={"subject": "Second", "html": "<b>{{ x }}</b>"})
    page = ops.get(path)
    assert page.status_code == 200
    rows = re.findall(r'<tr data-version="(\d+)">(.*?)</tr>', page.get_data(as_text=True), re.S)
    assert [number for number, _ in rows] == ["2", "1"]
    first = {
        name: html.unescape(re.sub(r"</?pre[^>]*>", "", value)).strip()
        for name, value in re.findall(r'<td class="col-(\w+)[^"]*">(.*?)</td>', rows[1][1], re.S)
    }
    assert first["subject"] == RECEIPT["subject"] and first["text"] == RECEIPT["text"]
    assert first["html"] == RECEIPT["html"] and first["description"] == RECEIPT["description"]
    assert first["created_by"] == "api:local" and first["created_at"].endswith("UTC")
    assert ops.get("/admin/templates/999999/").status_code == 404
    assert ops.get(f"/admin/templates/{2**63}/").status_code == 404


def test_the_pages_need_the_admin_login(app, client):
    path = create(client)
    log_in(app, client)
    del client.environ_base["HTTP_AUTHORIZATION"]
    for url in ("/admin/templates/", path):
        assert client.get(url).status_code == 401


def frame_of(page):
    """The HTML preview's frame on a template's page: (its tag, the URL it loads)."""
    frame = re.search(r"<iframe[^>]*>", page).group(0)
    return frame, html.unescape(re.search(r'src="([^"]*)"', frame).group(1))


def framed(client, url):
    """What the preview's frame loads from ``url``: the response, checked to be served as a
    mail's HTML body is (its own policy: no script, form or remote load; inline styles)."""
    response = client.get(url)
    assert response.status_code == 200 and response.mimetype == "text/html"
    policy = response.headers["Content-Security-Policy"]
    assert policy == HTML_BODY_POLICY
    assert "sandbox" in policy and "script-src" not in policy and "default-src 'none'" in policy
    assert "style-src 'unsafe-inline'" in policy
    assert response.headers["X-Frame-Options"] == "SAMEORIGIN"
    return response


def test_a_preview_renders_the_version_asked_with_the_variables_typed_in(ops, sql):
    path = create(ops)
    ops.put("/templates/receipt", json={"subject": "Second {{ order_id }}", "text": "v2"})
    response = preview(ops, path, version="1")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert by_id(page, "preview-subject") == "Order 42"
    assert by_id(page, "preview-text") == "Hi Ann, thanks for order 42."
    frame, url = frame_of(page)
    assert 'sandbox=""' in frame and 'id="preview-html"' in frame and "srcdoc" not in frame
    assert url.startswith(f"{path}preview.html?") and "version=1" in url
    assert framed(ops, url).get_data(as_text=True) == "<p>Hi Ann</p>"
    latest = preview(ops, path).get_data(as_text=True)
    assert by_id(latest, "preview-subject") == "Second 42"
    assert "preview-html-none" in latest  # version 2 has no HTML
    assert sql("SELECT count(*) AS n FROM email")[0]["n"] == 0


def test_the_frame_shows_the_version_the_page_rendered_with_the_template_s_own_styles(ops):
    styled = '<p id="styled" style="color: rgb(200, 0, 0)">Hi {{ first_name }}</p>'
    path = create(ops, html=styled)
    page = preview(ops, path).get_data(as_text=True)  # the latest: version 1
    ops.put("/templates/receipt", json={"subject": "Later", "html": "<p>later</p>"})
    _, url = frame_of(page)
    assert "version=1" in url  # the version the page rendered, not the latest at load
    body = framed(ops, url).get_data(as_text=True)
    assert body == '<p id="styled" style="color: rgb(200, 0, 0)">Hi Ann</p>'


def test_html_injected_through_a_variable_stays_text_inside_the_sandboxed_frame(ops):
    path = create(ops)
    attack = '{"first_name": "</iframe><script>alert(1)</script>", "order_id": "1"}'
    page = preview(ops, path, variables=attack).get_data(as_text=True)
    assert "<script>alert(1)" not in page and "</iframe><script>" not in page
    _, url = frame_of(page)
    body = framed(ops, url).get_data(as_text=True)
    assert body == "<p>Hi &lt;/iframe&gt;&lt;script&gt;alert(1)&lt;/script&gt;</p>"


def test_a_template_s_own_script_is_served_only_to_the_sandboxed_frame(ops):
    path = create(ops, html="<script>parent.alert(1)</script><p>{{ first_name }}</p>")
    response = preview(ops, path)
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "<script>parent" not in page
    frame, url = frame_of(page)
    assert 'sandbox=""' in frame
    # The frame's own policy (checked by framed) runs no script; the browser test sees it.
    assert "<script>parent.alert(1)</script>" in framed(ops, url).get_data(as_text=True)


@pytest.mark.parametrize(
    ("query", "status", "field"),
    [
        ("?version=1&variables={not+json", 400, "variables"),
        ('?version=1&variables={"first_name":"Ann"}', 400, "variables.order_id"),
        ("?version=x", 400, "version"),
        (f"?version=7&variables={PEOPLE}", 404, "version"),
        (f"?version=2&variables={PEOPLE}", 404, "html"),
    ],
)
def test_the_frame_s_address_answers_the_api_s_json_error(ops, query, status, field):
    path = create(ops)
    ops.put("/templates/receipt", json={"subject": "No HTML", "text": "v2"})
    response = ops.get(f"{path}preview.html{query}")
    assert response.status_code == status and response.is_json
    assert field in [error["field"] for error in response.get_json()["errors"]]


def test_variables_too_long_for_the_frame_s_address_show_the_source_only(ops):
    path = create(ops)
    long = json.dumps({"first_name": "Ann", "order_id": "42", "notes": "x" * 4000})
    page = preview(ops, path, variables=long).get_data(as_text=True)
    assert "<iframe" not in page and "preview-html-long" in page
    assert by_id(page, "preview-html-source") == html.escape("<p>Hi Ann</p>", quote=False)


@pytest.mark.parametrize(
    ("template", "variables", "shown"),
    [
        ({}, '{"first_name": "Ann"}', "variables.order_id: Used by the template, not given"),
        ({}, "{not json", "variables: Must be a JSON object"),
        ({}, "[1, 2]", "variables: Must be a JSON object"),
        ({"html": "{{ ''.__class__ }}"}, PEOPLE, "html: Not allowed in a template"),
        ({"text": "{{ cycler.__init__.__globals__ }}"}, PEOPLE, "text: Not allowed"),
        ({"text": "{% for i in range(10**9) %}{% endfor %}"}, PEOPLE, "Too large to render"),
    ],
)
def test_a_preview_that_fails_shows_the_api_s_400_message(ops, template, variables, shown):
    path = create(ops, **template)
    response = preview(ops, path, variables=variables)
    assert response.status_code == 400
    error = text_of(by_id(response.get_data(as_text=True), "preview-error"))
    assert shown in error
    api = ops.post("/templates/receipt/render", json={"variables": _json_or_text(variables)})
    if api.is_json and api.status_code == 400:
        assert api.get_json()["message"] in error


def _json_or_text(text):
    """``text`` read as JSON, or the text itself when it is not JSON."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def test_a_preview_of_a_version_that_is_not_there_or_without_a_token_is_refused(ops):
    path = create(ops)
    assert preview(ops, path, version="7").status_code == 404
    assert preview(ops, path, version="x").status_code == 400
    forged = ops.post(f"{path}preview", data={"variables": PEOPLE, "version": "1"})
    assert forged.status_code == 400
    assert "CSRF" in text_of(by_id(forged.get_data(as_text=True), "preview-error"))


def add_version(client, path, **fields):
    """Post the page's new-version form (its fields as shown, ``fields`` replaced)."""
    data = {"subject": "New {{ order_id }}", "text": "Text {{ first_name }}", "html": ""}
    data = {**data, "description": "", **fields, "csrf_token": csrf_token(client, path)}
    return client.post(f"{path}versions", data=data)


def test_a_new_version_from_the_admin_is_recorded_with_the_operator(ops, sql):
    path = create(ops)
    response = add_version(ops, path, description="From the admin")
    assert response.status_code == 302
    assert ops.get("/templates/receipt").get_json()["version"] == 2
    version = ops.get("/templates/receipt/versions/2").get_json()
    assert version["created_by"] == OPERATOR and version["description"] == "From the admin"
    assert version["subject"] == "New {{ order_id }}" and version["html"] is None
    page = ops.get(response.headers["Location"]).get_data(as_text=True)
    assert f"Version 2 of receipt added by {OPERATOR}" in text_of(page)
    assert re.search(
        rf'<tr data-version="2">.*?<td class="col-created_by">{OPERATOR}</td>', page, re.S
    )
    rows = sql("SELECT version, created_by FROM template_version ORDER BY version")
    assert [(r["version"], r["created_by"]) for r in rows] == [(1, "api:local"), (2, OPERATOR)]


def test_a_version_that_does_not_compile_shows_the_line_and_stores_nothing(ops, sql):
    path = create(ops)
    response = add_version(ops, path, text="fine\n{% if %}", subject="")
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    errors = text_of(by_id(page, "version-error"))
    assert "Invalid template" in errors and "subject: This field is required" in errors
    assert re.search(r'data-error="subject">This field is required', page)
    assert "fine\n{% if %}" in html.unescape(page)  # the form keeps what was typed
    response = add_version(ops, path, text="fine\n{% if %}")
    error = text_of(by_id(response.get_data(as_text=True), "version-error"))
    assert "text: line 2:" in error
    assert sql("SELECT count(*) AS n FROM template_version")[0]["n"] == 1


def test_a_new_version_needs_the_token_and_a_live_template(ops, sql):
    path = create(ops)
    forged = ops.post(f"{path}versions", data={"subject": "x", "text": "y"})
    assert forged.status_code == 400
    token = csrf_token(ops, path)
    ops.delete("/templates/receipt")
    create(ops)  # a new template takes the name: the old page's form must not add to it
    gone = ops.post(f"{path}versions", data={"subject": "x", "text": "y", "csrf_token": token})
    assert gone.status_code == 409
    assert "deleted" in text_of(by_id(gone.get_data(as_text=True), "version-error"))
    assert "version-form" not in ops.get(path).get_data(as_text=True)
    assert sql("SELECT count(*) AS n FROM template_version")[0]["n"] == 2
