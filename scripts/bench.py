# Benchmarks of the mail service against the targets in BENCHMARKS.md. Each figure is compared
# with a baseline measured in the same run on the same machine, so a noisy or slow machine moves
# both; the table shows our figure, the baseline's, their ratio and whether the target is met.
"""Benchmark the mail service: dispatch, scale-out, latency, ingest, bulk, queues, memory, purge.

    .venv/bin/python scripts/bench.py                      # every scenario (~11 minutes on 2 cores)
    .venv/bin/python scripts/bench.py --quick              # tiny sizes: a smoke run (~1 minute)
    .venv/bin/python scripts/bench.py --only ingest,latency --json results.json
    .venv/bin/python scripts/bench.py --only memory --drain-count 1000000 --max-seconds 4000

It starts what it needs on loopback (the provider sandbox, gunicorn, worker processes), creates
a throwaway database ``mail_bench_<random>`` on ``--server-url`` (dropped at the end), or uses
``--database-url`` as is (migrated, and its tables EMPTIED between scenarios). Provider and API
keys are random per run and never printed. Exit code: 0 when every scenario ran (met or not),
1 when one failed to run, 2 when the database could not be set up.
"""

import argparse
import http.client
import itertools
import json
import math
import os
import platform
import random
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

PYTHON = sys.executable
HOST = "127.0.0.1"
DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
MAILGUN_DOMAIN = "mg.bench.example"
SENDER = "sender@example.com"
BODY_TEXT = "Hello from the benchmark. " * 8  # ~200 characters, a short transactional mail
SCENARIOS = ("dispatch", "scaleout", "latency", "ingest", "bulk", "million", "memory",
             "retention")
STOP_GRACE = 10.0  # seconds between SIGTERM and SIGKILL for a child
START_TIMEOUT = 60.0  # seconds for a server to answer its health check

# Sizes per scenario: the full run, and --quick (a smoke run that only checks it all works).
FULL = {
    "dispatch": 10_000, "dispatch_rounds": 3, "dispatch_latency_ms": 50,
    "scaleout": 6_000, "scaleout_procs": (1, 2, 4),
    "latency_posts": 200, "latency_gap_ms": (40, 120),
    "ingest_seconds": 10.0, "ingest_rounds": 3, "ingest_concurrency": 32, "load_procs": 2,
    "bulk_seconds": 10.0, "bulk_size": 1_000, "bulk_concurrency": 4,
    "million": 1_000_000, "million_small": 1_000, "claims": 30,
    "memory": 50_000,
    "retention": 200_000, "retention_keep": 2_000,
}
QUICK = {
    "dispatch": 200, "dispatch_rounds": 1, "dispatch_latency_ms": 50,
    "scaleout": 200, "scaleout_procs": (1, 2),
    "latency_posts": 8, "latency_gap_ms": (20, 40),
    "ingest_seconds": 1.5, "ingest_rounds": 1, "ingest_concurrency": 8, "load_procs": 2,
    "bulk_seconds": 1.5, "bulk_size": 1_000, "bulk_concurrency": 2,
    "million": 5_000, "million_small": 500, "claims": 5,
    "memory": 1_000,
    "retention": 3_000, "retention_keep": 200,
}


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the results table."""

    scenario: str
    ours: float | str | None
    baseline: float | str | None = None
    ratio: float | None = None
    target: str = ""
    met: bool | None = None  # None: no target, not available, or error
    unit: str = ""
    note: str = ""
    details: dict = field(default_factory=dict)


def ratio_of(ours, baseline):
    """ours / baseline, or None when either is missing or the baseline is zero."""
    if not isinstance(ours, int | float) or not isinstance(baseline, int | float) or not baseline:
        return None
    return ours / baseline


def fmt(value, unit=""):
    """A figure for the table: numbers rounded to 3 significant digits, with the unit."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".strip()


def print_table(rows):
    """Print the results as a fixed-width table."""
    header = ("scenario", "ours", "baseline", "ratio", "target", "met?")
    lines = [(row.scenario, fmt(row.ours, row.unit), fmt(row.baseline, row.unit),
              "-" if row.ratio is None else f"{row.ratio:.2f}", row.target or "-",
              {True: "yes", False: "NO"}.get(row.met, "-"))
             for row in rows]
    widths = [max(len(header[i]), *(len(line[i]) for line in lines)) for i in range(6)]
    print("\n" + "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for line in lines:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)))
    notes = [(row.scenario, row.note) for row in rows if row.note]
    if notes:
        print()
        for scenario, note in notes:
            print(f"  {scenario}: {note}")
    sys.stdout.flush()


def percentile(values, fraction):
    """The nearest-rank percentile of ``values`` (``fraction`` in 0..1), or None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1))
    return ordered[index]


def say(message):
    """Progress on stderr, so stdout keeps the table."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Unavailable(Exception):
    """A scenario whose feature has not landed (yet): reported, not an error."""


# ---------------------------------------------------------------------------------------------
# Child processes
# ---------------------------------------------------------------------------------------------


def free_port():
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class Children:
    """Processes this run started, each in its own process group, with its output in a file."""

    def __init__(self, folder, secrets_to_hide):
        self.folder = folder
        self.hide = [s for s in secrets_to_hide if s]
        self.running = []

    def start(self, name, argv, env):
        """Start ``argv`` with ``env`` in ROOT; output goes to a log file named after it."""
        log_path = os.path.join(self.folder, f"{name}-{len(self.running)}-{time.time():.0f}.log")
        with open(log_path, "wb") as log:
            process = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=log,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True)
        process.name, process.log_path = name, log_path
        self.running.append(process)
        return process

    def wait(self, process, timeout):
        """Wait for ``process`` to exit; on timeout stop it and raise TimeoutError."""
        try:
            return process.wait(timeout=max(0.1, timeout))
        except subprocess.TimeoutExpired:
            self.stop(process)
            raise TimeoutError(f"{process.name} did not finish within {timeout:.0f}s"
                               f"{self.tail(process)}") from None

    def stop(self, process, grace=STOP_GRACE):
        """SIGTERM the process's group (gunicorn's workers too), SIGKILL it after ``grace``."""
        if process.poll() is None:
            self._signal(process, signal.SIGTERM)
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self._signal(process, signal.SIGKILL)
                process.wait(timeout=10)
        if process in self.running:
            self.running.remove(process)
        return process.returncode

    @staticmethod
    def _signal(process, signum):
        """Signal the process group that ``process`` leads (it was started in a new session)."""
        try:
            os.killpg(process.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def stop_all(self):
        """Stop every process still running, newest first."""
        for process in reversed(list(self.running)):
            try:
                self.stop(process, grace=5.0)
            except Exception as err:  # clean up the rest regardless
                say(f"could not stop {process.name} ({process.pid}): {err}")

    def read(self, process):
        """A process's whole output (secrets masked)."""
        try:
            with open(process.log_path, encoding="utf-8", errors="replace") as handle:
                text = handle.read()
        except OSError:
            return ""
        for secret in self.hide:
            text = text.replace(secret, "***")
        return text

    def tail(self, process, lines=15):
        """The last lines of a process's output (secrets masked), for error messages."""
        text = "".join(self.read(process).splitlines(keepends=True)[-lines:])
        return f"\n--- last lines of {process.name} ---\n{text}" if text else ""


# ---------------------------------------------------------------------------------------------
# HTTP helpers
# ---------------------------------------------------------------------------------------------


def http_json(method, url, payload=None, headers=None, timeout=30):
    """One HTTP request; returns (status, parsed JSON body or None)."""
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as err:
        status, body = err.code, err.read()
    try:
        return status, json.loads(body) if body else None
    except ValueError:
        return status, None


def wait_http(url, process, children, timeout=START_TIMEOUT):
    """Wait until ``url`` answers 200 (or the process dies); raise RuntimeError otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.name} exited with {process.returncode}"
                               f"{children.tail(process)}")
        try:
            if http_json("GET", url, timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s{children.tail(process)}")


class RawClient:
    """A keep-alive HTTP/1.1 client on one socket: cheap enough not to be the bottleneck."""

    def __init__(self, host, port):
        self.address = (host, port)
        self.sock = None
        self.buffer = b""

    def connect(self):
        """Open the connection (done before the clock starts)."""
        self.close()
        self.sock = socket.create_connection(self.address, timeout=60)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def close(self):
        """Close the connection if open."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def request(self, raw):
        """Send the prepared request bytes; return (status, body bytes)."""
        if self.sock is None:
            self.connect()
        self.sock.sendall(raw)
        return self._response()

    def _recv(self):
        """More bytes from the server, or ConnectionError if it hung up."""
        chunk = self.sock.recv(256 * 1024)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buffer += chunk

    def _response(self):
        """Read one response with a Content-Length body."""
        while b"\r\n\r\n" not in self.buffer:
            self._recv()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(None, 2)[1])
        length, close = 0, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection":
                close = value.strip().lower() == b"close"
            elif name == b"transfer-encoding":
                raise ConnectionError("chunked answers are not supported by the load generator")
        while len(self.buffer) < length:
            self._recv()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        if close:
            self.close()
        return status, body


