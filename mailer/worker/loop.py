"""The worker loop: claim due mail in batches, send it concurrently, record what happened.

Read ``Worker.run`` top to bottom: while not stopping, write its heartbeat row every few seconds
(``heartbeats``), reap expired leases, refresh its copy of the guard's steering every few
seconds (``steering``: which providers go last for which recipient domains), claim what the
send threads have room for (leaving out the addresses on the suppression list, looked up
once per batch) and put it on ``todo``, take
the sends that finished (each send thread puts its result on ``done``, so the loop never polls
the sends in flight), and hand them to the recorder thread, which records them in one
transaction while the loop goes on claiming: a commit never holds up the next claim, so the
send threads always have mail waiting. The loop wakes (``ready``) once enough sends finished
to make a claim worth it, or every send in flight did, or the recorder is free: not once per
mail.
A test key's mail (``email.test``) goes to the simulator (``simulator``) instead of any
provider, without route, cap or breaker; what it reports is recorded as a provider's events
are. Threads of their own post the client webhooks, to ``WEBHOOK_URL`` and the tenants'
endpoints (``mailer.events.sender``);
with ``WORKER_METRICS_PORT`` set, another serves its Prometheus metrics (``worker_metrics``).
On SIGTERM or SIGINT it stops claiming, lets the sends in flight finish, records
them, hands back mail it had claimed but not started, and returns.

The ``WORKER_CONCURRENCY`` send threads live as long as the loop and take mail from ``todo``
one at a time (a plain queue: no Future per mail). Each one also decides what comes of its mail,
so the loop's own work per mail is only to claim it, hand it over and pass its decision to the
recorder, which logs each mail's line once its transaction committed (one thread writing the
lines: from the send threads, each line made them wait for the log handler's lock in turn).
A send never raises into its thread: a bug of ours while sending is logged and the mail
retried (``crashed``), and the thread goes on.

Duplicates: a mail is sent at most once per lease. A second send happens only if this process
dies after a provider accepted a mail and before ``finish`` committed it (a window of about
two commits: the recorder's transaction under way, then the one that records the mail), or if
a provider took a mail but its answer was lost (a timeout); both are recorded in the mail's
attempt log.
"""

import logging
import os
import queue
import signal
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from sqlalchemy.exc import SQLAlchemyError

from mailer.database import describe
from mailer.events import outbox
from mailer.events.sender import WebhookSender
from mailer.queue import counts, events, heartbeats, lease, suppressions
from mailer.queue.notify import QueueListener, listen_engine
from mailer.telemetry import logs
from mailer.telemetry.worker import WorkerMetrics
from mailer.validation.addresses import bare_address
from mailer.worker import simulator
from mailer.worker.circuit import PROBE, USE, Breakers, is_meltdown
from mailer.worker.delivery import (
    DEFERRED,
    all_suppressed,
    attempt_rows,
    crashed,
    decide,
    deliver,
    message_from_row,
    nobody_left,
    poisoned,
    refusal_events,
    simulate,
    without_suppressed,
)
from mailer.worker.dispatch import Dispatcher
from mailer.worker.retry import RetryPolicy
from mailer.worker.sessions import Sessions
from mailer.worker.steering import Steering
from models import FAILED, QUEUED, SENT

log = logging.getLogger("mail_service.worker")

DB_RETRY_MAX = 10.0  # seconds: longest pause between attempts to reach the database


