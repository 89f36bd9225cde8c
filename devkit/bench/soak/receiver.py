"""The client's webhook endpoint in the soak: a process of its own (``python -m devkit.bench
_receiver SPEC``) on loopback that verifies each webhook with the Standard Webhooks reference
library, answers after ``delay_ms`` (a client that takes its time), and writes a line per
webhook to ``out``: its webhook-id, mail id, type, arrival (unix seconds) and whether it
verified. A webhook that does not verify is answered 204 all the same and written down as such,
so that the run ends and says so rather than retrying it for a day.

``GET /count`` answers ``{"received": N}``. SIGTERM writes out the last lines and ends it.
The signing secret comes in ``BENCH_WEBHOOK_SECRET``, never on the command line.
"""

import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

HOST = "127.0.0.1"
SECRET_ENV = "BENCH_WEBHOOK_SECRET"
NULL = "\\N"  # COPY's text format for a missing value


class Journal:
    """The lines written so far, one per webhook, behind a lock."""

    def __init__(self, path):
        self.lock = threading.Lock()
        self.handle = open(path, "w", encoding="utf-8")
        self.count = 0

    def write(self, webhook_id, mail_id, kind, arrived, verified):
        """One webhook's line (tab-separated, ``\\N`` for a mail id it lacks: COPY reads it as
        is); nothing once closed."""
        flag = "t" if verified else "f"
        line = f"{webhook_id}\t{mail_id or NULL}\t{kind}\t{arrived:.6f}\t{flag}\n"
        with self.lock:
            if not self.handle.closed:
                self.handle.write(line)
                self.count += 1

    def close(self):
        """Write out what is buffered."""
        with self.lock:
            self.handle.close()


class Hook(BaseHTTPRequestHandler):
    """One connection of the endpoint: kept alive (HTTP/1.1), as the service's sender keeps it."""

    protocol_version = "HTTP/1.1"

    def do_POST(self):
        """Verify, write down, wait ``delay``, answer 204."""
        arrived = time.time()
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        webhook_id = self.headers.get("webhook-id") or "-"
        try:
            payload, verified = self.server.verifier.verify(body, dict(self.headers)), True
        except (WebhookVerificationError, ValueError):
            payload, verified = _unverified(body), False
        data = payload.get("data") or {}
        self.server.journal.write(
            webhook_id, data.get("mail_id"), payload.get("type") or "-", arrived, verified
        )
        time.sleep(self.server.delay)
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        """``/count``: how many webhooks came."""
        body = json.dumps({"received": self.server.journal.count}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        """No line per request."""


def _unverified(body):
    """The payload of a webhook that did not verify, as far as it reads ({} if it does not)."""
    try:
        payload = json.loads(body)
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}


def receiver_main(spec_path):
    """Serve until SIGTERM; the exit code."""
    with open(spec_path, encoding="utf-8") as handle:
        spec = json.load(handle)
    server = ThreadingHTTPServer((HOST, spec["port"]), Hook)
    server.daemon_threads = True
    server.verifier = Webhook(os.environ[SECRET_ENV])
    server.journal = Journal(spec["out"])
    server.delay = spec["delay_ms"] / 1000
    signal.signal(
        signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start()
    )
    print(f"receiver listening on {HOST}:{spec['port']}", flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()
        server.journal.close()
    return 0


if __name__ == "__main__":
    sys.exit(receiver_main(sys.argv[1]))
