"""A client's webhook endpoint on loopback, for the tests of the client webhooks we send."""

import threading
import time

from standardwebhooks import Webhook
from werkzeug import Request, Response
from werkzeug.serving import make_server

from mailer.events.signatures import new_webhook_secret

SECRET = new_webhook_secret()


HOLD_LIMIT = 120  # seconds a held request waits at most, should a test never let it go


class Receiver:
    """A client's webhook endpoint on loopback: records what it gets, fails or holds on demand."""

    def __init__(self):
        self.received = []  # (headers, body) of each request answered 2xx
        self.calls = 0
        self.failing_until = 0.0  # answer 503 until this time.monotonic()
        self.answering = threading.Event()  # cleared: each request waits until it is set again
        self.answering.set()
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self):
        """Answer every held request, then stop serving."""
        self.answering.set()
        self.server.shutdown()
        self.server.server_close()

    @Request.application
    def app(self, request):
        """Answer one webhook."""
        self.calls += 1
        self.answering.wait(HOLD_LIMIT)
        if time.monotonic() < self.failing_until:
            return Response("down for maintenance", 503)
        self.received.append((dict(request.headers), request.get_data()))
        return Response("", 204)

    def types(self):
        """The event types received, in order."""
        return [Webhook(SECRET).verify(body, headers)["type"] for headers, body in self.received]
