"""A complaint about a tenant's mail suppresses the address for that tenant only."""

from helpers import sample_mail
from signed import mailgun_body

from mailer.principals import hash_of


def test_a_complaint_suppresses_for_the_tenant_whose_mail_it_was(client, sent, sql):
    mail_id = sent()
    sql("UPDATE email SET tenant = 'shop' WHERE id = CAST(:id AS uuid)", id=mail_id)
    answer = client.post(
        "/webhooks/mailgun", json=mailgun_body("complained", "ann@example.com", mail_id=mail_id)
    )
    assert answer.status_code == 200
    assert sql("SELECT tenant, address, reason FROM suppression") == [
        {"tenant": "shop", "address": "ann@example.com", "reason": "complaint"}
    ]
    # The shop's keys see it; another tenant's do not, and may still mail the address.
    for tenant in ("shop", "billing"):
        sql(
            "INSERT INTO api_key (id, tenant, name, prefix, last4, key_hash, scopes) VALUES "
            "(gen_random_uuid(), :tenant, 'app', 'mk_live_x', 'xxxx', :hash, "
            "ARRAY['suppressions:read', 'mail:send'])",
            tenant=tenant,
            hash=hash_of(f"mk_live_{tenant}-key"),
        )

    def listed(tenant):
        answer = client.get(
            "/suppressions", headers={"Authorization": f"Bearer mk_live_{tenant}-key"}
        )
        return [entry["address"] for entry in answer.get_json()["suppressions"]]

    assert listed("shop") == ["ann@example.com"] and listed("billing") == []
    billing = client.post(
        "/mail",
        json=sample_mail(to="ann@example.com"),
        headers={"Authorization": "Bearer mk_live_billing-key"},
    )
    assert billing.status_code == 202
