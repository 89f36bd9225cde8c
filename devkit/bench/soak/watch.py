"""The soak's eyes: once a second, how far the mails have come and what every process costs.

Each sample holds the mails by status (the status ledger, a sum over a few rows however many
mails there are), the client webhooks still pending (counted up to ``PENDING_CAP``), the
webhooks the receiver got, the sandbox's tally, and from ``/proc`` each process's CPU seconds
so far and its memory. The processes are the service's (the API's gunicorn with its workers,
each worker process, the SMTP door), the harness's (sandbox, receiver), and PostgreSQL's: the
backends of the bench database (autovacuum's too) and the server's own background processes
(checkpointer, background writer, WAL writer, autovacuum launcher), found in
``pg_stat_activity``. A backend counts from its first sample, or from its start if it started
during the run; one that ends keeps what it had used at its last sample. PostgreSQL's memory is
its client backends' private memory (``RssAnon``: their RSS also counts the shared buffers they
touched), in all and per backend, since their number changes.

The samples are kept for the report; the clients' ``Gate`` is told how many mails wait for a
worker after each one.
"""

import threading
import time

from devkit.bench.harness import http_json
from devkit.bench.soak import procfs
from mailer.queue.counts import SQL as COUNTS

INTERVAL = 1.0  # seconds between samples
PENDING_CAP = 10_000  # pending webhooks counted at most (an index range, cheap)
WAITING = ("queued", "scheduled", "sending")  # not yet taken from the queue
FINAL = ("delivered", "bounced", "complained", "failed", "suppressed", "cancelled")
SERVER_PROCESSES = ("checkpointer", "background writer", "walwriter", "autovacuum launcher")
POSTGRES = f"""
SELECT pid, backend_type FROM pg_stat_activity
 WHERE (datname = current_database() AND pid <> pg_backend_pid())
    OR (datname IS NULL AND backend_type IN ({", ".join(f"'{name}'" for name in SERVER_PROCESSES)}))
"""
PENDING = f"""
SELECT count(*) FROM (SELECT 1 FROM webhook_outbox WHERE status = 'pending'
                       LIMIT {PENDING_CAP}) AS pending
"""


class CpuMeter:
    """CPU seconds used since the start by a set of processes that come and go, by kind."""

    def __init__(self):
        self.base = {}  # (kind, pid) -> CPU seconds at its first reading (0 if new since)
        self.last = {}  # (kind, pid) -> CPU seconds at its latest reading
        self.started = False

    def read(self, readings):
        """Take ``{(kind, pid): seconds}``: a process present at the first reading counts
        from there, one that appears later from its start."""
        for key, seconds in readings.items():
            if seconds is None:
                continue
            self.base.setdefault(key, seconds if not self.started else 0.0)
            self.last[key] = seconds
        self.started = True

    def used(self):
        """CPU seconds used since the first reading, by kind."""
        used = {}
        for (kind, pid), seconds in self.last.items():
            used[kind] = used.get(kind, 0.0) + seconds - self.base[(kind, pid)]
        return used


class Watch(threading.Thread):
    """Samples once a second until stopped; ``latest`` is the newest sample."""

    def __init__(self, b, roots, receiver_url, gate):
        """``roots``: {name: pid} of the processes to follow (``api``, ``worker-1``, ...), each
        with its children; ``gate``: the clients' ``Gate``."""
        super().__init__(name="soak-watch", daemon=True)
        self.b, self.roots, self.receiver_url, self.gate = b, roots, receiver_url, gate
        self.stopping = threading.Event()
        self.cpu = CpuMeter()
        self.samples = []
        self.latest = None
        self.started = time.time()
        self.error = None

    def run(self):
        """Sample every INTERVAL until stopped (an error ends it and is kept)."""
        try:
            while not self.stopping.is_set():
                began = time.monotonic()
                self.latest = self.sample()
                self.samples.append(self.latest)
                self.stopping.wait(max(0.0, INTERVAL - (time.monotonic() - began)))
        except Exception as err:  # the scenario sees it and stops
            self.error = err

    def stop(self):
        """Stop sampling after the sample in progress."""
        self.stopping.set()
        self.join(timeout=30)

    def sample(self):
        """One sample: progress, then CPU and memory of every process."""
        submitted = self.gate.reading()
        counts = {status: int(n) for status, n in self.b.sql(COUNTS.status_counts) if n}
        self.gate.observe(submitted, sum(counts.get(status, 0) for status in WAITING))
        parent_of = procfs.parents()
        postgres = self.b.sql(POSTGRES)
        readings, rss = {}, {}
        for name, pid in self.roots.items():
            readings[(name.split("-")[0], pid)] = procfs.tree_cpu_seconds(pid, parent_of)
            rss[name] = procfs.tree_rss_mb(pid, parent_of)
        for pid, backend_type in postgres:
            kind = "postgres" if backend_type not in SERVER_PROCESSES else "postgres-server"
            readings[(kind, pid)] = procfs.cpu_seconds(pid, waited=False)
        self.cpu.read(readings)
        clients = [pid for pid, kind in postgres if kind == "client backend"]
        rss["postgres"] = sum(procfs.memory_mb(pid, "RssAnon") or 0.0 for pid in clients)
        rss["postgres per backend"] = rss["postgres"] / len(clients) if clients else None
        return {
            "t": round(time.time() - self.started, 2),
            "at": time.time(),
            "statuses": counts,
            "final": sum(counts.get(status, 0) for status in FINAL),
            "pending_webhooks": self.b.sql(PENDING)[0][0],
            "received": self._get(self.receiver_url + "/count").get("received"),
            "sandbox": self._get(f"{self.b.sandbox_url}/_sandbox/tally"),
            "cpu": self.cpu.used(),
            "rss_mb": rss,
            "backends": len(clients),
        }

    @staticmethod
    def _get(url):
        """A JSON answer, or {} if there is none this time."""
        try:
            status, body = http_json("GET", url, timeout=10)
        except OSError:
            return {}
        return body if status == 200 and isinstance(body, dict) else {}
