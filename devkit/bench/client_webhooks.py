"""Client webhooks against the status changes they report, in the same run (issue 26).

Two workers (not in burst mode) send N mails through the sandbox, which answers each send
after ``webhooks_latency_ms`` and then posts each mail's signed ``delivered`` event to the API
(``POST /webhooks/mailgun``, under gunicorn); every send and every delivery is a status change
that raises a client webhook to ``WEBHOOK_URL``, a receiver on loopback (in this process) that
answers each after ``webhooks_receiver_ms``, on kept-alive connections. The figure is webhooks
delivered per second against status changes per second, each over its own window (its first
to its last, by the database's clock: ``webhook_outbox.created_at``, written with the change,
and ``delivered_at``); and how far the webhooks lag behind, early and late in the run.
"""

import secrets
import statistics
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from devkit.bench.harness import HOST, http_json, say
from devkit.bench.report import Row, ratio_of

WEBHOOKS_TARGET = 0.95  # webhooks delivered per second against status changes per second
EVENTS_TARGET = 0.95  # provider events recorded against events posted
POLL = 0.5  # seconds between looks at the database while the run goes


class Receiver:
    """A client's webhook endpoint on loopback: answers each post 204 after ``delay`` seconds,
    HTTP/1.1 (connections kept alive); counts the posts and the connections they came on."""

    def __init__(self, delay):
        self.delay = delay
        self.lock = threading.Lock()
        self.posts = 0
        self.peers = set()
        handler = type("Handler", (ReceiverHandler,), {"receiver": self})
        self.server = ThreadingHTTPServer((HOST, 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://{HOST}:{self.server.server_port}/hooks"
        threading.Thread(target=self.server.serve_forever, args=(0.1,), daemon=True).start()

    def took(self, peer):
        """Count one post."""
        with self.lock:
            self.posts += 1
            self.peers.add(peer)

    def stop(self):
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


class ReceiverHandler(BaseHTTPRequestHandler):
    """The HTTP side of a ``Receiver``."""

    protocol_version = "HTTP/1.1"
    receiver = None

    def do_POST(self):  # noqa: N802 -- http.server's name
        """Read the webhook, wait, answer 204."""
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        time.sleep(self.receiver.delay)
        self.receiver.took(self.client_address)
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        """Quiet."""


def queue_mails_with_recipients(b, count):
    """``count`` queued mails, each with its recipient list (which the events are matched
    against), as the API stores them."""
    b.insert_mails(count)
    b.sql("UPDATE email SET recipients = to_address")
    b.sql("ANALYZE email")


def sandbox_events(b, url, key):
    """Have the sandbox post Mailgun's signed events to ``url`` (empty: stop), 0.2 s after each
    send."""
    status, body = http_json(
        "PUT", f"{b.sandbox_url}/_sandbox/events", {"url": url, "mailgun_key": key, "delay": 0.2}
    )
    if status != 200:
        raise RuntimeError(f"the sandbox refused the event settings: {status} {body}")


def run_until_reported(b, count, processes, settings):
    """Start ``processes`` workers; wait until every mail is delivered and every webhook
    delivered (or the time is up); stop them. Seconds it took."""
    started = time.monotonic()
    workers = [b.start_worker(**settings) for _ in range(processes)]
    deadline = time.monotonic() + b.timeout(120 + count / 10)
    try:
        while time.monotonic() < deadline:
            for worker in workers:
                if worker.poll() is not None:
                    raise RuntimeError(f"a worker exited ({worker.describe_exit()})")
            (done,) = b.sql(
                "SELECT (SELECT count(*) FROM email WHERE status = 'delivered') = %s "
                "AND NOT EXISTS (SELECT FROM webhook_outbox WHERE status <> 'delivered')",
                (count,),
            )[0]
            if done:
                break
            time.sleep(POLL)
    finally:
        for worker in workers:
            b.supervisor.stop(worker)
    return time.monotonic() - started


def outbox_figures(b):
    """Status changes per second, webhooks delivered per second (each over its own window),
    the webhooks written and delivered, and the median lag of the first and last tenth of the
    changes (seconds from a change to its webhook's delivery)."""
    ((written, delivered, changes_span, deliveries_span),) = b.sql(
        "SELECT count(*), count(delivered_at), "
        "extract(epoch FROM max(created_at) - min(created_at)), "
        "extract(epoch FROM max(delivered_at) - min(delivered_at)) FROM webhook_outbox"
    )
    lags = [
        float(lag)
        for (lag,) in b.sql(
            "SELECT extract(epoch FROM delivered_at - created_at) FROM webhook_outbox "
            "WHERE delivered_at IS NOT NULL ORDER BY created_at, id"
        )
    ]
    tenth = max(1, len(lags) // 10)
    ((sends, sends_span, sent_hooks_span),) = b.sql(
        "SELECT count(*), extract(epoch FROM max(created_at) - min(created_at)), "
        "extract(epoch FROM max(delivered_at) - min(delivered_at)) FROM webhook_outbox "
        "WHERE event_type = 'mail.sent'"
    )
    return {
        "sends_per_s": sends / float(sends_span) if sends_span else None,
        "sent_webhooks_per_s": sends / float(sent_hooks_span) if sent_hooks_span else None,
        "changes_per_s": written / float(changes_span) if changes_span else None,
        "webhooks_per_s": delivered / float(deliveries_span) if deliveries_span else None,
        "written": written,
        "delivered": delivered,
        "lag_first_tenth_s": statistics.median(lags[:tenth]) if lags else None,
        "lag_last_tenth_s": statistics.median(lags[-tenth:]) if lags else None,
        "lag_max_s": max(lags) if lags else None,
    }


def events_figures(b):
    """Provider events the sandbox posted (and of those answered 200) against the events
    recorded."""
    status, body = http_json("GET", f"{b.sandbox_url}/_sandbox/events", timeout=120)
    if status != 200:
        raise RuntimeError(f"the sandbox answered {status} for its events")
    posted = sum(len(post["events"]) for post in body["posted"])
    taken = sum(len(post["events"]) for post in body["posted"] if post["status"] == 200)
    recorded = b.sql("SELECT count(*) FROM delivery_event")[0][0]
    return {"posted": posted, "answered_200": taken, "recorded": recorded}


def scenario_webhooks(b):
    """Client webhooks keep up with the status changes they report: >= 0.95 of their rate,
    two workers, 50 ms provider, 50 ms receiver; every provider event posted is recorded."""
    from mailer.events.signatures import new_webhook_secret

    count, processes = b.sizes["webhooks"], b.sizes["webhooks_workers"]
    latency, answer_ms = b.sizes["webhooks_latency_ms"], b.sizes["webhooks_receiver_ms"]
    concurrency = b.sizes["webhooks_concurrency"]
    signing_key = secrets.token_hex(16)
    receiver = Receiver(answer_ms / 1000)
    # The API and the workers alike: the API's events raise webhooks too.
    settings = {
        "WEBHOOK_URL": receiver.url,
        "WEBHOOK_SECRET": new_webhook_secret(),
        "WEBHOOK_CONCURRENCY": concurrency,
    }
    _, port = b.start_gunicorn(
        "app:create_app()", "api", MAILGUN_WEBHOOK_SIGNING_KEY=signing_key, **settings
    )
    b.truncate()
    b.sandbox_reset(latency)
    sandbox_events(b, f"http://{HOST}:{port}", signing_key)
    try:
        queue_mails_with_recipients(b, count)
        say(
            f"webhooks: {processes} workers, {count:,} mails, {latency} ms provider, "
            f"{answer_ms} ms receiver, WEBHOOK_CONCURRENCY {concurrency}"
        )
        took = run_until_reported(b, count, processes, settings)
        figures = outbox_figures(b)
        events = events_figures(b)
    finally:
        sandbox_events(b, "", signing_key)
        receiver.stop()
    ratio = ratio_of(figures["webhooks_per_s"], figures["changes_per_s"])
    complete = figures["delivered"] == figures["written"] == 2 * count
    recorded = ratio_of(events["recorded"], events["posted"])
    return [
        Row(
            f"client webhooks, {processes} workers x {concurrency}, {count:,} mails, {latency} ms "
            f"provider, {answer_ms} ms receiver",
            figures["webhooks_per_s"],
            figures["changes_per_s"],
            ratio,
            f">= {WEBHOOKS_TARGET}, all delivered",
            ratio is not None and ratio >= WEBHOOKS_TARGET and complete,
            "/s",
            note=f"baseline = status changes per second (sent and delivered, one webhook each); "
            f"{figures['delivered']:,} of {figures['written']:,} webhooks delivered "
            f"({2 * count:,} expected) in {took:.0f}s; median lag change-to-delivery "
            f"{_s(figures['lag_first_tenth_s'])} for the first tenth of the changes, "
            f"{_s(figures['lag_last_tenth_s'])} for the last (longest "
            f"{_s(figures['lag_max_s'])}); the sends alone: {_rate(figures['sends_per_s'])} "
            f"mail.sent changes, their webhooks {_rate(figures['sent_webhooks_per_s'])}; "
            f"{receiver.posts:,} posts on {len(receiver.peers)} connections",
            details={**figures, "seconds": took, "posts": receiver.posts},
        ),
        Row(
            "provider events recorded / posted (Mailgun, during the run above)",
            events["recorded"],
            events["posted"],
            recorded,
            f">= {EVENTS_TARGET}",
            recorded is not None and recorded >= EVENTS_TARGET,
            "events",
            note=f"{events['answered_200']:,} of the sandbox's posts answered 200",
            details=events,
        ),
    ]


def _s(seconds):
    """Seconds for a note."""
    return "-" if seconds is None else f"{seconds:.2f}s"


def _rate(per_second):
    """A rate for a note."""
    return "-" if per_second is None else f"{per_second:,.0f}/s"