def raw_request(method, path, host, port, body, content_type, headers=()):
    """The bytes of one HTTP/1.1 keep-alive request."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}",
             f"Content-Type: {content_type}", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# ---------------------------------------------------------------------------------------------
# Subprocess modes: the load generator and the bare sender (run as `bench.py _load ...`)
# ---------------------------------------------------------------------------------------------


def load_main(spec_path):
    """Load generator process: ``connections`` keep-alive clients for ``duration`` seconds."""
    with open(spec_path, encoding="utf-8") as handle:
        spec = json.load(handle)
    with open(spec["body_file"], "rb") as handle:
        body = handle.read()
    headers = [f"Authorization: Bearer {os.environ['BENCH_API_KEY']}"] \
        if os.environ.get("BENCH_API_KEY") else []
    raw = raw_request("POST", spec["path"], HOST, spec["port"], body, spec["content_type"],
                      headers)
    start_at, end_at = spec["start_at"], spec["start_at"] + spec["duration"]
    outputs = []
    threads = [threading.Thread(target=load_connection, args=(spec, raw, start_at, end_at,
                                                              outputs))
               for _ in range(spec["connections"])]
    cpu_before = os.times()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    cpu_after = os.times()
    merged = {"latencies_ms": [], "ids": [], "statuses": Counter(), "errors": [],
              "items_in_window": 0, "requests_in_window": 0,
              "cpu_seconds": (cpu_after.user - cpu_before.user)
              + (cpu_after.system - cpu_before.system)}
    for out in outputs:
        merged["latencies_ms"] += out["latencies_ms"]
        merged["ids"] += out["ids"]
        merged["statuses"].update(out["statuses"])
        merged["errors"] += out["errors"]
        merged["items_in_window"] += out["items_in_window"]
        merged["requests_in_window"] += out["requests_in_window"]
    with open(spec["out"], "w", encoding="utf-8") as handle:
        json.dump(merged, handle)
    return 0


def load_connection(spec, raw, start_at, end_at, outputs):
    """One client connection of the load generator: send until ``end_at``, record everything."""
    out = {"latencies_ms": [], "ids": [], "statuses": Counter(), "errors": [],
           "items_in_window": 0, "requests_in_window": 0}
    client = RawClient(HOST, spec["port"])
    try:
        client.connect()
    except OSError as err:
        out["errors"].append(f"connect: {err}")
    time.sleep(max(0.0, start_at - time.time()))
    while True:
        began = time.perf_counter()
        if time.time() >= end_at:
            break
        try:
            status, body = client.request(raw)
        except OSError as err:
            out["errors"].append(repr(err))
            client.close()
            time.sleep(0.01)
            continue
        elapsed_ms = (time.perf_counter() - began) * 1000
        out["statuses"][str(status)] += 1
        items = 0
        if status == 202:
            answer = json.loads(body)
            ids = answer["ids"] if "ids" in answer else [answer["id"]]
            out["ids"] += ids
            items = len(ids)
        if time.time() <= end_at:
            out["latencies_ms"].append(elapsed_ms)
            out["requests_in_window"] += 1
            out["items_in_window"] += items
    client.close()
    outputs.append(out)


def bare_send_main(count):
    """Baseline process: send ``count`` mails with the project's provider, no database."""
    from mail_service import load_config
    from mailer.worker import Sessions
    from providers import Message, build_providers

    config = load_config(None)
    provider = build_providers(config)[0]
    sessions = Sessions()
    counter = itertools.count()
    failures = []

    def sender():
        """One send thread: take the next index until ``count`` are sent."""
        while (index := next(counter)) < count:
            message = Message(id=str(uuid.uuid4()), from_address=SENDER,
                              to=[f"rcpt{index}@example.com"], subject=f"Mail {index}",
                              text=BODY_TEXT)
            try:
                provider.send(sessions.get(provider), message)
            except Exception as err:  # counted and reported
                failures.append(repr(err))

    threads = [threading.Thread(target=sender)
               for _ in range(max(1, int(config["WORKER_CONCURRENCY"])))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps({"sent": count - len(failures), "failures": failures[:5]}), flush=True)
    return 1 if failures else 0


# ---------------------------------------------------------------------------------------------
# The run: database, sandbox, settings, cleanup
# ---------------------------------------------------------------------------------------------


