"""The admin's received mail: the list, a received mail's page (its HTML in the sandboxed frame
a mail's page uses, its attachments as downloads, its headers), and the links between a mail
and its replies, every page keeping to the admin's policy."""

import html
import re

import pytest

from integration.admin.pages import log_in, post_mail, summary, text_of
from integration.admin.test_admin import csp_directives, served
from integration.inbound_mail import attachment, inbound_mail, take
from mailer.inbound import reports

HOSTILE = '<p style="color: red">Thanks</p><script>alert(1)</script><img src="http://t.example/p">'


@pytest.fixture
def ops(app, client):
    """The test client, logged in to the admin as user ``ops``."""
    return log_in(app, client)


@pytest.fixture
def reply(app, ops):
    """A mail and a received reply to it, with an HTML body and two files; their ids."""
    app.config["MAX_ATTACHMENT_BYTES"] = 10
    mail_id = post_mail(ops, subject="Your order")
    files = (attachment("terms.pdf", b"%PDF-1.4", "application/pdf"), attachment("big", b"x" * 50))
    received = take(
        app,
        inbound_mail(
            subject="Re: Your order",
            html=HOSTILE,
            in_reply_to=f"<{mail_id}@example.com>",
            attachments=files,
        ),
    )
    return mail_id, str(received.inbound_id)


def test_the_list_shows_received_mail_with_a_link_to_the_mail_it_answers(ops, reply):
    mail_id, inbound_id = reply
    page = ops.get("/admin/inbound/").get_data(as_text=True)
    row = re.search(r"<tr>((?:(?!</tr>).)*Re: Your order.*?)</tr>", page, re.S).group(1)
    cells = dict(re.findall(r'<td class="col-(\w+)">(.*?)</td>', row, re.S))
    assert text_of(cells["from_address"]) == "Ann <ann@example.org>"
    assert f'href="/admin/email/details/?id={mail_id}"' in cells["in_reply_to_mail_id"]
    filtered = ops.get(f"/admin/inbound/?flt0_in_reply_to_equals={mail_id}")
    assert "Re: Your order" in filtered.get_data(as_text=True)
    other = ops.get("/admin/inbound/?flt0_in_reply_to_equals=not-a-uuid")
    assert other.status_code == 200 and "Re: Your order" not in other.get_data(as_text=True)


def test_a_received_mails_page_shows_it_the_answer_first(ops, reply):
    mail_id, inbound_id = reply
    page = ops.get(f"/admin/inbound/details/?id={inbound_id}").get_data(as_text=True)
    card = summary(page)
    assert card["From"] == "Ann <ann@example.org>"
    assert card["To"] == "Support <support@in.example.com>"
    assert card["In reply to"] == mail_id
    assert f'href="/admin/email/details/?id={mail_id}"' in page  # back to the mail
    files = dict(re.findall(r'<li data-position="(\d)">(.*?)</li>', page, re.S))
    assert f'href="/admin/inbound/{inbound_id}/attachments/0"' in files["0"]
    assert "dropped: past MAX_ATTACHMENT_BYTES" in text_of(files["1"]) and "href" not in files["1"]
    download = ops.get(f"/admin/inbound/{inbound_id}/attachments/0")
    assert download.data == b"%PDF-1.4"
    assert download.headers["Content-Disposition"].startswith("attachment;")
    assert ops.get(f"/admin/inbound/{inbound_id}/attachments/1").status_code == 404
    headers = re.search(r'<section id="inbound-headers">(.*?)</section>', page, re.S).group(1)
    assert text_of(headers).count("Received") == 2


def test_its_html_is_shown_in_the_mail_pages_sandbox(ops, reply):
    _, inbound_id = reply
    page = ops.get(f"/admin/inbound/details/?id={inbound_id}").get_data(as_text=True)
    frame = re.search(r"<iframe[^>]*>", page).group(0)
    assert ' sandbox="" ' in frame
    source = html.unescape(re.search(r' src="([^"]*)"', frame).group(1))
    assert source == f"/admin/inbound/{inbound_id}/body.html"
    body = ops.get(source)
    assert body.get_data(as_text=True) == HOSTILE
    policy = body.headers["Content-Security-Policy"]
    assert policy.startswith("default-src 'none'; img-src data:; style-src 'unsafe-inline';")
    assert "; sandbox;" in policy and "script-src" not in policy
    assert "<script>alert(1)</script>" not in page


def test_a_mail_without_replies_says_so_in_a_line(ops):
    page = ops.get(f"/admin/email/details/?id={post_mail(ops)}").get_data(as_text=True)
    section = re.search(r'<section id="mail-replies">(.*?)</section>', page, re.S).group(1)
    assert text_of(section).startswith("No replies.") and 'id="all-received"' in section
    assert "<h2" not in section


def test_a_mails_page_lists_its_replies_with_links(app, ops, reply, monkeypatch):
    mail_id, inbound_id = reply
    monkeypatch.setattr(reports, "is_auto_reply", lambda mail: True)
    take(app, inbound_mail(subject="Out of office", in_reply_to=f"<{mail_id}@example.com>"))
    page = ops.get(f"/admin/email/details/?id={mail_id}").get_data(as_text=True)
    section = re.search(r'<section id="mail-replies">(.*?)</section>', page, re.S).group(1)
    assert (
        text_of(re.search(r'id="reply-count">(.*?)</small>', section, re.S).group(1)) == "1 reply"
    )
    replies = re.findall(r'<li data-inbound="([^"]+)"><a href="([^"]+)">(.*?)</a>', section)
    assert replies == [(inbound_id, f"/admin/inbound/details/?id={inbound_id}", "Re: Your order")]
    everything = html.unescape(re.search(r'id="all-received" href="([^"]+)"', section).group(1))
    listed = ops.get(everything).get_data(as_text=True)
    assert "Out of office" in listed and "Re: Your order" in listed


@pytest.mark.parametrize("path", ["/admin/inbound/", "/admin/inbound/details/?id={id}"])
def test_the_pages_keep_to_the_admins_policy(ops, reply, path):
    response = ops.get(path.format(id=reply[1]))
    assert response.status_code == 200
    assert csp_directives(response)["frame-ancestors"] == ["'none'"]
    page = response.get_data(as_text=True)
    nonces = {
        source[7:-1]
        for source in csp_directives(response)["script-src"]
        if source.startswith("'nonce-")
    }
    for tag in re.findall(r"<script\b[^>]*>", page):
        src = re.search(r'\ssrc="([^"]+)"', tag)
        if src:
            assert served(ops, src.group(1)), tag
        else:
            assert re.search(r'\snonce="([^"]+)"', tag).group(1) in nonces, tag
    assert re.findall(r"<[^>]*\son[a-z]+=", page) == []
    assert re.findall(r"<[^>]*\sstyle=", page) == []


def test_a_webhook_of_a_received_mail_links_to_it(ops, sql, reply):
    _, inbound_id = reply
    # No endpoint takes it in these settings: the outbox's row written as the fan-out would.
    sql(
        "INSERT INTO webhook_outbox (message_id, event_type, inbound_id, payload) "
        "VALUES ('msg_1', 'mail.received', :id, '{}')",
        id=inbound_id,
    )
    page = ops.get("/admin/webhook/").get_data(as_text=True)
    assert f'href="/admin/inbound/details/?id={inbound_id}"' in page
