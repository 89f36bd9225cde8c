"""26. The soak: ``soak`` mails (a million; ``--size N`` for fewer) through the whole life.

The API under gunicorn as in production (``wsgi:app``, ``gunicorn.conf.py``), two worker
processes, the SMTP door, the sandbox as Mailgun and SendGrid (answering after
``soak_latency_ms``, failing ``soak_fault_rate`` of the calls with a 503, posting each mail's
signed events ``soak_event_delay`` plus up to ``soak_event_jitter`` seconds after it took it:
``delivered``, or ``bounced`` and ``complained`` for the shares ``soak_bounce`` and
``soak_complain`` of the addresses), and a client's webhook endpoint on loopback answering after
``soak_receiver_ms`` (``receiver``), subscribed to every status change. The clients
(``clients``) submit every mail, held back while ``soak_backlog`` wait for a worker (and to
``soak_rate`` mails a second, if set: a steady load instead of the most it takes); the run
ends when every mail is final, the sandbox has posted every event and no webhook is pending,
or after a deadline that grows with the size.

Then it reads what happened (``results``), measures PostgreSQL before and after
``scripts/purge --days 0`` and a VACUUM, and writes ``soak.json``, ``soak.md`` and the plot
(``report``).
"""

import json
import os
import sys
import threading
import time

from devkit.bench.harness import (
    BENCH,
    HOST,
    PYTHON,
    ROOT,
    free_port,
    http_json,
    last_lines,
    say,
    wait_http,
)
from devkit.bench.smtp_submit import start_door
from devkit.bench.soak import report, results
from devkit.bench.soak.clients import TEMPLATE, Clients, Gate, plan
from devkit.bench.soak.receiver import SECRET_ENV
from devkit.bench.soak.watch import Watch
from devkit.sandbox.events import check_settings
from mailer.events.signatures import new_sendgrid_keys, new_webhook_secret

WORKERS = 2
CLIENT_THREADS = 4
SETTLE_SAMPLES = 2  # samples in a row that must find the run over (a late event may follow)
PROGRESS_EVERY = 15.0  # seconds between progress lines
SANDBOX_KEEP = 1_000  # messages the sandbox keeps (its tally counts them all)
DEFAULT_PLOT = os.path.join(ROOT, "docs", "soak.png")


def scenario_soak(b):
    """26. N mails through the whole life, at the rate the service sustains: rates per stage,
    lags, latencies, CPU per mail, RSS, PostgreSQL's size, and the end state's invariants."""
    soak = Soak(b)
    soak.start()
    soak.submit_and_settle()
    result = soak.measure()
    folder = getattr(b.args, "soak_out", None) or "."
    plot_path = getattr(b.args, "soak_plot", None) or DEFAULT_PLOT
    inside = os.path.abspath(plot_path).startswith(ROOT + os.sep)
    result["plot_name"] = os.path.relpath(plot_path, ROOT) if inside else plot_path
    command = " ".join(["scripts/bench", *sys.argv[1:]])
    report.write(result, soak.watch.samples, folder, command)
    report.plot(result, soak.watch.samples, plot_path)
    say(f"soak: wrote {os.path.join(folder, 'soak.json')}, soak.md and {plot_path}")
    return report.rows(result)