def libpq_url(url):
    """A URL psycopg2 accepts (no ``+driver`` part)."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def connect(url):
    """An autocommit psycopg2 connection."""
    import psycopg2

    connection = psycopg2.connect(libpq_url(url), connect_timeout=10)
    connection.autocommit = True
    return connection


class Bench:
    """Everything one run shares: sizes, deadline, database, sandbox, children and results."""

    def __init__(self, args):
        self.args = args
        self.sizes = dict(QUICK if args.quick else FULL)
        if args.drain_count:
            self.sizes["memory"] = args.drain_count
        self.deadline = time.monotonic() + args.max_seconds
        self.folder = tempfile.mkdtemp(prefix="mail-bench-")
        self.mailgun_key = "key-" + secrets.token_hex(16)
        self.sendgrid_key = "SG." + secrets.token_urlsafe(24)
        self.api_key = secrets.token_urlsafe(24)
        self.children = Children(self.folder, [self.mailgun_key, self.sendgrid_key,
                                               self.api_key])
        self.database_url = None
        self.created_database = None
        self.sandbox_url = None
        self.db = None  # autocommit psycopg2 connection to the bench database
        self._engine = None
        self.rows = []

    # Time ----------------------------------------------------------------------------------

    def remaining(self):
        """Seconds left before --max-seconds."""
        return self.deadline - time.monotonic()

    def timeout(self, wanted):
        """``wanted`` seconds, cut to what is left of the run."""
        left = self.remaining()
        if left <= 1:
            raise TimeoutError("--max-seconds reached")
        return min(wanted, left)

    # Setup and cleanup -----------------------------------------------------------------------

    def setup(self):
        """Create (or take) the database, migrate it, start the sandbox."""
        if self.args.database_url:
            self.database_url = self.args.database_url
        else:
            from sqlalchemy.engine import make_url

            server = make_url(self.args.server_url)
            name = f"mail_bench_{secrets.token_hex(4)}"
            admin = connect(self.args.server_url)
            try:
                admin.cursor().execute(f'CREATE DATABASE "{name}"')
            finally:
                admin.close()
            self.created_database = name
            self.database_url = server.set(database=name).render_as_string(hide_password=False)
        say("migrating the database")
        result = subprocess.run([PYTHON, "-m", "flask", "--app", "app", "db", "upgrade"],
                                cwd=ROOT, env=self.env(), capture_output=True, text=True,
                                timeout=self.timeout(120))
        if result.returncode:
            raise RuntimeError(f"migration failed:\n{result.stdout}{result.stderr}")
        self.db = connect(self.database_url)
        self.truncate()
        self.start_sandbox()

    def start_sandbox(self):
        """The provider sandbox as a subprocess on a free port (keys in its environment)."""
        port = free_port()
        env = {**self.base_env(), "SANDBOX_MAILGUN_API_KEY": self.mailgun_key,
               "SANDBOX_SENDGRID_API_KEY": self.sendgrid_key}
        process = self.children.start("sandbox", [PYTHON, "-m", "mailer.sandbox", "--host", HOST,
                                                  "--port", str(port), "--latency-ms", "0"], env)
        self.sandbox_url = f"http://{HOST}:{port}"
        wait_http(f"{self.sandbox_url}/_sandbox/health", process, self.children)

    def cleanup(self):
        """Stop every child, drop the throwaway database, remove the log folder."""
        self.children.stop_all()
        if self._engine is not None:
            self._engine.dispose()
        if self.db is not None:
            self.db.close()
        if self.created_database:
            try:
                admin = connect(self.args.server_url)
                try:
                    admin.cursor().execute(
                        f'DROP DATABASE IF EXISTS "{self.created_database}" WITH (FORCE)')
                finally:
                    admin.close()
                say(f"dropped database {self.created_database}")
            except Exception as err:  # report, never hide the run's results
                say(f"could not drop database {self.created_database}: {err}")
        if not self.args.keep_logs:
            for name in os.listdir(self.folder):
                os.remove(os.path.join(self.folder, name))
            os.rmdir(self.folder)
        else:
            say(f"logs kept in {self.folder}")

    # Settings ------------------------------------------------------------------------------

    def base_env(self):
        """This process's environment without a settings file (settings come from env)."""
        env = {key: value for key, value in os.environ.items() if key != "MAIL_SERVICE_CONFIG"}
        env["PYTHONPATH"] = ROOT
        return env

    def env(self, **overrides):
        """Environment for the API, the worker, purge and the bare sender (every setting is an
        environment variable of the same name)."""
        settings = {
            "DATABASE_URL": self.database_url or "",
            "SECRET_KEY": "bench-" + secrets.token_hex(8),
            "API_KEYS": self.api_key,
            "ADMIN_PASSWORD": secrets.token_urlsafe(12),
            "PROVIDERS": "mailgun,sendgrid",
            "MAILGUN_API_KEY": self.mailgun_key,
            "MAILGUN_DOMAIN": MAILGUN_DOMAIN,
            "MAILGUN_BASE_URL": self.sandbox_url or "",
            "SENDGRID_API_KEY": self.sendgrid_key,
            "SENDGRID_BASE_URL": self.sandbox_url or "",
        }
        return {**self.base_env(), **settings, **{k: str(v) for k, v in overrides.items()}}

    # Database helpers ----------------------------------------------------------------------

    def sql(self, statement, params=None):
        """Run one statement on the bench database; return all rows if it returns any."""
        with self.db.cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.fetchall() if cursor.description else None

    def engine(self):
        """A SQLAlchemy engine made like the worker's (for ``mailqueue.claim``)."""
        if self._engine is None:
            from mailer.config import DEFAULTS
            from mailer.database import make_engine

            self._engine = make_engine({**DEFAULTS, "DATABASE_URL": self.database_url},
                                       pool_size=2, worker=True)
        return self._engine

    def truncate(self):
        """Empty the tables (the schema stays)."""
        self.sql("TRUNCATE delivery_attempt, email, provider_state")

    def insert_mails(self, count, status="queued", age_days=0.0):
        """Insert ``count`` mails with one generate_series statement; then ANALYZE."""
        finished = status in ("sent", "failed")
        self.sql(
            """
            INSERT INTO email (id, status, from_address, to_address, subject, text, attempts,
                               provider, sent_at, next_attempt_at, created_at, updated_at)
            SELECT gen_random_uuid(), %(status)s, %(sender)s, 'rcpt' || g || '@example.com',
                   'Mail ' || g, %(text)s, %(attempts)s, %(provider)s, %(sent_at)s,
                   %(at)s, %(at)s, %(at)s
            FROM generate_series(1, %(count)s) AS g
            """,
            {"status": status, "sender": SENDER, "text": BODY_TEXT, "count": count,
             "attempts": 1 if finished else 0, "provider": "mailgun" if finished else None,
             "sent_at": self._ago(age_days) if status == "sent" else None,
             "at": self._ago(age_days if finished else 0.0001)},
        )
        self.sql("ANALYZE email")

    @staticmethod
    def _ago(days):
        """A UTC timestamp ``days`` ago."""
        return datetime.fromtimestamp(time.time() - days * 86400, UTC)

    def status_counts(self):
        """How many mails are in each status."""
        return dict(self.sql("SELECT status, count(*) FROM email GROUP BY status"))

    def committed(self, ids):
        """How many of ``ids`` are rows of the email table."""
        if not ids:
            return 0
        return self.sql("SELECT count(*) FROM email WHERE id = ANY(%s::uuid[])", (list(ids),))[0][0]

    def notify_triggers(self):
        """Names of the user triggers on ``email`` (the LISTEN/NOTIFY wake-up)."""
        rows = self.sql("SELECT tgname FROM pg_trigger WHERE tgrelid = 'email'::regclass "
                        "AND NOT tgisinternal")
        return [name for (name,) in rows]

    # Sandbox helpers -----------------------------------------------------------------------

    def sandbox_reset(self, latency_ms):
        """Forget the sandbox's messages and requests; answer every send after ``latency_ms``."""
        http_json("POST", f"{self.sandbox_url}/_sandbox/reset")
        for provider in ("mailgun", "sendgrid"):
            status, body = http_json("PUT", f"{self.sandbox_url}/_sandbox/behaviour/{provider}",
                                     {"latency_ms": latency_ms})
            if status != 200:
                raise RuntimeError(f"sandbox refused the behaviour: {status} {body}")

    def sandbox_log(self, kind):
        """The sandbox's ``requests`` or ``messages``, oldest first."""
        status, body = http_json("GET", f"{self.sandbox_url}/_sandbox/{kind}", timeout=120)
        if status != 200:
            raise RuntimeError(f"sandbox answered {status} for {kind}")
        return body[kind]

    def send_rate(self, expected):
        """Sends per second over the sandbox's window, from its first request to its last."""
        requests_seen = self.sandbox_log("requests")
        bad = Counter(r["status"] for r in requests_seen if r["status"] not in (200, 202))
        if len(requests_seen) != expected or bad:
            raise RuntimeError(f"the sandbox saw {len(requests_seen)} requests (expected "
                               f"{expected}); failures by status: {dict(bad)}")
        times = sorted(r["at"] for r in requests_seen)
        return (len(times) - 1) / (times[-1] - times[0]) if times[-1] > times[0] else None

    # Processes -------------------------------------------------------------------------------

    def start_worker(self, *args, **overrides):
        """Start ``mail_service.py`` with the bench settings."""
        return self.children.start("worker", [PYTHON, "mail_service.py", *args],
                                   self.env(**overrides))

    def start_gunicorn(self, app_spec, name):
        """gunicorn with gunicorn.conf.py serving ``app_spec`` on a free port; return the port."""
        port = free_port()
        process = self.children.start(
            name, [PYTHON, "-m", "gunicorn", "-c", os.path.join(ROOT, "gunicorn.conf.py"),
                   app_spec], self.env(BIND=f"{HOST}:{port}"))
        wait_http(f"http://{HOST}:{port}/health", process, self.children)
        return process, port

    def load(self, port, path, body, content_type, concurrency, duration, label):
        """Run the load generator (several processes) against ``path``; merged results."""
        procs = max(1, min(self.sizes["load_procs"], concurrency))
        body_file = os.path.join(self.folder, f"{label}.body")
        with open(body_file, "wb") as handle:
            handle.write(body)
        start_at = time.time() + 1.0  # every process connects first, then all start together
        runs = []
        for index in range(procs):
            connections = concurrency // procs + (index < concurrency % procs)
            spec = {"port": port, "path": path, "content_type": content_type,
                    "body_file": body_file, "connections": connections,
                    "start_at": start_at, "duration": duration,
                    "out": os.path.join(self.folder, f"{label}-{index}.json")}
            spec_file = os.path.join(self.folder, f"{label}-{index}.spec")
            with open(spec_file, "w", encoding="utf-8") as handle:
                json.dump(spec, handle)
            env = {**self.base_env(), "BENCH_API_KEY": self.api_key}
            runs.append((self.children.start(f"load-{label}",
                                             [PYTHON, __file__, "_load", spec_file], env), spec))
        merged = {"latencies_ms": [], "ids": [], "statuses": Counter(), "errors": [],
                  "items_in_window": 0, "requests_in_window": 0, "cpu_seconds": 0.0,
                  "duration": duration}
        for process, spec in runs:
            code = self.children.wait(process, self.timeout(duration + 60))
            self.children.stop(process)
            if code:
                raise RuntimeError(f"load generator failed ({code}){self.children.tail(process)}")
            with open(spec["out"], encoding="utf-8") as handle:
                out = json.load(handle)
            for key in ("latencies_ms", "ids", "errors"):
                merged[key] += out[key]
            merged["statuses"].update(out["statuses"])
            for key in ("items_in_window", "requests_in_window", "cpu_seconds"):
                merged[key] += out[key]
        return merged

    def drain(self, count, processes, latency_ms):
        """Queue ``count`` mails, drain them with ``processes`` burst workers; sends/s."""
        self.truncate()
        self.sandbox_reset(latency_ms)
        self.insert_mails(count)
        workers = [self.start_worker("--burst") for _ in range(processes)]
        for worker in workers:
            code = self.children.wait(worker, self.timeout(120 + count / 20))
            self.children.stop(worker)
            if code:
                raise RuntimeError(f"worker exited with {code}{self.children.tail(worker)}")
        counts = self.status_counts()
        if counts != {"sent": count}:
            raise RuntimeError(f"after the drain the mails are {counts}, not all sent")
        return self.send_rate(count)

    def bare_send(self, count, latency_ms):
        """The baseline: the bare sender process sends ``count`` mails; sends/s."""
        self.sandbox_reset(latency_ms)
        process = self.children.start("bare-sender", [PYTHON, __file__, "_bare-send",
                                                      str(count)], self.env())
        code = self.children.wait(process, self.timeout(120 + count / 20))
        self.children.stop(process)
        if code:
            raise RuntimeError(f"bare sender failed ({code}){self.children.tail(process)}")
        return self.send_rate(count)


