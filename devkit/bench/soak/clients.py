"""The soak's clients: the mails go in by the three ways a user has, interleaved over the run.

90% through ``POST /mail/batch``, 1,000 a request, every other request templated with personal
variables; 9% through ``POST /mail``; 1% through the SMTP door (STARTTLS and AUTH, 100 mails a
connection). Every HTTP request carries an ``Idempotency-Key``, so that one whose answer was
lost is sent again without storing its mails twice. Each mail goes to an address of its own,
``soak-<n>@example.com``, whose fate the sandbox draws from the address (``outcome_of``).

The clients are threads of the bench process, each with its own connections. They hold back
while the queue has ``backlog`` mails not yet taken by a worker (``Gate``), so the run sends at
the rate the service sustains instead of piling the mails up at the start; given a ``rate``,
they also submit no faster than that many mails a second.
"""

import http.client
import json
import smtplib
import ssl
import threading
import time
import uuid
from dataclasses import dataclass
from email.message import EmailMessage

from devkit.bench.harness import BODY_TEXT, HOST, SENDER

SHARES = (("batch", 0.90), ("single", 0.09))  # the rest goes through the SMTP door
PER_SMTP_CONNECTION = 100
TEMPLATE = {
    "name": "soak-receipt",
    "subject": "Soak mail {{ index }}",
    "text": "Dear {{ first_name }}, " + BODY_TEXT,
}
RETRIES = 5  # tries of a request that got no answer or a 5xx
TIMEOUT = 120  # seconds per request


@dataclass(frozen=True)
class Unit:
    """Mails ``first`` .. ``first + count - 1``, submitted together one ``way``."""

    way: str  # batch, single or smtp
    first: int
    count: int
    templated: bool = False


def address(index):
    """The address of mail number ``index``."""
    return f"soak-{index}@example.com"


def plan(total, batch_size):
    """The units of ``total`` mails in the order they go in: each way's spread evenly over the
    run, by where its middle lies in that way's share."""
    counts = {way: round(total * share) for way, share in SHARES}
    counts["smtp"] = total - sum(counts.values())
    placed, first = [], 0
    for way, count in counts.items():
        size = batch_size if way == "batch" else 1
        for number, start in enumerate(range(0, count, size)):
            templated = way == "batch" and number % 2 == 1
            unit = Unit(way, first + start, min(size, count - start), templated)
            placed.append(((start + unit.count / 2) / count, unit))
        first += count
    return [unit for _, unit in sorted(placed, key=lambda pair: pair[0])]


class Gate:
    """Holds the clients back while ``limit`` mails or more wait for a worker, and (with a
    ``rate``, mails a second) while they are ahead of that rate.

    What waits is known from the last reading of the queue (``observe``) plus every mail
    submitted since that reading began: never less than the truth.
    """

    def __init__(self, limit, stopping, rate=0):
        self.limit = limit
        self.stopping = stopping
        self.rate = rate
        self.opened = None  # time.monotonic() of the first mail let through
        self.changed = threading.Condition()
        self.submitted = 0  # mails let through so far (their requests may be in flight)
        self.waiting = 0  # of those, how many waited for a worker at the last reading
        self.read_at = 0  # ``submitted`` when that reading began

    def reading(self):
        """Call before reading the queue; pass the result to ``observe`` with the reading."""
        with self.changed:
            return self.submitted

    def observe(self, submitted_before, waiting):
        """The queue had ``waiting`` mails not yet taken, read after ``reading()`` said
        ``submitted_before``."""
        with self.changed:
            self.read_at, self.waiting = submitted_before, waiting
            self.changed.notify_all()

    def enter(self, count):
        """Wait until ``count`` more mails fit (or nothing waits at all) and the rate allows
        them; False if stopping."""
        with self.changed:
            while True:
                if self.stopping.is_set():
                    return False
                waiting = self.waiting + self.submitted - self.read_at
                ahead = self._ahead()
                if ahead <= 0 and (waiting == 0 or waiting + count <= self.limit):
                    self.opened = self.opened or time.monotonic()
                    self.submitted += count
                    return True
                self.changed.wait(min(0.5, ahead) if ahead > 0 else 0.5)

    def _ahead(self):
        """Seconds the submitted mails are ahead of ``rate`` (0 without a rate)."""
        if not self.rate or self.opened is None:
            return 0.0
        return self.opened + self.submitted / self.rate - time.monotonic()