class Soak:
    """One soak run: its settings, keys, processes, clients and samples."""

    def __init__(self, b):
        self.b = b
        self.total = int(b.sizes["soak"])
        self.budget = 600 + self.total / 8  # seconds for the whole run to settle
        self.webhook_secret = new_webhook_secret()
        self.mailgun_signing_key = "key-" + os.urandom(16).hex()
        self.sendgrid_private, self.sendgrid_public = new_sendgrid_keys()
        b.supervisor.hide += [self.webhook_secret, self.mailgun_signing_key]
        self.events = {
            "delay": float(b.sizes["soak_event_delay"]),
            "jitter": float(b.sizes["soak_event_jitter"]),
            "rates": {
                "bounce": float(b.sizes["soak_bounce"]),
                "complain": float(b.sizes["soak_complain"]),
            },
            "posters": int(b.sizes["soak_posters"]),
            "duplicates": 1,
        }
        self.roots = {}  # name -> pid of the processes the watch follows
        self.watch = self.clients = None

    # Start ---------------------------------------------------------------------------------

    def settings(self):
        """The service's settings beside the bench's: the providers' event keys, the client
        webhooks to the receiver, a short retry (a mail both providers refused)."""
        return {
            "MAILGUN_WEBHOOK_SIGNING_KEY": self.mailgun_signing_key,
            "SENDGRID_WEBHOOK_PUBLIC_KEY": self.sendgrid_public,
            "WEBHOOK_URL": f"{self.receiver_url}/hooks",
            "WEBHOOK_SECRET": self.webhook_secret,
            "RETRY_BASE": 2.0,
            "RETRY_CAP": 30.0,
        }

    def start(self):
        """Empty the database; start the receiver, the API, the SMTP door and the workers; set
        the sandbox's behaviour and events."""
        b = self.b
        if getattr(b.args, "max_seconds", 0) is None:  # no bound given: the soak's own
            b.deadline = max(b.deadline, time.monotonic() + self.budget + 600)
        b.truncate()
        b.sql("DELETE FROM worker_heartbeat")
        self.start_receiver()
        api, self.api_port = b.start_gunicorn("wsgi:app", "api", **self.settings())
        self.roots["api"] = api.pid
        self.configure_sandbox(f"http://{HOST}:{self.api_port}")
        self.create_template()
        door, self.smtp_port, self.ca_file = start_door(b)
        self.roots["smtp"] = door.pid
        for number in range(1, WORKERS + 1):
            self.roots[f"worker-{number}"] = b.start_worker(**self.settings()).pid
        self.wait_for_workers()
        self.roots["sandbox"] = next(c.pid for c in b.supervisor.children if c.name == "sandbox")

    def start_receiver(self):
        """The client's webhook endpoint, a process of its own (``receiver``)."""
        b = self.b
        port = free_port()
        self.journal = os.path.join(b.folder, "webhooks.tsv")
        spec = os.path.join(b.folder, "receiver.spec")
        with open(spec, "w", encoding="utf-8") as handle:
            json.dump(
                {"port": port, "delay_ms": b.sizes["soak_receiver_ms"], "out": self.journal},
                handle,
            )
        env = {**b.base_env(), SECRET_ENV: self.webhook_secret}
        self.receiver = b.start("receiver", [*BENCH, "_receiver", spec], env)
        self.receiver_url = f"http://{HOST}:{port}"
        wait_http(f"{self.receiver_url}/count", self.receiver)
        self.roots["receiver"] = self.receiver.pid

    def configure_sandbox(self, api_url):
        """Mailgun and SendGrid answer after the latency and fail a share with 503; events go
        to the API; the sandbox keeps a little and counts everything."""
        b = self.b
        http_json("POST", f"{b.sandbox_url}/_sandbox/reset")
        behaviour = {
            "latency_ms": b.sizes["soak_latency_ms"],
            "status": 503,
            "rate": float(b.sizes["soak_fault_rate"]),
        }
        settings = {
            **self.events,
            "url": api_url,
            "mailgun_key": self.mailgun_signing_key,
            "sendgrid_key": self.sendgrid_private,
        }
        for path, body in (
            ("keep", {"keep": SANDBOX_KEEP}),
            ("behaviour/mailgun", behaviour),
            ("behaviour/sendgrid", behaviour),
            ("events", settings),
        ):
            status, answer = http_json("PUT", f"{b.sandbox_url}/_sandbox/{path}", body)
            if status != 200:
                raise RuntimeError(f"the sandbox refused {path}: {status} {answer}")

    def create_template(self):
        """The template of the templated batches."""
        status, answer = http_json(
            "POST",
            f"http://{HOST}:{self.api_port}/templates",
            TEMPLATE,
            {"Authorization": f"Bearer {self.b.api_key}"},
        )
        if status not in (201, 409):
            raise RuntimeError(f"POST /templates answered {status}: {answer}")

    def wait_for_workers(self):
        """Until both workers have written their heartbeat (they run their loop)."""
        deadline = time.monotonic() + self.b.timeout(60)
        while self.b.sql("SELECT count(*) FROM worker_heartbeat")[0][0] < WORKERS:
            self.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError("the workers wrote no heartbeat within 60 s")
            time.sleep(0.2)

    def check_alive(self):
        """RuntimeError with its last lines if one of the run's processes died."""
        dead = self.b.supervisor.dead()
        if dead is not None:
            raise RuntimeError(f"{dead.name} exited ({dead.describe_exit()}){last_lines(dead)}")

    # Run -------------------------------------------------------------------------------------

    def submit_and_settle(self):
        """Submit every mail and wait until the run is over (or the deadline)."""
        b = self.b
        self.wal_start = results.wal_position(b)
        self.size_start = results.sizes(b)
        stopping = threading.Event()
        gate = Gate(int(b.sizes["soak_backlog"]), stopping, float(b.sizes["soak_rate"]))
        self.watch = Watch(b, self.roots, self.receiver_url, gate)
        self.bench_cpu = os.times()
        self.watch.start()
        units = plan(self.total, int(b.sizes["soak_batch"]))
        self.clients = Clients(
            units, gate, self.api_port, (self.smtp_port, self.ca_file), b.api_key, CLIENT_THREADS
        )
        say(f"soak: {self.total:,} mails in {len(units):,} requests, {CLIENT_THREADS} clients")
        self.clients.start()
        try:
            self.wait_until_settled(time.monotonic() + b.timeout(self.budget))
        finally:
            stopping.set()  # the clients stop at their next unit
            self.watch.stop()
        self.ended_at = time.time()
        used = os.times()
        self.bench_cpu = used.user + used.system - self.bench_cpu.user - self.bench_cpu.system

    def wait_until_settled(self, deadline):
        """Until SETTLE_SAMPLES samples in a row find every mail final, every event posted
        and no webhook pending; progress every PROGRESS_EVERY seconds."""
        settled, seen, last_said = 0, None, time.monotonic()
        while settled < SETTLE_SAMPLES:
            if self.watch.error is not None:
                raise RuntimeError(f"the watch failed: {self.watch.error!r}")
            self.check_alive()
            if self.clients.done() and self.clients.errors:
                raise RuntimeError(
                    f"{len(self.clients.errors)} submissions failed: {self.clients.errors[:3]}"
                )
            sample = self.watch.latest
            if sample is not seen and sample is not None:
                seen = sample
                settled = settled + 1 if self.clients.done() and self.over(sample) else 0
            if time.monotonic() - last_said > PROGRESS_EVERY:
                say(progress(sample, self.total))
                last_said = time.monotonic()
            if time.monotonic() > deadline:
                raise TimeoutError(f"the soak did not settle: {progress(sample, self.total)}")
            time.sleep(0.2)

    def over(self, sample):
        """Whether ``sample`` finds the run over."""
        events = sample["sandbox"].get("events") or {}
        return (
            sample["final"] >= len(self.clients.submitted)
            and events.get("waiting") == 0
            and sample["pending_webhooks"] == 0
        )

    # Measure ---------------------------------------------------------------------------------

    def measure(self):
        """Everything the report says, read once the run is over; then the purge's effect."""
        b = self.b
        wal_end = results.wal_position(b)
        b.supervisor.stop(self.receiver)  # it writes out its journal
        size_end = results.sizes(b)
        status, tally = http_json("GET", f"{b.sandbox_url}/_sandbox/tally", timeout=120)
        if status != 200:
            raise RuntimeError(f"the sandbox's tally answered {status}")
        say("soak: reading the run back")
        results.load(b, self.clients.submitted, self.journal, check_settings(self.events))
        stages = results.stage_rates(b, tally, self.clients.first_at)
        last = stages["whole run"]["last"] or self.ended_at
        over_time = results.over_time(b, self.clients.first_at, last)
        cpu = dict(self.watch.samples[-1]["cpu"], bench=self.bench_cpu)
        found = {
            "total": self.total,
            "machine": f"{len(os.sched_getaffinity(0))} cores, "
            f"PostgreSQL {b.sql('SHOW server_version')[0][0]}",
            "sizes": {key: value for key, value in b.sizes.items() if key.startswith("soak")},
            "stages": stages,
            "ratios": {
                "webhooks": ratio(stages["webhook delivered"], stages["status changes"]),
                "events": ratio(stages["event recorded"], stages["events posted"]),
            },
            "latencies": results.latencies(b),
            "over_time": over_time,
            "growth": results.growth(over_time["lags"]),
            "cpu_seconds": cpu,
            "cpu_ms_per_mail": report.cpu_per_mail(cpu, self.total),
            "memory": report.memory(
                self.watch.samples, [*self.roots, "postgres", "postgres per backend"]
            ),
            "end_state": results.end_state(b, tally, self.total),
            "sandbox": {key: value for key, value in tally.items() if key != "repeats"},
            "clients": {"threads": CLIENT_THREADS, "first_at": self.clients.first_at},
        }
        found["size"] = self.purged_size(size_end, wal_end)
        return found

    def purged_size(self, size_end, wal_end):
        """PostgreSQL's size per million mails, then after ``scripts/purge --days 0`` (every
        finished mail; idempotency keys too) and after a VACUUM."""
        b = self.b
        b.supervisor.stop(*[c for c in b.supervisor.children if c.name != "sandbox"])
        wal = results.wal_bytes(b, self.wal_start, wal_end)
        say("soak: scripts/purge --days 0")
        purge = b.start(
            "purge",
            [PYTHON, "-m", "mailer.queue.purge", "--days", "0"],
            b.env(IDEMPOTENCY_TTL=0),
        )
        b.finish(purge, b.timeout(600 + self.total / 500))
        after_purge = results.sizes(b)
        after_purge["wal"] = results.wal_bytes(b, wal_end, results.wal_position(b))
        b.sql("VACUUM")
        after_vacuum = results.sizes(b)
        return {
            "start": self.size_start,
            "end": size_end,
            "wal": wal,
            "per_million": {
                key: report.per_million(grown, self.total)
                for key, grown in (
                    ("tables", size_end["tables"] - self.size_start["tables"]),
                    ("indexes", size_end["indexes"] - self.size_start["indexes"]),
                    ("wal", wal),
                )
            },
            "after_purge": after_purge,
            "after_vacuum": after_vacuum,
        }


def ratio(ours, theirs):
    """One stage's rate against another's, or None."""
    if not ours["rate"] or not theirs["rate"]:
        return None
    return ours["rate"] / theirs["rate"]


def progress(sample, total):
    """One line of how far the run has come."""
    if sample is None:
        return "soak: no sample yet"
    statuses = sample["statuses"]
    events = sample["sandbox"].get("events") or {}
    return (
        f"soak: {sum(statuses.values()):,}/{total:,} accepted, "
        f"{sum(n for s, n in statuses.items() if s not in ('queued', 'sending')):,} handed off, "
        f"{sample['final']:,} final; events waiting {events.get('waiting')}; webhooks "
        f"received {sample['received']}, pending {sample['pending_webhooks']:,}"
        f"{'+' if sample['pending_webhooks'] >= 10_000 else ''}"
    )