# ---------------------------------------------------------------------------------------------
# Scenarios: each returns its rows
# ---------------------------------------------------------------------------------------------


def scenario_dispatch(b):
    """1. One worker drains N mails at >= 85% of a bare sender's rate (50 ms provider)."""
    count, latency = b.sizes["dispatch"], b.sizes["dispatch_latency_ms"]
    bare, ours = [], []
    for round_number in range(b.sizes["dispatch_rounds"]):
        say(f"dispatch round {round_number + 1}: bare sender, {count} mails")
        bare.append(b.bare_send(count, latency))
        say(f"dispatch round {round_number + 1}: one worker, {count} mails")
        ours.append(b.drain(count, 1, latency))
    mine, base = statistics.median(ours), statistics.median(bare)
    ratio = ratio_of(mine, base)
    return [Row(f"dispatch ({count:,} mails, {latency} ms)", mine, base, ratio, ">= 0.85",
                ratio is not None and ratio >= 0.85, "/s",
                note=f"medians of {len(ours)} alternated runs; worker "
                f"{', '.join(f'{r:.0f}' for r in ours)}/s, bare sender "
                f"{', '.join(f'{r:.0f}' for r in bare)}/s",
                details={"worker_rates": ours, "bare_rates": bare})]


def scenario_scaleout(b):
    """2. 1, 2 and 4 worker processes: more drain faster while the provider is not the limit."""
    count, rows = b.sizes["scaleout"], []
    for latency, judged in ((b.sizes["dispatch_latency_ms"], True), (0, False)):
        rates = {}
        for processes in b.sizes["scaleout_procs"]:
            say(f"scale-out: {processes} worker(s), {count} mails, {latency} ms")
            rates[processes] = b.drain(count, processes, latency)
        for processes in b.sizes["scaleout_procs"]:
            ratio = ratio_of(rates[processes], rates[1])
            if processes == 1:
                rows.append(Row(f"scale-out 1 proc, {latency} ms", rates[1], unit="/s",
                                target="(reference)"))
                continue
            rows.append(Row(f"scale-out {processes} procs, {latency} ms", rates[processes],
                            rates[1], ratio, "> 1.0" if judged else "(info)",
                            (ratio is not None and ratio > 1.0) if judged else None, "/s"))
    return rows


