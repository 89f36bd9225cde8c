"""Reading and driving the admin's pages through the test client: forms, lists, details."""

import base64
import html
import re
from html.parser import HTMLParser

from helpers import sample_mail


def post_mail(client, **fields):
    """Submit a mail through the API; returns its id."""
    response = client.post("/mail", json=sample_mail(**fields))
    assert response.status_code == 202, response.get_json()
    return response.get_json()["id"]


def csrf_token(client, path):
    """The CSRF token of the form rendered at ``path``."""
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)


def text_of(markup):
    """The text a browser shows for an HTML fragment, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", markup)).split())


def details(client, mail_id):
    """The detail page of a mail as {label: text}."""
    page = client.get(f"/admin/email/details/?id={mail_id}").get_data(as_text=True)
    return {
        text_of(label): text_of(value)
        for label, value in re.findall(
            r"<tr>\s*<td>\s*<b>(.*?)</b>\s*</td>\s*<td>(.*?)</td>\s*</tr>", page, re.S
        )
    }


def listed_subjects(client, query=""):
    """The subjects shown by the mail list (with ``query`` string)."""
    page = client.get(f"/admin/email/{query}")
    assert page.status_code == 200
    cells = re.findall(
        r'<td class="col-subject">\s*(.*?)\s*</td>', page.get_data(as_text=True), re.S
    )
    return sorted(text_of(cell) for cell in cells)


class FieldTexts(HTMLParser):
    """The text of each element with a ``data-field`` attribute, its inner elements' too."""

    def __init__(self):
        super().__init__()
        self.fields, self.open = {}, []  # open: [field, depth] of the fields being read

    def handle_starttag(self, tag, attrs):
        """Open a field, or go one level deeper in those open."""
        for entry in self.open:
            entry[1] += 1
        field = dict(attrs).get("data-field")
        if field:
            self.fields[field] = ""
            self.open.append([field, 0])

    def handle_endtag(self, tag):
        """Close the fields this tag ends."""
        for entry in self.open:
            entry[1] -= 1
        self.open = [entry for entry in self.open if entry[1] >= 0]

    def handle_data(self, data):
        """Text belongs to every field open."""
        for field, _depth in self.open:
            self.fields[field] += data


def provider_row(page, name):
    """The dashboard's row of provider ``name`` as {field: text}."""
    row = re.search(rf'<tr data-provider="{name}">(.*?)</tr>', page, re.S).group(1)
    parser = FieldTexts()
    parser.feed(row)
    return {field: " ".join(text.split()) for field, text in parser.fields.items()}


OPERATOR = "admin:ops"  # what admin.operator() records for the logged-in user below


def log_in(app, client):
    """Require the admin login on ``app`` and log ``client`` in as user ``ops`` (HTTP Basic)."""
    app.config.update(ADMIN_USERNAME="ops", ADMIN_PASSWORD="s3cret")
    token = base64.b64encode(b"ops:s3cret").decode()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Basic {token}"
    return client


TIMELINE_CELLS = ("at", "actor", "what", "provider", "recipient", "detail")


def timeline(page):
    """A mail page's timeline, oldest first, as dicts of its cells' text (and ``kind``)."""
    table = re.search(r'<table[^>]*id="timeline">(.*?)</table>', page, re.S).group(1)
    rows = []
    for kind, row in re.findall(r'<tr data-kind="(\w+)"[^>]*>(.*?)</tr>', table, re.S):
        cells = dict(re.findall(r'<td class="tl-(\w+)"[^>]*>(.*?)</td>', row, re.S))
        rows.append({"kind": kind, **{name: text_of(cells[name]) for name in TIMELINE_CELLS}})
    return rows


def summary(page):
    """A mail page's summary card as {label: text}."""
    card = re.search(r'<section class="summary".*?</section>', page, re.S).group(0)
    return {
        text_of(label): text_of(value)
        for label, value in re.findall(r"<dt>(.*?)</dt><dd[^>]*>(.*?)</dd>", card, re.S)
    }
