"""swaks (Debian's package, /usr/bin/swaks), the SMTP test tool, sends through the SMTP door:
with STARTTLS (the certificate checked) and AUTH LOGIN with an API key, a custom header and an
attachment; the mail arrives at the sandbox as swaks wrote it. As an MTA delivering to the
door as the MX of INBOUND_DOMAINS, without AUTH, it is received; to another domain it is refused
550 5.7.1 (no open relay); a relay's bounce report it delivers with the null sender bounces the
recipient it names on the mail it returns. Without swaks the test FAILS
under CI (CI=true), where a skip would pass unseen, and is skipped elsewhere
(scripts/setup-swaks installs it)."""

import os
import re
import subprocess

import pytest
from integration.inbound.dsn import SHOP, bounced, mx_door, report, send_to_ann_and_bob, state
from integration.smtp.door import API_KEY, certificates, running_door

pytestmark = pytest.mark.committed
SWAKS = "/usr/bin/swaks"
QUEUED = re.compile(r"<~\s+250 2\.0\.0 Ok: queued as ([0-9a-f-]{36})")
RECEIVED = re.compile(r"<~?\s+250 2\.0\.0 Ok: received as ([0-9a-f-]{36})")
REPORT_READ = re.compile(r"<~?\s+250 2\.0\.0 Ok: bounce report read")


@pytest.fixture
def swaks():
    """The path of swaks; without it, fail under CI and skip elsewhere."""
    if os.access(SWAKS, os.X_OK):
        return SWAKS
    message = "swaks is not installed: run scripts/setup-swaks (sudo apt-get install swaks)"
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(message)
    pytest.skip(message)


def test_swaks_with_starttls_and_auth(app, client, settings, sandbox, run_worker, swaks, tmp_path):
    invoice = tmp_path / "invoice.pdf"
    invoice.write_bytes(b"%PDF-1.4 invoice")
    with (
        certificates() as (ca, cert, key),
        running_door(settings, API_KEYS=API_KEY, SMTP_TLS_CERT=cert, SMTP_TLS_KEY=key) as door,
    ):
        done = subprocess.run(
            [
                swaks,
                "--server", f"{door.host}:{door.port}",
                "--tls", "--tls-verify", "--tls-ca-path", ca, "--tls-sni", "localhost",
                "--auth", "LOGIN", "--auth-user", "app", "--auth-password", API_KEY,
                "--from", "shop@example.com",
                "--to", "ann@example.com,bob@example.com",
                "--header", "From: Shop <shop@example.com>",
                "--header", "To: ann@example.com",
                "--header", "Subject: Sent with swaks",
                "--header", "X-Tool: swaks",
                "--body", "Hello from swaks.",
                "--attach-type", "application/pdf",
                "--attach", f"@{invoice}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    mail_id = QUEUED.search(done.stdout).group(1)
    assert client.get(f"/mail/{mail_id}").get_json()["source"] == "smtp"

    run_worker(PROVIDERS="smtp")

    [received] = sandbox.messages("smtp")
    assert received["from"] == "Shop <shop@example.com>"
    assert (received["to"], received["bcc"]) == (["ann@example.com"], ["bob@example.com"])
    assert received["subject"] == "Sent with swaks"
    assert received["text"].strip() == "Hello from swaks."
    assert received["headers_in"]["X-Tool"] == "swaks"
    [attachment] = received["attachments"]
    assert (attachment["filename"], attachment["content_type"], attachment["size"]) == (
        "invoice.pdf",
        "application/pdf",
        len(b"%PDF-1.4 invoice"),
    )


def mx_delivery(swaks, door, ca, recipient):
    """swaks delivering a reply to ``recipient`` as an MTA would: STARTTLS, no AUTH."""
    return subprocess.run(
        [
            swaks,
            "--server", f"{door.host}:{door.port}",
            "--tls", "--tls-verify", "--tls-ca-path", ca, "--tls-sni", "localhost",
            "--from", "ann@example.com",
            "--to", recipient,
            "--header", "Subject: Re: Your order",
            "--header", "In-Reply-To: <mail-1@shop.example.com>",
            "--body", "Thanks, that works.",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip


def test_swaks_delivers_to_an_inbound_domain_without_auth(app, client, settings, swaks):
    with (
        certificates() as (ca, cert, key),
        running_door(
            settings,
            API_KEYS=API_KEY,
            SMTP_TLS_CERT=cert,
            SMTP_TLS_KEY=key,
            INBOUND_DOMAINS="in.example.com",
        ) as door,
    ):
        delivered = mx_delivery(swaks, door, ca, "support@in.example.com")
        relayed = mx_delivery(swaks, door, ca, "bob@example.com")
    assert delivered.returncode == 0, delivered.stdout + delivered.stderr
    assert RECEIVED.search(delivered.stdout)
    assert relayed.returncode != 0
    assert re.search(r"<~?\*+\s+550 5\.7\.1 Relay access denied", relayed.stdout), relayed.stdout
    assert client.get("/mail").get_json()["mails"] == []  # neither went out


def test_swaks_delivers_a_relays_bounce_report_to_the_door(
    app, client, sql, settings, sandbox, run_worker, swaks, tmp_path
):
    mail_id, returned = send_to_ann_and_bob(client, sandbox, run_worker)
    dsn = tmp_path / "report.eml"
    dsn.write_bytes(report(returned))
    with mx_door(settings) as (door, ca):
        done = subprocess.run(
            [
                swaks,
                "--server", f"{door.host}:{door.port}",
                "--tls", "--tls-verify", "--tls-ca-path", ca, "--tls-sni", "localhost",
                "--helo", "relay.example",
                "--from", "<>",
                "--to", SHOP,
                "--data", f"@{dsn}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "MAIL FROM:<>" in done.stdout  # the null sender, as a report is sent
    assert REPORT_READ.search(done.stdout), done.stdout
    seen, expected = state(client, sql, mail_id), bounced(webhooks=[])
    assert {**seen, "webhooks": None} == {**expected, "webhooks": None}  # no client webhooks here
