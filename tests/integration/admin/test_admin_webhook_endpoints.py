"""The admin's client webhooks per endpoint: each delivery names its tenant and endpoint, an
endpoint links to its deliveries, and no page shows an endpoint's secret."""

import uuid

from integration.admin.pages import post_mail

SECRET = "whsec_c2VjcmV0LW5ldmVyLXNob3duLWluLXRoZS1hZG1pbg=="


def add_endpoint(sql, tenant, url):
    """An endpoint row of ``tenant``; its id."""
    endpoint_id = uuid.uuid4()
    sql(
        "INSERT INTO webhook_endpoint (id, tenant, url, secret) VALUES (:id, :tenant, :url, :s)",
        id=endpoint_id,
        tenant=tenant,
        url=url,
        s=SECRET,
    )
    return endpoint_id


def add_webhook(sql, mail_id, message_id, endpoint_id, tenant):
    """An outbox row of ``mail_id`` to ``endpoint_id`` (None: WEBHOOK_URL)."""
    sql(
        "INSERT INTO webhook_outbox (message_id, event_type, email_id, payload, endpoint_id, "
        "tenant) VALUES (:m, 'mail.sent', :id, '{}', :e, :t)",
        m=message_id,
        id=mail_id,
        e=endpoint_id,
        t=tenant,
    )


def test_deliveries_show_their_tenant_and_endpoint_and_filter_by_endpoint(client, sql):
    mail_id = post_mail(client)
    shop = add_endpoint(sql, "shop", "https://shop.example.com/hooks")
    billing = add_endpoint(sql, "billing", "https://billing.example.com/hooks")
    add_webhook(sql, mail_id, "msg_shop", shop, "shop")
    add_webhook(sql, mail_id, "msg_billing", billing, "billing")
    add_webhook(sql, mail_id, "msg_settings", None, "default")
    listing = client.get("/admin/webhook/").get_data(as_text=True)
    for text in ("https://shop.example.com/hooks", "https://billing.example.com/hooks", "shop"):
        assert text in listing
    assert "WEBHOOK_URL" in listing
    only_shop = client.get(f"/admin/webhook/?flt0_endpoint_equals={shop}").get_data(as_text=True)
    assert "shop.example.com" in only_shop and "billing.example.com" not in only_shop
    assert client.get("/admin/webhook/?flt0_endpoint_equals=nonsense").status_code == 200
    by_tenant = client.get("/admin/webhook/?flt0_tenant_equals=billing").get_data(as_text=True)
    assert "billing.example.com" in by_tenant and "shop.example.com" not in by_tenant


def test_the_endpoints_page_links_deliveries_and_never_shows_a_secret(client, sql):
    shop = add_endpoint(sql, "shop", "https://shop.example.com/hooks")
    page = client.get("/admin/webhook_endpoint/")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and "https://shop.example.com/hooks" in text
    assert f"flt0_endpoint_equals={shop}" in text
    details = client.get(f"/admin/webhook_endpoint/details/?id={shop}").get_data(as_text=True)
    assert "shop.example.com" in details
    for shown in (text, details):
        assert SECRET not in shown and "secret" not in shown.lower()