def post_spaced(port, count, gap_ms, api_key):
    """POST ``count`` mails one at a time with random gaps; [(mail id, post start unix time)]."""
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    headers = {"Authorization": f"Bearer {api_key}",
               "Content-Type": "application/x-www-form-urlencoded"}
    posted = []
    try:
        for index in range(count):
            time.sleep(random.uniform(*gap_ms) / 1000)
            body = (f"from={SENDER}&to=rcpt{index}%40example.com&subject=Latency+{index}"
                    f"&text=Hello").encode()
            started = time.time()
            connection.request("POST", "/mail", body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read()
            if response.status != 202:
                raise RuntimeError(f"POST /mail answered {response.status}: {answer[:200]!r}")
            posted.append((json.loads(answer)["id"], started))
    finally:
        connection.close()
    return posted


def arrival_times(b):
    """Unix time at which each mail id reached the sandbox (its request's ``at``)."""
    requests_seen, messages = b.sandbox_log("requests"), b.sandbox_log("messages")
    if len(requests_seen) == len(messages) and all(r["status"] == 200 for r in requests_seen):
        # The sandbox logs a request and its message together, so the lists line up.
        return {m["custom"].get("mail_id"): r["at"]
                for r, m in zip(requests_seen, messages, strict=True)}
    return {m["custom"].get("mail_id"): datetime.fromisoformat(m["received_at"]).timestamp()
            for m in messages}


def latency_run(b, port, notify):
    """Post mails one at a time to an idle worker; post-to-provider latencies in ms."""
    count = b.sizes["latency_posts"]
    b.truncate()
    b.sandbox_reset(0)
    if not notify:
        b.sql("ALTER TABLE email DISABLE TRIGGER USER")
    try:
        worker = b.start_worker()
        time.sleep(2.0)  # started, listening, idle
        if worker.poll() is not None:
            raise RuntimeError(f"worker exited{b.children.tail(worker)}")
        posted = post_spaced(port, count, b.sizes["latency_gap_ms"], b.api_key)
        deadline = time.monotonic() + b.timeout(30)
        while len(b.sandbox_log("requests")) < count and time.monotonic() < deadline:
            time.sleep(0.2)
        b.children.stop(worker)
    finally:
        if not notify:
            b.sql("ALTER TABLE email ENABLE TRIGGER USER")
    arrived = arrival_times(b)
    missing = [mail_id for mail_id, _ in posted if mail_id not in arrived]
    if missing:
        raise RuntimeError(f"{len(missing)} posted mails never reached the sandbox")
    return [(arrived[mail_id] - started) * 1000 for mail_id, started in posted]


def scenario_latency(b):
    """3. Idle worker: post -> provider under 50 ms p50 / 250 ms p99 (LISTEN/NOTIFY)."""
    _, port = b.start_gunicorn("app:create_app()", "api")
    triggers = b.notify_triggers()
    say("latency: polling only (triggers disabled)")
    polling = latency_run(b, port, notify=False)
    poll_p50, poll_p99 = percentile(polling, 0.5), percentile(polling, 0.99)
    count = len(polling)
    if not triggers:
        return [Row("latency p50 (notify)", "not available", poll_p50, unit="ms",
                    target="< 50 ms", note="no trigger on email: LISTEN/NOTIFY has not landed"),
                Row("latency p99 (notify)", "not available", poll_p99, unit="ms",
                    target="< 250 ms")]
    say(f"latency: LISTEN/NOTIFY (trigger {', '.join(triggers)})")
    notified = latency_run(b, port, notify=True)
    p50, p99 = percentile(notified, 0.5), percentile(notified, 0.99)
    return [
        Row(f"latency p50 ({count} posts)", p50, poll_p50, ratio_of(p50, poll_p50), "< 50 ms",
            p50 < 50, "ms", note="baseline = the same worker polling (trigger disabled, "
            "POLL_INTERVAL default)",
            details={"notify_ms": notified, "polling_ms": polling}),
        Row(f"latency p99 ({count} posts)", p99, poll_p99, ratio_of(p99, poll_p99), "< 250 ms",
            p99 < 250, "ms"),
        Row(f"latency max ({count} posts)", max(notified), max(polling),
            ratio_of(max(notified), max(polling)), "(info)", None, "ms"),
    ]


FORM_BODY = (f"from={SENDER}&to=rcpt%40example.com&subject=Hello+from+the+benchmark"
             f"&text={BODY_TEXT.replace(' ', '+')}").encode()


def ingest_round(b, port, label):
    """One timed load run on ``port``; rate, percentiles and the ids check."""
    b.truncate()
    result = b.load(port, "/mail", FORM_BODY, "application/x-www-form-urlencoded",
                    b.sizes["ingest_concurrency"], b.sizes["ingest_seconds"], label)
    acked = result["ids"]
    result["committed"] = b.committed(acked)
    result["acked"] = len(set(acked))
    result["rate"] = result["items_in_window"] / result["duration"]
    return result


def summarize_load(runs):
    """Median rate of several load runs, their pooled p50/p99, and totals."""
    latencies = [ms for run in runs for ms in run["latencies_ms"]]
    return {
        "rate": statistics.median(run["rate"] for run in runs),
        "rates": [run["rate"] for run in runs],
        "p50": percentile(latencies, 0.5), "p99": percentile(latencies, 0.99),
        "acked": sum(run["acked"] for run in runs),
        "committed": sum(run["committed"] for run in runs),
        "statuses": dict(sum((Counter(run["statuses"]) for run in runs), Counter())),
        "errors": [error for run in runs for error in run["errors"]][:5],
        "error_count": sum(len(run["errors"]) for run in runs),
        "load_cpu_share": sum(run["cpu_seconds"] for run in runs)
        / sum(run["duration"] for run in runs),
    }


def scenario_ingest(b):
    """4. POST /mail under gunicorn at concurrency 32 vs a minimal Flask insert endpoint."""
    _, ours_port = b.start_gunicorn("app:create_app()", "api")
    _, base_port = b.start_gunicorn("scripts.bench_minimal_app:app", "minimal")
    concurrency = b.sizes["ingest_concurrency"]
    for port, label in ((base_port, "warm-minimal"), (ours_port, "warm-ours")):
        b.load(port, "/mail", FORM_BODY, "application/x-www-form-urlencoded", concurrency,
               1.0, label)
    ours_runs, base_runs = [], []
    for round_number in range(b.sizes["ingest_rounds"]):
        say(f"ingest round {round_number + 1}: minimal app, then ours, concurrency "
            f"{concurrency}")
        base_runs.append(ingest_round(b, base_port, f"minimal-{round_number}"))
        ours_runs.append(ingest_round(b, ours_port, f"ours-{round_number}"))
    ours, base = summarize_load(ours_runs), summarize_load(base_runs)
    ratio = ratio_of(ours["rate"], base["rate"])
    lost = ours["acked"] - ours["committed"]
    details = {"ours": ours, "minimal": base}
    return [
        Row(f"ingest POST /mail, c={concurrency}", ours["rate"], base["rate"], ratio, ">= 0.70",
            ratio is not None and ratio >= 0.70, "/s", details=details,
            note=f"load generator CPU: {ours['load_cpu_share']:.0%} of a core (ours), "
            f"{base['load_cpu_share']:.0%} (minimal); statuses ours {ours['statuses']}, "
            f"minimal {base['statuses']}; connection errors {ours['error_count']}"),
        Row("ingest p50", ours["p50"], base["p50"], ratio_of(ours["p50"], base["p50"]),
            "(info)", None, "ms"),
        Row("ingest p99", ours["p99"], base["p99"], ratio_of(ours["p99"], base["p99"]),
            "< 50 ms", ours["p99"] is not None and ours["p99"] < 50, "ms"),
        Row("ingest: 202s committed", f"{ours['committed']}/{ours['acked']}",
            f"{base['committed']}/{base['acked']}", None, "all", lost == 0 and ours["acked"] > 0),
    ]


def batch_body(size):
    """A JSON list of ``size`` mail objects for POST /mail/batch."""
    return json.dumps([{"from": SENDER, "to": f"rcpt{index}@example.com",
                        "subject": f"Batch mail {index}", "text": BODY_TEXT}
                       for index in range(size)]).encode()


def scenario_bulk(b):
    """5. POST /mail/batch with 1,000 mails per request sustains >= 20,000 mails/s."""
    _, ours_port = b.start_gunicorn("app:create_app()", "api")
    status, answer = http_json("POST", f"http://{HOST}:{ours_port}/mail/batch",
                               json.loads(batch_body(1)),
                               {"Authorization": f"Bearer {b.api_key}"})
    if status in (404, 405):
        raise Unavailable("POST /mail/batch is not there yet")
    if status != 202 or not answer or "ids" not in answer:
        raise RuntimeError(f"POST /mail/batch with one mail answered {status}: {answer}")
    _, base_port = b.start_gunicorn("scripts.bench_minimal_app:app", "minimal")
    body, concurrency = batch_body(b.sizes["bulk_size"]), b.sizes["bulk_concurrency"]
    runs = {}
    for port, label in ((base_port, "minimal"), (ours_port, "ours")):
        say(f"bulk: {label}, {b.sizes['bulk_size']} mails per request, concurrency "
            f"{concurrency}")
        b.truncate()
        result = b.load(port, "/mail/batch", body, "application/json", concurrency,
                        b.sizes["bulk_seconds"], f"bulk-{label}")
        result["rate"] = result["items_in_window"] / result["duration"]
        result["acked"], result["committed"] = len(set(result["ids"])), b.committed(result["ids"])
        runs[label] = result
    ours, base = runs["ours"], runs["minimal"]
    ratio = ratio_of(ours["rate"], base["rate"])
    return [
        Row(f"bulk /mail/batch x{b.sizes['bulk_size']}, c={concurrency}", ours["rate"],
            base["rate"], ratio, ">= 20,000/s", ours["rate"] >= 20_000, "mails/s",
            note=f"p50 {fmt(percentile(ours['latencies_ms'], 0.5), 'ms')} per request (ours), "
            f"{fmt(percentile(base['latencies_ms'], 0.5), 'ms')} (minimal); "
            f"statuses {dict(ours['statuses'])}",
            details={"ours_statuses": dict(ours["statuses"]),
                     "minimal_statuses": dict(base["statuses"])}),
        Row("bulk: 202s committed", f"{ours['committed']}/{ours['acked']}",
            f"{base['committed']}/{base['acked']}", None, "all",
            ours["committed"] == ours["acked"] and ours["acked"] > 0),
    ]


def claim_time(b, claims):
    """Median ms of ``mailqueue.claim`` of 100 mails, each in a transaction rolled back."""
    from mailer import mailqueue

    engine, times = b.engine(), []
    for index in range(claims + 2):
        with engine.connect() as conn:
            transaction = conn.begin()
            started = time.perf_counter()
            rows = mailqueue.claim(conn, "bench", 100, 60.0)
            elapsed = time.perf_counter() - started
            transaction.rollback()
        if len(rows) != 100:
            raise RuntimeError(f"claim returned {len(rows)} mails, not 100")
        if index >= 2:  # the first two warm the caches
            times.append(elapsed * 1000)
    return statistics.median(times), times


def scenario_million(b):
    """6. Claiming 100 with a million queued (or finished) rows is as fast as with 1,000."""
    big, small, claims = b.sizes["million"], b.sizes["million_small"], b.sizes["claims"]
    b.truncate()
    b.insert_mails(small)
    say(f"million: claims with {small:,} queued")
    base, base_times = claim_time(b, claims)
    b.truncate()
    say(f"million: inserting {big:,} queued mails")
    started = time.perf_counter()
    b.insert_mails(big)
    insert_seconds = time.perf_counter() - started
    queued, queued_times = claim_time(b, claims)
    b.truncate()
    say(f"million: inserting {big:,} finished mails and {small:,} queued")
    b.insert_mails(big - big // 10, "sent", age_days=1)
    b.insert_mails(big // 10, "failed", age_days=1)
    b.insert_mails(small)
    finished, finished_times = claim_time(b, claims)
    b.truncate()
    r1, r2 = ratio_of(queued, base), ratio_of(finished, base)
    return [
        Row(f"claim 100, {big:,} queued", queued, base, r1, "<= 1.5 (as fast)",
            r1 is not None and r1 <= 1.5, "ms",
            note=f"median of {claims} claims; baseline = {small:,} queued; inserting "
            f"{big:,} rows took {insert_seconds:.1f}s",
            details={"queued_ms": queued_times, "small_ms": base_times}),
        Row(f"claim 100, {big:,} finished + {small:,} queued", finished, base, r2,
            "<= 1.5 (as fast)", r2 is not None and r2 <= 1.5, "ms",
            details={"finished_ms": finished_times}),
    ]


def rss_mb(pid):
    """VmRSS of ``pid`` in MB, or None once it has exited."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def scenario_memory(b):
    """7. Worker RSS stays flat and under 200 MB while it drains N mails (0 ms provider)."""
    count = b.sizes["memory"]
    b.truncate()
    b.sandbox_reset(0)
    b.insert_mails(count)
    say(f"memory: one worker drains {count:,} mails, RSS sampled every second")
    worker = b.start_worker("--burst")
    samples, last_reset = [], time.monotonic()  # (seconds, MB, mails sent so far)
    started = time.monotonic()
    deadline = started + b.timeout(120 + count / 20)
    sent = 0
    while worker.poll() is None and time.monotonic() < deadline:
        mb = rss_mb(worker.pid)
        if sent < count / 10:  # progress is needed only to find the warm sample; then spare it
            sent = b.sql("SELECT count(*) FROM email WHERE status = 'sent'")[0][0]
        if mb is not None:
            samples.append((round(time.monotonic() - started, 1), mb, sent))
        if count > 100_000 and time.monotonic() - last_reset > 10:
            b.sandbox_reset(0)  # the sandbox keeps every message: bound its memory
            last_reset = time.monotonic()
        time.sleep(1.0)
    code = b.children.wait(worker, 5)
    b.children.stop(worker)
    if code:
        raise RuntimeError(f"worker exited with {code}{b.children.tail(worker)}")
    counts = b.status_counts()
    if counts != {"sent": count}:
        raise RuntimeError(f"after the drain the mails are {counts}")
    sending = [s for s in samples if s[2] > 0] or samples
    if not sending:
        raise RuntimeError("no RSS sample was taken (the drain was too quick)")
    start_mb, end_mb = sending[0][1], sending[-1][1]
    warm = next((s[1] for s in sending if s[2] >= count / 10), start_mb)
    peak = max(s[1] for s in samples)
    elapsed = samples[-1][0] if samples else None
    flat = end_mb <= warm * 1.10
    return [Row(f"worker RSS draining {count:,} mails", peak, warm, ratio_of(end_mb, warm),
                "peak < 200 MB, end <= 1.10x warm", peak < 200 and flat, "MB",
                note=f"RSS start {start_mb:.1f} MB, at 10% sent {warm:.1f} MB, peak "
                f"{peak:.1f} MB, end {end_mb:.1f} MB; {len(samples)} samples over "
                f"~{elapsed}s; ratio = end / at-10%",
                details={"samples": samples})]


class TransactionWatcher(threading.Thread):
    """Samples pg_stat_activity every few ms: the transactions of other clients and their ages."""

    def __init__(self, url, database):
        super().__init__(name="xact-watch", daemon=True)
        self.url, self.database = url, database
        self.stop_event = threading.Event()
        self.ages = {}  # (pid, xact_start) -> longest age seen, seconds

    def run(self):
        """Sample until stopped."""
        connection = connect(self.url)
        try:
            with connection.cursor() as cursor:
                while not self.stop_event.is_set():
                    cursor.execute(
                        "SELECT pid, xact_start, "
                        "extract(epoch FROM clock_timestamp() - xact_start) "
                        "FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid() "
                        "AND backend_type = 'client backend' AND xact_start IS NOT NULL",
                        (self.database,))
                    for pid, xact_start, age in cursor.fetchall():
                        key = (pid, xact_start)
                        self.ages[key] = max(self.ages.get(key, 0.0), float(age))
                    time.sleep(0.003)
        finally:
            connection.close()


def old_finished(b, days):
    """How many finished mails are older than ``days``."""
    return b.sql("SELECT count(*) FROM email WHERE status IN ('sent', 'failed') "
                 "AND updated_at < now() - make_interval(days => %s)", (days,))[0][0]


def fill_retention(b, count, keep):
    """``count`` finished mails 60 days old with one attempt each, plus recent ones to keep."""
    b.truncate()
    b.insert_mails(count - count // 10, "sent", age_days=60)
    b.insert_mails(count // 10, "failed", age_days=60)
    b.insert_mails(keep, "sent", age_days=1)
    b.insert_mails(keep, "queued")
    b.sql("INSERT INTO delivery_attempt (email_id, number, provider, outcome, status_code, "
          "worker, created_at) SELECT id, 1, 'mailgun', 'sent', 200, 'bench', created_at "
          "FROM email WHERE status <> 'queued'")
    b.sql("VACUUM ANALYZE email")
    b.sql("VACUUM ANALYZE delivery_attempt")


def raw_purge(b, days, batch_size):
    """The baseline: a hand-written batched DELETE loop; (rows/s, longest batch s, batches)."""
    import psycopg2

    connection = psycopg2.connect(libpq_url(b.database_url))
    longest, total, batches = 0.0, 0, 0
    started = time.perf_counter()
    try:
        while True:
            began = time.perf_counter()
            with connection.cursor() as cursor:
                cursor.execute(
                    "DELETE FROM email WHERE id IN (SELECT id FROM email WHERE status IN "
                    "('sent', 'failed') AND updated_at < now() - make_interval(days => %s) "
                    "LIMIT %s)", (days, batch_size))
                deleted = cursor.rowcount
            connection.commit()
            longest = max(longest, time.perf_counter() - began)
            total, batches = total + deleted, batches + 1
            if deleted < batch_size:
                break
    finally:
        connection.close()
    return total / (time.perf_counter() - started), longest, batches, total


def scenario_retention(b):
    """8. scripts/purge.py on N finished rows: rows/s and the longest batch transaction."""
    purge = os.path.join(ROOT, "scripts", "purge.py")
    if not os.path.exists(purge):
        raise Unavailable("scripts/purge.py is not there yet")
    count, keep, days = b.sizes["retention"], b.sizes["retention_keep"], 30
    batch_size = b.args.purge_batch_size
    say(f"retention: baseline DELETE loop on {count:,} finished rows")
    fill_retention(b, count, keep)
    base_rate, base_longest, base_batches, base_total = raw_purge(b, days, batch_size)
    say(f"retention: scripts/purge.py on {count:,} finished rows")
    fill_retention(b, count, keep)
    config_file = os.path.join(b.folder, "purge.cfg")
    with open(config_file, "w", encoding="utf-8") as handle:
        handle.write("# settings for the benchmark's purge run; DATABASE_URL comes from env\n")
    argv = [PYTHON, "scripts/purge.py", "--config", config_file, "--days", str(days)]
    if batch_size:
        argv += ["--batch-size", str(batch_size)]
    watcher = TransactionWatcher(b.database_url, b.created_database
                                 or b.sql("SELECT current_database()")[0][0])
    watcher.start()
    started = time.perf_counter()
    process = b.children.start("purge", argv, b.env())
    try:
        code = b.children.wait(process, b.timeout(120 + count / 500))
    finally:
        elapsed = time.perf_counter() - started
        watcher.stop_event.set()
        watcher.join(timeout=5)
    b.children.stop(process)
    if code:
        raise RuntimeError(f"purge.py exited with {code}{b.children.tail(process)}")
    left = old_finished(b, days)
    counts = b.status_counts()
    orphans = b.sql("SELECT count(*) FROM delivery_attempt a WHERE NOT EXISTS "
                    "(SELECT 1 FROM email e WHERE e.id = a.email_id)")[0][0]
    if left or counts.get("sent", 0) != keep or counts.get("queued", 0) != keep or orphans:
        raise RuntimeError(f"purge left {left} old finished mails, {orphans} orphan attempts; "
                           f"statuses now {counts}")
    longest = max(watcher.ages.values(), default=0.0)
    # The rate over the purge's transactions (as PostgreSQL saw them), not the process start-up.
    span = (max(start.timestamp() + age for (_, start), age in watcher.ages.items())
            - min(start.timestamp() for _, start in watcher.ages)) if watcher.ages else elapsed
    rate = count / span
    own = re.search(r"in ([0-9.]+)s \(longest batch ([0-9.]+)s\)", b.children.read(process))
    own_note = (f"; purge.py's own log: {float(own.group(1)):.2f}s, longest batch "
                f"{float(own.group(2)) * 1000:.0f} ms") if own else ""
    return [
        Row(f"purge {count:,} finished rows", rate, base_rate, ratio_of(rate, base_rate),
            "(report)", None, "rows/s",
            note=f"{span:.2f}s from its first transaction to its last ({elapsed:.1f}s with "
            f"process start-up); {len(watcher.ages)} transactions seen{own_note}; baseline = "
            f"hand-written DELETE ... LIMIT {batch_size} loop, {base_batches} transactions"),
        Row("purge: longest transaction", longest * 1000, base_longest * 1000,
            ratio_of(longest, base_longest), "(report)", None, "ms",
            note="seen from pg_stat_activity, sampled every ~3 ms"),
    ]


SCENARIO_FUNCTIONS = {
    "dispatch": scenario_dispatch, "scaleout": scenario_scaleout, "latency": scenario_latency,
    "ingest": scenario_ingest, "bulk": scenario_bulk, "million": scenario_million,
    "memory": scenario_memory, "retention": scenario_retention,
}


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def machine(b):
    """The machine's description: cores, memory, CPU model, Python and PostgreSQL versions."""
    model = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            model = next((line.split(":", 1)[1].strip() for line in handle
                          if line.startswith("model name")), model)
    except OSError:
        pass
    try:
        memory = subprocess.run(["free", "-h"], capture_output=True, text=True,
                                timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        memory = "unknown"
    pg = b.sql("SELECT version()")[0][0] if b.db is not None else "unknown"
    return {"nproc": len(os.sched_getaffinity(0)), "cpu": model, "memory": memory,
            "python": platform.python_version(), "postgresql": pg}


def parse_args(argv):
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help=f"comma-separated scenarios: {','.join(SCENARIOS)}")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    parser.add_argument("--max-seconds", type=float, default=1500.0,
                        help="bound on the whole run (default 1500)")
    parser.add_argument("--json", metavar="FILE", help="write the results to FILE")
    parser.add_argument("--server-url", default=DEFAULT_SERVER,
                        help="PostgreSQL server to create the throwaway database on")
    parser.add_argument("--database-url",
                        help="use this existing database instead (its tables are EMPTIED)")
    parser.add_argument("--drain-count", type=int,
                        help="mails the memory scenario drains (default 50,000)")
    parser.add_argument("--purge-batch-size", type=int, default=5000,
                        help="--batch-size for scripts/purge.py and the baseline (default 5000, "
                        "purge.py's own default)")
    parser.add_argument("--keep-logs", action="store_true",
                        help="keep the children's logs (their folder is printed)")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in (args.only or ",".join(SCENARIOS)).split(",")
              if name.strip()]
    unknown = [name for name in chosen if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenarios {unknown}; choose from {','.join(SCENARIOS)}")
    args.scenarios = chosen
    return args


def run(args):
    """Set up, run the chosen scenarios, print the table; the exit code."""
    b = Bench(args)
    errors = 0
    info = {}

    def interrupted(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    try:
        try:
            b.setup()
        except Exception as err:  # the run cannot start: say why
            print(f"bench: setup failed: {err}", file=sys.stderr)
            return 2
        info = machine(b)
        print(f"machine: {info['nproc']} cores ({info['cpu']}), Python {info['python']}, "
              f"{info['postgresql'].split(' on ')[0]}")
        print(f"command: {' '.join([os.path.relpath(__file__, ROOT), *sys.argv[1:]])}")
        for name in args.scenarios:
            if b.remaining() < 5:
                b.rows.append(Row(name, "skipped", note="--max-seconds reached"))
                continue
            say(f"scenario {name}")
            started = time.monotonic()
            try:
                rows = SCENARIO_FUNCTIONS[name](b)
            except Unavailable as why:
                rows = [Row(name, "not available", note=str(why))]
            except KeyboardInterrupt:
                raise
            except Exception as err:  # report it, run the other scenarios
                errors += 1
                message = str(err).strip()
                rows = [Row(name, "error", note=message.splitlines()[0][:300] if message
                            else err.__class__.__name__)]
                say(f"scenario {name} failed: {err.__class__.__name__}: {message}")
            finally:
                for process in list(b.children.running):
                    if process.name != "sandbox":
                        b.children.stop(process)
            say(f"scenario {name} took {time.monotonic() - started:.0f}s")
            b.rows.extend(rows)
    except KeyboardInterrupt as why:
        say(f"interrupted ({why}): cleaning up")
        errors += 1
    finally:
        b.cleanup()
    print_table(b.rows)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"machine": info, "quick": args.quick, "scenarios": args.scenarios,
                       "results": [asdict(row) for row in b.rows]}, handle, indent=1,
                      default=str)
    return 1 if errors else 0


def main(argv=None):
    """Entry point; also the load generator and bare sender subprocess modes."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_load"]:
        return load_main(argv[1])
    if argv[:1] == ["_bare-send"]:
        return bare_send_main(int(argv[1]))
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
