"""What every scenario shares: the Bench (database, sandbox, settings, processes, deadline)
and small HTTP and database helpers. Child processes are started and stopped by
``devkit.processes.Supervisor``, each with its output in a log file."""

import itertools
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from datetime import UTC, datetime

from devkit.processes import Supervisor

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYTHON = sys.executable
HOST = "127.0.0.1"
ACCEPTED = (200, 202, 250)  # a provider's "taken": HTTP 200 or 202, the SMTP relay's 250
DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
MAILGUN_DOMAIN = "mg.bench.example"
SENDER = "sender@example.com"
BODY_TEXT = "Hello from the benchmark. " * 8  # ~200 characters, a short transactional mail
STOP_GRACE = 10.0  # seconds between SIGTERM and SIGKILL for a child
CLEANUP_GRACE = 5.0  # the same at the end of the run, when every child is stopped at once
START_TIMEOUT = 60.0  # seconds for a server to answer its health check
BENCH = [PYTHON, "-m", "devkit.bench"]  # the load generators' processes run this, in ROOT


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


def last_lines(child, lines=15):
    """The end of a child's output (secrets masked) under a heading, for error messages."""
    tail = child.tail(lines)
    return f"\n--- last lines of {child.name} ---\n{tail}" if tail else ""


def tree_cpu_seconds(pid):
    """CPU seconds (user + system) used so far by process ``pid`` and its children that are
    still alive (gunicorn's master and its workers), from /proc."""
    total = 0.0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        fields = _stat_fields(name)
        if fields is not None and (int(name) == pid or int(fields[1]) == pid):  # the parent
            total += _cpu_seconds(fields)
    return total


def process_cpu_seconds(pid):
    """CPU seconds (user + system) used so far by process ``pid``, or None if it is not on this
    machine (or gone)."""
    fields = _stat_fields(pid)
    return None if fields is None else _cpu_seconds(fields)


def _stat_fields(pid):
    """The fields of ``/proc/<pid>/stat`` after the command's name (fields[1]: the parent's
    pid), or None if there is no such process (gone meanwhile)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rpartition(")")[2].split()
    except OSError:
        return None


def _cpu_seconds(fields):
    """A process's user + system CPU seconds from its ``_stat_fields``."""
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_used(before, after):
    """CPU seconds used between two ``{pid: seconds}`` readings (a pid new in ``after`` counts
    from its start), or None if nothing was read."""
    if not after:
        return None
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


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


