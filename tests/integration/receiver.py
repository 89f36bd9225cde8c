"""A client's webhook endpoint on loopback, for the tests of the client webhooks we send."""

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook

from mailer.events.signatures import new_webhook_secret

SECRET = new_webhook_secret()


HOLD_LIMIT = 120  # seconds a held request waits at most, should a test never let it go


class Receiver:
    """A client's webhook endpoint on loopback: records what it gets, fails or holds on demand.

    With ``delay`` (a function answering seconds), each answer waits that long first; with
    ``keep_alive``, a client's connection serves request after request (HTTP/1.1), as a real
    receiver's. It notes which mails had two of their webhooks in flight at once
    (``overlaps``), the most requests it answered at once (``most_at_once``) and the client
    connections they came on (``peers``).
    """

    def __init__(self, delay=None, keep_alive=False):
        self.received = []  # (headers, body) of each request answered 2xx
        self.calls = 0
        self.failing_until = 0.0  # answer 503 until this time.monotonic()
        self.answering = threading.Event()  # cleared: each request waits until it is set again
        self.answering.set()
        self.delay = delay
        self.lock = threading.Lock()
        self.in_flight = Counter()  # mail id -> its requests being answered now
        self.overlaps = []  # mail ids met with another request of theirs in flight
        self.at_once = self.most_at_once = 0
        self.peers = set()  # (address, port) of each client connection
        handler = type(
            "Handler",
            (Handler,),
            {"receiver": self, "protocol_version": "HTTP/1.1" if keep_alive else "HTTP/1.0"},
        )
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self):
        """Answer every held request, then stop serving."""
        self.answering.set()
        self.server.shutdown()
        self.server.server_close()

    def answer(self, headers, body, peer):
        """Answer one webhook: ``(status, text)``."""
        mail_id = json.loads(body).get("data", {}).get("mail_id")
        self._arrived(mail_id, peer)
        try:
            self.answering.wait(HOLD_LIMIT)
            if self.delay is not None:
                time.sleep(self.delay())
            if time.monotonic() < self.failing_until:
                return 503, b"down for maintenance"
            with self.lock:
                self.received.append((headers, body))
            return 204, b""
        finally:
            with self.lock:
                self.in_flight[mail_id] -= 1
                self.at_once -= 1

    def _arrived(self, mail_id, peer):
        """Count a request in: calls, the mail's requests in flight, the connection."""
        with self.lock:
            self.calls += 1
            if self.in_flight[mail_id]:
                self.overlaps.append(mail_id)
            self.in_flight[mail_id] += 1
            self.at_once += 1
            self.most_at_once = max(self.most_at_once, self.at_once)
            self.peers.add(peer)

    def types(self):
        """The event types received, in order."""
        return [Webhook(SECRET).verify(body, headers)["type"] for headers, body in self.received]

    def verified(self, secret=SECRET):
        """The payloads received, in order, each verified with ``secret`` (raises if one
        fails), with its ``webhook-id`` as ``id``."""
        return [
            {**Webhook(secret).verify(body, headers), "id": headers["Webhook-Id"]}
            for headers, body in self.received
        ]


class Handler(BaseHTTPRequestHandler):
    """The HTTP side of a ``Receiver`` (its class attribute ``receiver``)."""

    receiver = None

    def do_POST(self):  # noqa: N802 -- http.server's name
        """Read the webhook, let the receiver answer it."""
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        headers = {name.title(): value for name, value in self.headers.items()}
        status, text = self.receiver.answer(headers, body, self.client_address)
        self.send_response(status)
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    def log_message(self, *args):
        """Quiet: the tests read what was received, not a log."""
