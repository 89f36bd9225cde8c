"""The audit log in the admin: every change an operator makes (mail actions, a mail created,
breakers by hand, suppressions) appears exactly once, with the operator, the target and the
client; the Audit log page lists the rows and filters them by tenant and action."""

import pytest

from integration.admin.pages import OPERATOR, csrf_token, log_in, post_mail


@pytest.fixture
def ops(app, client):
    """The test client, logged in to the admin as user ``ops``."""
    return log_in(app, client)


def act(client, name, *ids):
    """Post the mail view's action ``name`` for ``ids`` with a valid CSRF token."""
    data = {
        "action": name,
        "rowid": list(ids),
        "url": "/admin/email/",
        "csrf_token": csrf_token(client, "/admin/email/"),
    }
    return client.post("/admin/email/action/", data=data)


def logged(sql):
    """(actor, action, target, tenant, client) of each audit row, oldest first."""
    return [
        tuple(row.values())
        for row in sql("SELECT actor, action, target, tenant, client FROM audit_log ORDER BY id")
    ]


def test_each_operator_change_is_logged_once(ops, sql):
    first, second = post_mail(ops), post_mail(ops)
    act(ops, "cancel", first, second)
    act(ops, "cancel", first)  # already cancelled: nothing changes, nothing is logged
    act(ops, "retry", first)
    token = csrf_token(ops, "/admin/")
    ops.post("/admin/providers/mailgun/open", data={"reason": "maintenance", "csrf_token": token})
    ops.post("/admin/providers/mailgun/close", data={"csrf_token": token})
    token = csrf_token(ops, "/admin/suppression/new/")
    ops.post(
        "/admin/suppression/new/",
        data={
            "address": "carol@example.org",
            "reason": "manual",
            "tenant": "shop",
            "csrf_token": token,
        },
    )
    ops.post(
        "/admin/suppression/delete/", data={"id": "shop,carol@example..org", "csrf_token": token}
    )
    here = "127.0.0.1"
    assert sorted(logged(sql)[:2]) == sorted(
        [
            (OPERATOR, "mail.cancel", first, None, here),
            (OPERATOR, "mail.cancel", second, None, here),
        ]
    )
    assert logged(sql)[2:] == [
        (OPERATOR, "mail.retry", first, None, here),
        (OPERATOR, "breaker.open", "mailgun", None, here),
        (OPERATOR, "breaker.close", "mailgun", None, here),
        (OPERATOR, "suppression.add", "carol@example.org", "shop", here),
        (OPERATOR, "suppression.remove", "carol@example.org", "shop", here),
    ]
    [opened] = sql("SELECT summary FROM audit_log WHERE action = 'breaker.open'")
    assert opened["summary"] == {"reason": "maintenance"}


def test_a_mail_created_in_the_admin_is_logged(ops, sql):
    token = csrf_token(ops, "/admin/email/new/")
    answer = ops.post(
        "/admin/email/new/",
        data={
            "from_address": "a@example.com",
            "to": "b@example.com",
            "subject": "By hand",
            "text": "Hi",
            "csrf_token": token,
        },
    )
    assert answer.status_code == 302
    [mail] = sql("SELECT id::text FROM email")
    assert logged(sql) == [(OPERATOR, "mail.create", mail["id"], None, "127.0.0.1")]


def test_the_audit_page_lists_and_filters(ops, sql):
    sql(
        "INSERT INTO audit_log (actor, tenant, action, target) VALUES "
        "('key:checkout', 'shop', 'template.create', 'welcome'), "
        "('key:invoices', 'billing', 'suppression.add', 'x@example.com')"
    )
    page = ops.get("/admin/audit/").get_data(as_text=True)
    assert "welcome" in page and "x@example.com" in page
    shop = ops.get("/admin/audit/?flt0_tenant_equals=shop").get_data(as_text=True)
    assert "welcome" in shop and "x@example.com" not in shop
    added = ops.get("/admin/audit/?flt0_action_equals=suppression.add").get_data(as_text=True)
    assert "welcome" not in added and "x@example.com" in added
    assert ops.get("/admin/audit/?page=-3").status_code == 200
    assert ops.post("/admin/audit/delete/", data={"id": "1"}).status_code in (302, 404, 405)
    assert len(sql("SELECT * FROM audit_log")) == 2