def worker_name():
    """A name unique to this process: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def lease_seconds(config, provider_count):
    """How long a claim lasts: ``LEASE_SECONDS``, or long enough for every provider to time out.

    A mail may wait for a free send thread and then try each provider, each call bounded by the
    timeout for connecting and again for reading; the margin covers a slow commit.
    """
    if config["LEASE_SECONDS"] > 0:
        return config["LEASE_SECONDS"]
    return 2 * provider_count * 2 * config["PROVIDER_TIMEOUT"] + 30


class Worker:
    """Sends queued mail until stopped (or, in burst mode, until nothing is due)."""

    def __init__(self, engine, config, providers, name=None):
        self.engine = engine
        self.providers = providers
        self.name = name or worker_name()
        self.concurrency = max(1, config["WORKER_CONCURRENCY"])
        self.batch_size = max(1, config["WORKER_BATCH_SIZE"])
        self.poll_interval = config["POLL_INTERVAL"]
        self.lease = lease_seconds(config, len(providers))
        self.reap_interval = min(self.lease / 4, 30.0)
        self.policy = RetryPolicy.from_config(config)
        self.breakers = Breakers(
            engine,
            [provider.name for provider in providers],
            threshold=config["CIRCUIT_FAILURE_THRESHOLD"],
            cooldown=config["CIRCUIT_COOLDOWN"],
            cooldown_cap=config["CIRCUIT_COOLDOWN_CAP"],
            probe_window=2 * 2 * config["PROVIDER_TIMEOUT"] + 5,
        )
        self.steering = Steering(engine, config, [provider.name for provider in providers])
        self.dispatcher = Dispatcher(
            engine, providers, self.breakers, config, demoted=self.steering.demoted
        )
        self.probing = False
        self.simulator = simulator.Simulator()  # test mail's, instead of any provider
        self.sessions = Sessions()
        self.webhooks = outbox.subscription(config)
        self.suppression_days = config["SUPPRESSION_DAYS"]
        self.sender = WebhookSender(engine, config)
        self.stopping = threading.Event()
        self.wake = threading.Event()  # set by new mail (LISTEN/NOTIFY) and by stop()
        self.listen_engine = listen_engine(engine, config)  # LISTEN_DATABASE_URL, or engine
        self.inflight = {}  # mail id -> claimed row, handed to the send threads, not collected
        self.todo = queue.SimpleQueue()  # (row, provider order) of inflight, not started yet
        self.done = queue.SimpleQueue()  # (row, decision, attempt rows) of finished inflight
        self.ready = threading.Event()  # set when the loop has something worth waking for
        self.claim_at = max(1, self.concurrency // 4)  # free places worth a claim
        self.finished = []  # (Decision, attempt rows, Lane) waiting to be recorded
        self.recording = None  # (Future, batch): the recorder thread's transaction under way
        self.last_reap = 0.0
        self.capped_until = 0.0  # (monotonic) when the mail the caps held back is all due
        self.meltdown = False
        self.sent_count = 0
        self.failed_count = 0
        self.last_beat = 0.0
        self.metrics = WorkerMetrics(self, config)  # served on WORKER_METRICS_PORT, if set
        self._idle = False
        self._db_failures = 0

    # The loop -----------------------------------------------------------------------------

    def run(self, burst=False):
        """Send until stopped; in ``burst`` mode return once nothing more is due."""
        log.info(
            "worker %s starting: %d concurrent sends, lease %.0fs, providers %s",
            self.name,
            self.concurrency,
            self.lease,
            ",".join(provider.name for provider in self.providers),
        )
        if self.dispatcher.routes:
            log.info("routes: %s", "; ".join(map(str, self.dispatcher.routes.lanes())))
        self._with_db(self.breakers.ensure_rows)
        self._with_db(self.dispatcher.ensure_rows)
        self._with_db(self.steering.refresh)
        if not burst and QueueListener.supported(self.listen_engine):
            QueueListener(self.listen_engine, self.wake, self.stopping).start()
        if self.sender is not None:  # client webhooks, on threads of their own
            self.sender.start()
        self.metrics.serve()
        senders = self._start_send_threads()
        try:
            with ThreadPoolExecutor(1, thread_name_prefix="record") as recorder:
                while not self.stopping.is_set():
                    if not self._with_db(self.step, recorder, burst):
                        continue
                    if burst and self._idle and not self._unrecorded():
                        break
                self._drain()
        finally:
            self._stop_send_threads(senders)
            for provider in self.providers:
                provider.close()
        if self.sender is not None:
            self.sender.stop()
        self._with_db(self._forget)
        self.metrics.stop()
        log.info("worker %s stopped after sending %d mails", self.name, self.sent_count)

    def step(self, recorder, burst):
        """One turn of the loop: say it is alive, reap, look at the steering, claim, wait for
        sends, record them."""
        self._beat_if_due()
        self._reap_if_due()
        self.steering.refresh_if_due()
        claimed_at = time.monotonic()  # a claim from here on sees mail due by then
        claimed = self._fill()
        if not claimed and not self.inflight and claimed_at < self.capped_until:
            # Mail the caps held back waits for a token: wait until it falls due, not idle.
            self._idle_wait()
            return True
        self._idle = not claimed and not self.inflight
        if self._idle and not self._unrecorded():
            if not burst:
                self._idle_wait()
            return True
        self._collect()
        self._record(recorder)
        return True

    def stop(self, *_signal_args):
        """Ask the loop to stop after the sends in flight (only sets flags and Events; called
        by the signals thread, see ``install_signal_handlers``)."""
        self.stopping.set()
        self.wake.set()
        self.ready.set()

    def install_signal_handlers(self):
        """SIGTERM, SIGINT and SIGHUP (a closed terminal) stop the worker gracefully.

        The handlers do nothing themselves: Python writes each signal's number to the pipe of
        ``signal.set_wakeup_fd`` as it arrives, and a thread of its own reads it and calls
        ``stop``. ``stop`` sets Events, which a handler must not do: it runs on the loop's
        thread, and would deadlock if the signal landed while that thread held one of those
        Events' lock inside its ``wait``.
        """
        read, write = os.pipe()
        os.set_blocking(write, False)
        signal.set_wakeup_fd(write)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, lambda *_: None)
        watcher = threading.Thread(
            target=self._stop_on_signal, args=(read,), name="signals", daemon=True
        )
        watcher.start()

    def _stop_on_signal(self, read):
        """The signals thread: ``stop`` once a signal came through the wakeup pipe."""
        while os.read(read, 512):
            self.stop()

    # Named steps ---------------------------------------------------------------------------

    def _fill(self):
        """Claim as many due mails as the send threads have room for, and start them."""
        # Keep a batch ready behind the threads: 2 x WORKER_CONCURRENCY mails not yet sent (a
        # finished send not collected yet leaves room already; the lease allows for one batch
        # waiting). Claim once a quarter of it is free: the batch still waiting must last
        # while the claim's transaction runs, or send threads sit idle.
        room = 2 * self.concurrency - (len(self.inflight) - self.done.qsize())
        if room < self.claim_at and self.inflight:
            return 0
        limit = min(room, self.batch_size, self._provider_room())
        if limit <= 0:
            return 0
        with self.engine.begin() as conn:
            rows = lease.claim(conn, self.name, limit, self.lease)
            # One look-up of the whole batch's recipients on its tenants' suppression lists.
            blocked = suppressions.active(
                conn,
                {
                    bare_address(entry)
                    for row in rows
                    for column in ("to_address", "cc", "bcc")
                    for entry in row[column] or ()
                },
                {tenant_of(row) for row in rows},
            )
        self.metrics.observe_claim(len(rows))
        sendable, simulated = [], []
        for row in rows:
            if blocked:
                row = without_suppressed(row, suppressions.for_tenant(blocked, tenant_of(row)))
            if nobody_left(row):  # finished at once: no provider is called
                self.finished.append((all_suppressed(row), [], None))
            else:
                (simulated if row.get("test") else sendable).append(row)
        jobs, held = self.dispatcher.plan(sendable, self.probing) if sendable else ([], [])
        jobs = [*jobs, *((row, None) for row in simulated)]  # test mail: no route, cap, breaker
        self._hold(held)
        for row, order in jobs:
            self.inflight[row["id"]] = row
            self.todo.put((row, order))
        return len(rows) - sum(len(ids) for ids, _ in held)

    def _hold(self, held):
        """Hand the claimed mail that must wait (``Dispatcher.plan``'s ``held``) back to the
        queue, each due again when its lane may take it; no attempt is spent."""
        if not held:
            return
        with self.engine.begin() as conn:
            for ids, seconds in held:
                lease.hold(conn, self.name, ids, seconds or 0.0)
        if self.dispatcher.capped_for is not None:
            self.capped_until = max(
                self.capped_until, time.monotonic() + self.dispatcher.capped_for
            )

    def _provider_room(self):
        """How many mails the providers can take now: none in a meltdown, one for a probe."""
        self.breakers.refresh()
        modes = {self.breakers.mode(provider.name) for provider in self.providers}
        self._set_meltdown(is_meltdown(modes))
        self.probing = USE not in modes and PROBE in modes
        if USE in modes:
            return self.batch_size
        if self.probing and not self.inflight:
            return 1
        return 0

    def _start_send_threads(self):
        """Start the ``WORKER_CONCURRENCY`` send threads; they wait for mail on ``todo``."""
        threads = [
            threading.Thread(target=self._send_loop, name=f"send_{number}")
            for number in range(self.concurrency)
        ]
        for thread in threads:
            thread.start()
        return threads

    def _stop_send_threads(self, threads):
        """Let each send thread finish what ``todo`` still holds, then end; wait for them."""
        for _ in threads:
            self.todo.put(None)
        for thread in threads:
            thread.join()

    def _send_loop(self):
        """A send thread: deliver each mail taken from ``todo`` and put what comes of it on
        ``done``, until a None says stop."""
        while (job := self.todo.get()) is not None:
            row, order = job
            try:
                decision, attempts = self._conclude(row, self._send(row, order))
            except Exception:  # a bug of ours in deciding: the lease returns the mail
                log.exception(
                    "cannot record mail %s; its lease will return it to the queue", row["id"]
                )
                decision, attempts = None, []
            self.done.put((row, decision, attempts))
            self._wake_if_worth_it()

    def _wake_if_worth_it(self):
        """Wake the loop if some send finished and the recorder is free (so the duplicate
        window does not grow), once enough finished to make a claim worth it, or once every
        send in flight did (``inflight`` counts those not collected yet)."""
        finished = self.done.qsize()
        if finished and (
            self.recording is None or finished >= self.claim_at or finished >= len(self.inflight)
        ):
            self.ready.set()

    def _conclude(self, row, outcome):
        """The mail's next state after ``outcome`` and its attempt rows."""
        # Only a deferred mail waits for a provider's return: the breakers are asked only then.
        wait_for = self.breakers.seconds_to_next_change() if outcome.kind == DEFERRED else None
        decision = decide(row, outcome, self.policy, wait_for)
        if decision.test:  # what the simulator reports of it, recorded with the send
            addresses = [*row["to_address"], *(row["cc"] or ()), *(row["bcc"] or ())]
            decision = replace(decision, reports=simulator.events_of(decision, addresses))
        return decision, attempt_rows(decision, outcome, self.name)

    def _send(self, row, order):
        """Deliver one claimed mail, its id on every line logged meanwhile; never raises."""
        try:
            with logs.context(mail_id=str(row["id"]), worker=self.name):
                return self._deliver(row, order)
        except Exception as err:  # a bug of ours: retried, and must not stop the worker
            log.exception("unexpected error delivering mail %s; it will be retried", row["id"])
            return crashed(err)

    def _deliver(self, row, order):
        """Deliver one claimed mail through ``order``: its Outcome (a malformed row fails)."""
        try:
            message = message_from_row(row)
        except (ValueError, TypeError, AttributeError) as err:
            return poisoned(err)
        if row.get("test"):  # a test key's mail never reaches a provider
            return simulate(message, self.simulator, self.breakers.clock)
        return deliver(message, order, self.breakers, self.sessions, self.dispatcher.admit)

    def _collect(self):
        """Wait up to ``poll_interval`` for ``ready`` (see ``_wake_if_worth_it``); move every
        send finished by then to ``finished``."""
        if not self.inflight:
            return
        self.ready.wait(self.poll_interval)
        self.ready.clear()  # before taking: a send finishing from now on sets it again
        results = []
        while not self.done.empty():  # only this thread takes from it
            results.append(self.done.get())
        for row, decision, attempts in results:
            del self.inflight[row["id"]]
            if decision is None:  # see _send_loop
                continue
            self.finished.append((decision, attempts, row.get("route")))
            if not decision.test:  # test mail counts nowhere live
                self.sent_count += decision.status == SENT
                self.failed_count += decision.status == FAILED
        self._wake_if_worth_it()  # a send that finished meanwhile saw the old ``inflight``

    def _record(self, recorder):
        """Hand the finished sends to the recorder thread, one transaction at a time.

        While it records, this thread goes on claiming and collecting; what finishes meanwhile
        goes in its next transaction. With no send in flight there is nothing else to do, so
        this waits for it.
        """
        if self.recording is not None:
            if self.inflight and not self.recording[0].done():
                return
            self._await_recording()
        if self.finished:
            batch, self.finished = self.finished, []
            self.recording = (recorder.submit(self._write, batch), batch)
            self.recording[0].add_done_callback(lambda _: self.ready.set())  # loop: record more

    def _await_recording(self):
        """Wait for the recorder's transaction; if it failed, its batch goes back to
        ``finished`` (kept in memory until it commits) and its database error is raised."""
        if self.recording is None:
            return
        future, batch = self.recording
        self.recording = None
        try:
            future.result()
        except SQLAlchemyError:
            self.finished = batch + self.finished
            raise

    def _unrecorded(self):
        """Whether some finished send is not recorded yet."""
        return bool(self.finished) or self.recording is not None

    def _flush(self):
        """Record every finished send now, on this thread (at a stop)."""
        self._await_recording()
        self._write(self.finished)
        self.finished = []

    def _write(self, batch):
        """Record ``batch`` ((Decision, attempt rows, Lane) of finished sends) in one
        transaction, then log each one's line (what it says is committed by then)."""
        if not batch:
            return
        decisions = [decision for decision, _, _ in batch]
        attempts = [row for _, rows, _ in batch for row in rows]
        # Recipients a provider refused while it took the mail (bounced), and the simulator's
        # reports of test mail: recorded as a provider's events are.
        reported = refusal_events(decisions) + [e for d in decisions for e in d.reports]
        with self.engine.begin() as conn:
            lease.finish(conn, self.name, decisions, attempts, self.webhooks)
            if reported:
                events.record_events(conn, reported, self.suppression_days, self.webhooks)
        for decision, _, lane in batch:
            log_decision(decision, lane)
        # Counted once recorded; test mail counts nowhere live.
        self.metrics.observe((d.status, rows) for d, rows, _ in batch if not d.test)

    def _reap_if_due(self):
        """Every ``reap_interval``, return mail with expired leases to the queue."""
        if time.monotonic() - self.last_reap < self.reap_interval:
            return
        with self.engine.begin() as conn:
            reaped = lease.reap(conn, self.policy.max_attempts, self.name)
        self.last_reap = time.monotonic()
        for mail_id, status in reaped:
            log.warning(
                "mail %s: lease expired (its worker stopped while sending), now %s",
                mail_id,
                status,
                extra={"mail_id": str(mail_id)},
            )

    def _beat_if_due(self):
        """Every ``heartbeats.INTERVAL``: the heartbeat row, and fold the status-count ledger.

        The fold keeps the operators' counts cheap to read; with several workers the one that
        gets there first does it and the others skip it.
        """
        if time.monotonic() - self.last_beat < heartbeats.INTERVAL:
            return
        with self.engine.begin() as conn:  # one transaction: one commit every INTERVAL
            heartbeats.beat(conn, self.name, len(self.inflight), self.sent_count, self.failed_count)
            counts.fold_status_counts(conn)
            heartbeats.forget_stale(conn, heartbeats.STALE_AFTER)
        self.last_beat = time.monotonic()

    def _forget(self):
        """On a clean stop: this worker's heartbeat row goes."""
        with self.engine.begin() as conn:
            heartbeats.forget(conn, self.name)

    def _idle_wait(self):
        """Nothing to do: wait for new mail, the next due mail, a provider's return, or stop.

        Scheduled mail and mail in backoff wake the worker when they fall due, without polling
        for them: the wait ends at the earliest ``next_attempt_at`` (or the poll interval).
        """
        if self.meltdown:
            seconds = self.breakers.seconds_to_next_change()
        else:
            with self.engine.connect() as conn:
                seconds = lease.seconds_until_due(conn)
        timeout = self.poll_interval
        if seconds is not None:
            timeout = min(max(seconds, 0.05), self.poll_interval)
        self.wake.wait(timeout)
        self.wake.clear()

    def _set_meltdown(self, melted):
        """Log once when every provider becomes unusable, and once when one returns."""
        if melted and not self.meltdown:
            log.error(
                "meltdown: every provider is open or rate-limited; mail stays queued "
                "until a probe succeeds"
            )
        elif self.meltdown and not melted:
            log.warning("meltdown over: a provider is usable again")
        self.meltdown = melted

    def _drain(self):
        """On stop: hand back unstarted mail, finish the sends in flight, record everything."""
        ids = [row["id"] for row, _ in self._unstarted()]
        for mail_id in ids:
            del self.inflight[mail_id]
        if self.inflight:
            log.info("finishing %d sends in flight", len(self.inflight))
        while self.inflight:
            self._collect()
        for delay in _backoff_delays():
            try:
                self._flush()
                with self.engine.begin() as conn:
                    lease.release(conn, self.name, ids)
                return
            except SQLAlchemyError as err:
                log.error("cannot record results (%s); retrying in %.1fs", describe(err), delay)
                time.sleep(delay)
        log.error("gave up recording results: the leases will return those mails to the queue")

    def _unstarted(self):
        """Take every (row, order) that no send thread has started yet off ``todo``."""
        jobs = []
        while True:
            try:
                jobs.append(self.todo.get_nowait())
            except queue.Empty:
                return jobs

    def _with_db(self, call, *args):
        """Run ``call``; on a database error, log it, wait with backoff and return False."""
        try:
            call(*args)
            self._db_failures = 0
            return True
        except SQLAlchemyError as err:
            self._db_failures += 1
            delay = min(DB_RETRY_MAX, 0.2 * 2**self._db_failures)
            log.error("database unavailable (%s): retrying in %.1fs", describe(err), delay)
            self.stopping.wait(delay)
            return False


def tenant_of(row):
    """Whose suppression list holds a claimed mail's recipients back: its tenant's, or for test
    mail the tenant's test view (``suppressions.view``)."""
    return suppressions.view(row.get("tenant", suppressions.DEFAULT_TENANT), row.get("test"))


def log_decision(decision, lane=None):
    """One line per delivery, with the mail's id and its route (``lane``, a ``routes.Lane``):
    sent, failed for good, or queued again."""
    mail_id = str(decision.id)
    extra = {"mail_id": mail_id, "provider": decision.provider}
    if decision.status == SENT:
        log.info(
            "mail %s sent via %s (message id %s), route %s",
            mail_id,
            decision.provider,
            decision.message_id,
            lane,
            extra=extra,
        )
    elif decision.status == FAILED:
        log.info(
            "mail %s failed for good: %s, route %s",
            mail_id,
            decision.last_error,
            lane,
            extra=extra,
        )
    elif decision.status == QUEUED:
        log.info(
            "mail %s not sent (%s): due again in %.1fs, route %s",
            mail_id,
            decision.last_error,
            decision.retry_in,
            lane,
            extra=extra,
        )


def _backoff_delays(tries=6):
    """Delays between tries to record results at shutdown: 0.5 s doubling, about a minute."""
    return [0.5 * 2**attempt for attempt in range(tries)]
