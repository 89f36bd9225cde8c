"""The soak (scripts/bench --only soak, devkit/bench/soak) at 10,000 mails: the same end state
as at a million, every mail final as its address said, none lost, none sent twice, every client
webhook delivered once and verified. The sandbox and the receiver answer at once here (the
end state is the same at any speed); nothing about speed is asserted. And the receiver alone:
it verifies each webhook and writes down what came."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from conftest import ROOT
from helpers import wait_for

from mailer.events.signatures import new_webhook_secret, webhook_headers, webhook_key

pytestmark = pytest.mark.slow

BENCH = os.path.join(ROOT, "scripts", "bench")
MAILS = 10_000
TIMEOUT = 1800  # seconds; the run takes a few minutes on 2 busy cores
FAST = (
    "soak_latency_ms=0",
    "soak_receiver_ms=0",
    "soak_event_delay=0.2",
    "soak_event_jitter=0.3",
)


def test_a_soak_of_10000_mails_ends_with_every_mail_final_and_every_webhook_once(
    tmp_path, postgres_server
):
    own_database = os.environ.get("TEST_DATABASE_URL")
    server = postgres_server.render_as_string(hide_password=False)
    where = ["--database-url", own_database] if own_database else ["--server-url", server]
    sizes = [arg for size in FAST for arg in ("--size", size)]
    env = {key: value for key, value in os.environ.items() if key != "MAIL_SERVICE_CONFIG"}
    run = subprocess.run(
        [BENCH, "--only", "soak", "--size", str(MAILS), *sizes, *where, "--max-seconds", "1700"]
        + ["--soak-out", str(tmp_path), "--soak-plot", str(tmp_path / "soak.png")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    result = json.loads((tmp_path / "soak.json").read_text())
    end = result["end_state"]

    # Every mail went in by its way, and is final as the sandbox drew it from its address.
    assert end["ways"] == {"batch": 9_000, "single": 900, "smtp": 100}
    assert end["sources"] == {"api": 9_900, "smtp": 100}
    assert end["submitted"] == end["stored"] == end["final"] == end["in_table"] == MAILS
    assert end["lost"] == 0 and end["unexpected"] == 0
    assert set(end["statuses"]) == {"delivered", "bounced", "complained"}
    assert end["statuses"]["bounced"] > 0  # 2% of the addresses
    # The provider took each mail once, though it refused some sends with a 503.
    assert end["taken_by_provider"] == MAILS
    assert end["sent_twice"] == 0 and end["sent_twice_by_attempts"] == 0
    assert result["sandbox"]["requests"]["mailgun"]["503"] > 0
    # Every status change's webhook came once, verified: a mail.sent and a final one per mail.
    hooks = end["webhooks"]
    assert hooks["written"] == hooks["delivered"] == hooks["received"] == hooks["distinct"]
    assert hooks["written"] >= 2 * MAILS
    assert hooks["duplicates"] == hooks["unverified"] == hooks["missing"] == 0
    assert hooks["unknown"] == hooks["mails_without_both"] == 0
    assert end["ok"] is True

    assert (tmp_path / "soak.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| end state | ok:" in (tmp_path / "soak.md").read_text()
    print(f"soak of {MAILS:,} mails: {result['stages']['whole run']['seconds']:.0f}s")


def test_the_receiver_verifies_each_webhook_and_writes_down_what_came(tmp_path):
    secret = new_webhook_secret()
    journal, port = tmp_path / "webhooks.tsv", free_port()
    spec = tmp_path / "receiver.spec"
    spec.write_text(json.dumps({"port": port, "delay_ms": 0, "out": str(journal)}))
    env = {**os.environ, "PYTHONPATH": ROOT, "BENCH_WEBHOOK_SECRET": secret}
    receiver = subprocess.Popen(
        [sys.executable, "-m", "devkit.bench", "_receiver", str(spec)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: answers(f"{url}/count"), timeout=30, message="the receiver")
        mail_id = "0b6f1c7e-8f4e-4f7a-9a53-0f3c6a2b9d11"
        body = json.dumps({"type": "mail.sent", "data": {"mail_id": mail_id}}).encode()
        now = int(time.time())
        signed = webhook_headers(webhook_key(secret), "msg_good", now, body)
        forged = webhook_headers(webhook_key(new_webhook_secret()), "msg_forged", now, body)
        assert post(f"{url}/hooks", body, signed) == 204
        assert post(f"{url}/hooks", body, forged) == 204  # answered, and written down as forged
        assert answers(f"{url}/count") == {"received": 2}
    finally:
        receiver.send_signal(signal.SIGTERM)
        receiver.communicate(timeout=30)
    assert receiver.returncode == 0
    lines = [line.split("\t") for line in journal.read_text().splitlines()]
    assert [(line[0], line[1], line[2], line[4]) for line in lines] == [
        ("msg_good", mail_id, "mail.sent", "t"),
        ("msg_forged", mail_id, "mail.sent", "f"),
    ]


def free_port():
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers(url):
    """The JSON a GET answers, or None while nothing listens."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, ConnectionError):
        return None


def post(url, body, headers):
    """POST ``body`` with ``headers``; the status answered."""
    request = urllib.request.Request(
        url, data=body, method="POST", headers={**headers, "Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status