class Clients:
    """Threads that submit the planned units through the API and the SMTP door."""

    def __init__(self, units, gate, api_port, smtp, api_key, threads):
        """``smtp``: the door's (port, CA file)."""
        self.units = iter(units)
        self.lock = threading.Lock()
        self.gate = gate
        self.api_port, self.smtp, self.api_key = api_port, smtp, api_key
        self.submitted = []  # (mail id, way, index) of every mail acknowledged
        self.errors = []
        self.first_at = None  # unix time the first request went
        self.threads = [
            threading.Thread(target=self._client, name=f"soak-client-{n}", daemon=True)
            for n in range(threads)
        ]

    def start(self):
        """Start submitting."""
        for thread in self.threads:
            thread.start()

    def done(self):
        """Whether every unit is submitted (or the clients gave up)."""
        return not any(thread.is_alive() for thread in self.threads)

    def _next(self):
        """The next unit, or None when none is left."""
        with self.lock:
            unit = next(self.units, None)
            if unit is not None and self.first_at is None:
                self.first_at = time.time()
            return unit

    def _client(self):
        """One client: submit units until none is left; its connections are its own."""
        connections = {"http": None, "smtp": None, "smtp_sent": 0}
        try:
            while (unit := self._next()) is not None and self.gate.enter(unit.count):
                try:
                    ids = SUBMIT[unit.way](self, connections, unit)
                except Exception as err:  # counted; the run's checks then fail
                    with self.lock:
                        self.errors.append(f"{unit.way} mails {unit.first}+{unit.count}: {err!r}")
                    continue
                with self.lock:
                    self.submitted += [
                        (mail_id, unit.way, unit.first + n) for n, mail_id in enumerate(ids)
                    ]
        finally:
            close(connections)

    # The HTTP ways -----------------------------------------------------------------------------

    def _post(self, connections, path, body):
        """POST ``body`` (JSON) with a fresh Idempotency-Key, again with the same key after no
        answer or a 5xx; the JSON answer of the 202."""
        headers = {
            "Authorization": f"Bearer {self.api_key}",
            "Content-Type": "application/json",
            "Idempotency-Key": uuid.uuid4().hex,
        }
        raw = json.dumps(body).encode()
        for attempt in range(RETRIES):
            if connections["http"] is None:
                connections["http"] = http.client.HTTPConnection(
                    HOST, self.api_port, timeout=TIMEOUT
                )
            try:
                connections["http"].request("POST", path, raw, headers)
                response = connections["http"].getresponse()
                status, answer = response.status, response.read()
            except (OSError, http.client.HTTPException):
                connections["http"].close()
                connections["http"], status, answer = None, None, b""
            if status == 202:
                return json.loads(answer)
            if status is not None and status < 500:
                raise RuntimeError(f"{path} answered {status}: {answer[:300]!r}")
            time.sleep(0.5 * 2**attempt)
        raise RuntimeError(f"{path}: no 202 in {RETRIES} tries (last: {status})")

    def _batch(self, connections, unit):
        """One POST /mail/batch; the ids in the order of the mails."""
        indexes = range(unit.first, unit.first + unit.count)
        if unit.templated:
            body = {
                "defaults": {"from": SENDER, "template": TEMPLATE["name"]},
                "mails": [
                    {"to": address(n), "variables": {"first_name": f"Person {n}", "index": n}}
                    for n in indexes
                ],
            }
        else:
            body = [
                {"from": SENDER, "to": address(n), "subject": f"Soak mail {n}", "text": BODY_TEXT}
                for n in indexes
            ]
        ids = self._post(connections, "/mail/batch", body)["ids"]
        if len(ids) != unit.count:
            raise RuntimeError(f"/mail/batch answered {len(ids)} ids for {unit.count} mails")
        return ids

    def _single(self, connections, unit):
        """One POST /mail; its id."""
        mail = {
            "from": SENDER,
            "to": address(unit.first),
            "subject": f"Soak mail {unit.first}",
            "text": BODY_TEXT,
        }
        return [self._post(connections, "/mail", mail)["id"]]

    # The SMTP door ---------------------------------------------------------------------------

    def _smtp(self, connections, unit):
        """One mail through the SMTP door; its id, from the door's ``250 ... queued as <id>``."""
        if connections["smtp"] is None or connections["smtp_sent"] >= PER_SMTP_CONNECTION:
            close_smtp(connections)
            port, ca_file = self.smtp
            door = smtplib.SMTP(HOST, port, timeout=TIMEOUT)
            door.starttls(context=ssl.create_default_context(cafile=ca_file))
            door.login("soak", self.api_key)
            connections["smtp"], connections["smtp_sent"] = door, 0
        door = connections["smtp"]
        message = EmailMessage()
        message["From"], message["To"] = SENDER, address(unit.first)
        message["Subject"] = f"Soak mail {unit.first}"
        message.set_content(BODY_TEXT)
        try:
            door.mail(SENDER)
            door.rcpt(address(unit.first))
            code, reply = door.data(message.as_bytes())
        except smtplib.SMTPException:
            close_smtp(connections)
            raise
        connections["smtp_sent"] += 1
        if code != 250:
            raise RuntimeError(f"the SMTP door answered {code} {reply!r}")
        return [reply.decode().rsplit(" ", 1)[-1]]


SUBMIT = {"batch": Clients._batch, "single": Clients._single, "smtp": Clients._smtp}


def close_smtp(connections):
    """Say QUIT on the SMTP connection, if any (ignoring a door that hung up)."""
    door, connections["smtp"] = connections["smtp"], None
    if door is not None:
        try:
            door.quit()
        except (OSError, smtplib.SMTPException):
            door.close()


def close(connections):
    """Close a client's connections."""
    close_smtp(connections)
    if connections["http"] is not None:
        connections["http"].close()