def wait_http(url, child, timeout=START_TIMEOUT):
    """Wait until ``url`` answers 200 (or the child dies); raise RuntimeError otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RuntimeError(f"{child.name} exited ({child.describe_exit()}){last_lines(child)}")
        try:
            if http_json("GET", url, timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s{last_lines(child)}")


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

    def __init__(self, args, sizes, max_seconds):
        """A run with the command line's ``args`` and the scenarios' ``sizes``, that ends
        within ``max_seconds`` (a scenario may move the deadline when none was asked for)."""
        self.args = args
        self.sizes = sizes
        self.deadline = time.monotonic() + max_seconds
        self.folder = tempfile.mkdtemp(prefix="mail-bench-")
        self.mailgun_key = "key-" + secrets.token_hex(16)
        self.sendgrid_key = "SG." + secrets.token_urlsafe(24)
        self.ses_key = ("AKIA" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30))
        self.postmark_token = secrets.token_hex(16)
        self.smtp_port = None
        self.api_key = secrets.token_urlsafe(24)
        # Each child in a process group of its own (gunicorn's workers are stopped with it),
        # its output in a log file; our own messages on stderr, which keeps stdout for the table.
        self.supervisor = Supervisor(
            cwd=ROOT,
            grace=STOP_GRACE,
            own_groups=True,
            hide=[
                self.mailgun_key,
                self.sendgrid_key,
                self.ses_key[1],
                self.postmark_token,
                self.api_key,
            ],
            out=sys.stderr,
        )
        self._log_numbers = itertools.count()
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
        result = subprocess.run(
            [PYTHON, "-m", "flask", "--app", "app", "db", "upgrade"],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=self.timeout(120),
        )
        if result.returncode:
            raise RuntimeError(f"migration failed:\n{result.stdout}{result.stderr}")
        self.db = connect(self.database_url)
        self.truncate()
        self.start_sandbox()

    def start_sandbox(self):
        """The provider sandbox as a subprocess on a free port, with its SMTP relay on another
        (keys in its environment; the relay takes any sender, without a login)."""
        port, self.smtp_port = free_port(), free_port()
        env = {
            **self.base_env(),
            "SANDBOX_MAILGUN_API_KEY": self.mailgun_key,
            "SANDBOX_SENDGRID_API_KEY": self.sendgrid_key,
            "SANDBOX_SES_ACCESS_KEY_ID": self.ses_key[0],
            "SANDBOX_SES_SECRET_ACCESS_KEY": self.ses_key[1],
            "SANDBOX_POSTMARK_SERVER_TOKEN": self.postmark_token,
        }
        child = self.start(
            "sandbox",
            [
                PYTHON,
                "-m",
                "devkit.sandbox",
                "--host",
                HOST,
                "--port",
                str(port),
                "--latency-ms",
                "0",
                "--smtp-port",
                str(self.smtp_port),
            ],
            env,
        )
        self.sandbox_url = f"http://{HOST}:{port}"
        wait_http(f"{self.sandbox_url}/_sandbox/health", child)

    def cleanup(self):
        """Stop every child, drop the throwaway database, remove the log folder."""
        self.supervisor.stop_all(grace=CLEANUP_GRACE)
        if self._engine is not None:
            self._engine.dispose()
        if self.db is not None:
            self.db.close()
        if self.created_database:
            try:
                admin = connect(self.args.server_url)
                try:
                    admin.cursor().execute(
                        f'DROP DATABASE IF EXISTS "{self.created_database}" WITH (FORCE)'
                    )
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
            "SES_REGION": "eu-west-1",
            "SES_ACCESS_KEY_ID": self.ses_key[0],
            "SES_SECRET_ACCESS_KEY": self.ses_key[1],
            "SES_BASE_URL": self.sandbox_url or "",
            "POSTMARK_SERVER_TOKEN": self.postmark_token,
            "POSTMARK_BASE_URL": self.sandbox_url or "",
            # The sandbox's relay on loopback, in clear text (allowed to loopback only): the
            # bench measures sending, not the TLS handshake of a connection reused anyway.
            "SMTP_HOST": HOST,
            "SMTP_PORT": str(self.smtp_port or 587),
            "SMTP_SECURITY": "none",
            # One process per mail_service.py: a scenario that wants more starts more, or asks
            # for them with --processes.
            "WORKER_PROCESSES": "1",
        }
        return {**self.base_env(), **settings, **{k: str(v) for k, v in overrides.items()}}

    # Database helpers ----------------------------------------------------------------------

    def sql(self, statement, params=None):
        """Run one statement on the bench database; return all rows if it returns any."""
        with self.db.cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.fetchall() if cursor.description else None

    def database_cpu(self):
        """CPU seconds used so far by each PostgreSQL backend on the bench database but this
        one, by pid; empty when the server is not on this machine."""
        rows = self.sql(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
        used = {pid: process_cpu_seconds(pid) for (pid,) in rows}
        return {pid: seconds for pid, seconds in used.items() if seconds is not None}

    def engine(self):
        """A SQLAlchemy engine made like the worker's (for ``lease.claim``)."""
        if self._engine is None:
            from mailer.config import DEFAULTS
            from mailer.database import make_engine

            self._engine = make_engine(
                {**DEFAULTS, "DATABASE_URL": self.database_url}, pool_size=2, worker=True
            )
        return self._engine

    def truncate(self):
        """Empty the tables (the schema stays)."""
        self.sql(
            "TRUNCATE delivery_attempt, attachment, mail_tag, email, provider_state, "
            "idempotency_key, recipient, delivery_event, suppression, webhook_outbox, "
            "webhook_attempt, provider_rate, inbound, inbound_attachment"
        )

    def insert_mails(self, count, status="queued", age_days=0.0):
        """Insert ``count`` mails with one generate_series statement; then ANALYZE."""
        finished = status in ("sent", "failed")
        self.sql(
            """
            INSERT INTO email (id, status, from_address, to_address, subject, text, attempts,
                               provider, sent_at, next_attempt_at, created_at, updated_at)
            SELECT gen_random_uuid(), %(status)s, %(sender)s, ARRAY['rcpt' || g || '@example.com'],
                   'Mail ' || g, %(text)s, %(attempts)s, %(provider)s, %(sent_at)s,
                   %(at)s, %(at)s, %(at)s
            FROM generate_series(1, %(count)s) AS g
            """,
            {
                "status": status,
                "sender": SENDER,
                "text": BODY_TEXT,
                "count": count,
                "attempts": 1 if finished else 0,
                "provider": "mailgun" if finished else None,
                "sent_at": self._ago(age_days) if status == "sent" else None,
                "at": self._ago(age_days if finished else 0.0001),
            },
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
        rows = self.sql(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'email'::regclass AND NOT tgisinternal"
        )
        return [name for (name,) in rows]

    # Sandbox helpers -----------------------------------------------------------------------

    def sandbox_reset(self, latency_ms):
        """Forget the sandbox's messages and requests; answer every send after ``latency_ms``."""
        http_json("POST", f"{self.sandbox_url}/_sandbox/reset")
        for provider in ("mailgun", "sendgrid", "ses", "postmark", "smtp"):
            status, body = http_json(
                "PUT",
                f"{self.sandbox_url}/_sandbox/behaviour/{provider}",
                {"latency_ms": latency_ms},
            )
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
        bad = Counter(r["status"] for r in requests_seen if r["status"] not in ACCEPTED)
        if len(requests_seen) != expected or bad:
            raise RuntimeError(
                f"the sandbox saw {len(requests_seen)} requests (expected "
                f"{expected}); failures by status: {dict(bad)}"
            )
        times = sorted(r["at"] for r in requests_seen)
        return (len(times) - 1) / (times[-1] - times[0]) if times[-1] > times[0] else None

    # Processes -------------------------------------------------------------------------------

    def start(self, name, argv, env):
        """Start ``argv`` in ROOT with ``env``; its output goes to a log file of its own."""
        log_path = os.path.join(self.folder, f"{name}-{next(self._log_numbers)}.log")
        return self.supervisor.start(name, argv, env, log_path=log_path)

    def finish(self, child, timeout):
        """Wait for ``child`` to exit; RuntimeError with its last lines unless it exited 0."""
        code = self.supervisor.wait(child, timeout)
        self.supervisor.stop(child)  # it has exited: this only lets the supervisor forget it
        if code:
            raise RuntimeError(f"{child.name} failed ({child.describe_exit()}){last_lines(child)}")

    def start_worker(self, *args, **overrides):
        """Start ``mail_service.py`` with the bench settings."""
        return self.start("worker", [PYTHON, "mail_service.py", *args], self.env(**overrides))

    def start_gunicorn(self, app_spec, name, **settings):
        """gunicorn with gunicorn.conf.py serving ``app_spec`` on a free port; return the port."""
        port = free_port()
        child = self.start(
            name,
            [PYTHON, "-m", "gunicorn", "-c", os.path.join(ROOT, "gunicorn.conf.py"), app_spec],
            self.env(BIND=f"{HOST}:{port}", **settings),
        )
        wait_http(f"http://{HOST}:{port}/health", child)
        return child, port

    def load(self, port, path, body, content_type, concurrency, duration, label, **options):
        """Run the load generator (several processes) against ``path``; merged results.

        ``options`` go to each process's spec: ``method`` (default POST), ``paths`` (several,
        taken in turn), ``unique_key`` (a fresh ``Idempotency-Key`` on every request)."""
        procs = max(1, min(self.sizes["load_procs"], concurrency))
        body_file = os.path.join(self.folder, f"{label}.body")
        with open(body_file, "wb") as handle:
            handle.write(body)
        start_at = time.time() + 1.0  # every process connects first, then all start together
        runs = []
        for index in range(procs):
            connections = concurrency // procs + (index < concurrency % procs)
            spec = {
                "port": port,
                "path": path,
                "content_type": content_type,
                "body_file": body_file,
                "connections": connections,
                "start_at": start_at,
                "duration": duration,
                "out": os.path.join(self.folder, f"{label}-{index}.json"),
                **options,
            }
            spec_file = os.path.join(self.folder, f"{label}-{index}.spec")
            with open(spec_file, "w", encoding="utf-8") as handle:
                json.dump(spec, handle)
            env = {**self.base_env(), "BENCH_API_KEY": self.api_key}
            runs.append((self.start(f"load-{label}", [*BENCH, "_load", spec_file], env), spec))
        merged = {
            "latencies_ms": [],
            "ids": [],
            "statuses": Counter(),
            "errors": [],
            "items_in_window": 0,
            "requests_in_window": 0,
            "cpu_seconds": 0.0,
            "duration": duration,
        }
        for child, spec in runs:
            self.finish(child, self.timeout(duration + 60))
            with open(spec["out"], encoding="utf-8") as handle:
                out = json.load(handle)
            for key in ("latencies_ms", "ids", "errors"):
                merged[key] += out[key]
            merged["statuses"].update(out["statuses"])
            for key in ("items_in_window", "requests_in_window", "cpu_seconds"):
                merged[key] += out[key]
        return merged

    def drain(self, count, processes, latency_ms, **settings):
        """Queue ``count`` mails, drain them with ``processes`` burst workers; sends/s."""
        self.truncate()
        self.sandbox_reset(latency_ms)
        self.insert_mails(count)
        workers = [self.start_worker("--burst", **settings) for _ in range(processes)]
        for worker in workers:
            self.finish(worker, self.timeout(120 + count / 20))
        counts = self.status_counts()
        if counts != {"sent": count}:
            raise RuntimeError(f"after the drain the mails are {counts}, not all sent")
        return self.send_rate(count)

    def drain_supervised(self, count, processes, latency_ms, **settings):
        """Queue ``count`` mails, drain them with one ``mail_service.py --burst --processes
        N`` (the supervisor and its ``processes`` workers); sends/s."""
        self.truncate()
        self.sandbox_reset(latency_ms)
        self.insert_mails(count)
        worker = self.start_worker("--burst", "--processes", str(processes), **settings)
        self.finish(worker, self.timeout(120 + count / 20))
        counts = self.status_counts()
        if counts != {"sent": count}:
            raise RuntimeError(f"after the drain the mails are {counts}, not all sent")
        return self.send_rate(count)

    def bare_send(self, count, latency_ms, **settings):
        """The baseline: the bare sender process sends ``count`` mails; sends/s."""
        self.sandbox_reset(latency_ms)
        sender = self.start("bare-sender", [*BENCH, "_bare-send", str(count)], self.env(**settings))
        self.finish(sender, self.timeout(120 + count / 20))
        return self.send_rate(count)
