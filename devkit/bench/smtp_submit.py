"""The SMTP door's submissions per second next to ``POST /mail``'s, in the same run.

One client each, one mail at a time, the same mail: ``POST /mail`` on a kept-alive HTTP
connection (the API under gunicorn); the SMTP door (``smtp_service.py``) with ``STARTTLS`` and
``AUTH`` on a connection per message, as most mailers send, and with 100 messages per
connection, as a mailer that keeps its connection does. Each answer comes after the mail is
committed, so each side's rate is of stored mail.
"""

import http.client
import json
import smtplib
import socket
import ssl
import time
from email.message import EmailMessage

from devkit.bench.harness import HOST, PYTHON, free_port, last_lines, say
from devkit.bench.report import Row, ratio_of
from devkit.sandbox.smtp import make_certificates

PER_CONNECTION = 100
START_TIMEOUT = 30.0  # seconds for the door to answer
MAIL = {
    "from": "bench@example.com",
    "to": "rcpt@example.com",
    "subject": "Bench",
    "text": "A mail of the SMTP bench.",
}


def bench_message():
    """The bench mail as an SMTP message."""
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = MAIL["from"], MAIL["to"], MAIL["subject"]
    message.set_content(MAIL["text"])
    return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))


def start_door(b):
    """Start smtp_service.py with a certificate made for this run; (child, port, CA file)."""
    ca, cert, key = make_certificates(b.folder)
    port = free_port()
    env = b.env(SMTP_LISTEN=f"{HOST}:{port}", SMTP_TLS_CERT=cert, SMTP_TLS_KEY=key)
    child = b.start("smtp", [PYTHON, "smtp_service.py"], env)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RuntimeError(f"smtp_service.py exited{last_lines(child)}")
        try:
            socket.create_connection((HOST, port), 1).close()
            return child, port, ca
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the SMTP door did not answer within {START_TIMEOUT:.0f}s")


def post_rate(port, api_key, count):
    """Mails per second of ``count`` sequential ``POST /mail`` on one connection."""
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    body = json.dumps(MAIL)
    started = time.perf_counter()
    for _ in range(count):
        connection.request("POST", "/mail", body, headers)
        response = connection.getresponse()
        response.read()
        if response.status != 202:
            raise RuntimeError(f"POST /mail answered {response.status}")
    rate = count / (time.perf_counter() - started)
    connection.close()
    return rate


def smtp_rate(port, ca_file, api_key, count, per_connection):
    """Mails per second of ``count`` messages, ``per_connection`` on each connection (each
    with STARTTLS and AUTH), every one answered ``250`` after its commit."""
    context = ssl.create_default_context(cafile=ca_file)
    message = bench_message()
    started = time.perf_counter()
    sent = 0
    while sent < count:
        with smtplib.SMTP(HOST, port, timeout=30) as smtp:
            smtp.starttls(context=context)
            smtp.login("bench", api_key)
            for _ in range(min(per_connection, count - sent)):
                smtp.sendmail(MAIL["from"], [MAIL["to"]], message)
                sent += 1
    return count / (time.perf_counter() - started)


def scenario_smtp(b):
    """22. SMTP submissions per second (a connection per message; 100 per connection) next to
    POST /mail's, one client each, in the same run."""
    count = b.sizes["smtp_messages"]
    api = b.start_gunicorn("app:create_app()", "api")
    _, smtp_port, ca = start_door(b)
    rates = {}
    for label, measure in (
        ("POST /mail", lambda: post_rate(api[1], b.api_key, count)),
        ("SMTP, a connection per message", lambda: smtp_rate(smtp_port, ca, b.api_key, count, 1)),
        (
            f"SMTP, {PER_CONNECTION} per connection",
            lambda: smtp_rate(smtp_port, ca, b.api_key, count, PER_CONNECTION),
        ),
    ):
        b.truncate()
        say(f"smtp: {label}, {count} mails, one client")
        rates[label] = measure()
        stored = b.status_counts().get("queued", 0)
        if stored != count:
            raise RuntimeError(f"{label}: {count} mails acknowledged, {stored} stored")
    post = rates["POST /mail"]
    return [
        Row(
            f"smtp: {label}, {count} mails, 1 client",
            rate,
            post,
            ratio_of(rate, post),
            "(info)",
            None,
            "mails/s",
            note="baseline = POST /mail, one client on a kept-alive connection, same run; "
            "SMTP with STARTTLS and AUTH on each connection",
        )
        for label, rate in rates.items()
        if label != "POST /mail"
    ] + [Row(f"smtp: POST /mail, {count} mails, 1 client", post, unit="mails/s")]
