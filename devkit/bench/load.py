"""The load generators, each run as a process of its own (``python -m devkit.bench _load`` and
``_bare-send``): keep-alive POSTs to the API, and the bare sender that is dispatch's baseline."""

import itertools
import json
import os
import socket
import threading
import time
import uuid
from collections import Counter

from devkit.bench.harness import BODY_TEXT, HOST, SENDER


class RawClient:
    """A keep-alive HTTP/1.1 client on one socket: cheap enough not to be the bottleneck."""

    def __init__(self, host, port):
        """A client of (host, port), not connected yet."""
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
    """The bytes of one HTTP/1.1 keep-alive request (a GET without a body has no body headers)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", *headers]
    if body or method != "GET":
        lines += [f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Requests:
    """The requests one load generator sends: the same bytes each time, or, with
    ``unique_key``, each with an ``Idempotency-Key`` of its own (so none is a replay)."""

    def __init__(self, spec, headers):
        """The requests that ``spec`` describes, with ``headers`` (the API key)."""
        with open(spec["body_file"], "rb") as handle:
            body = handle.read()
        method = spec.get("method", "POST")
        self.paths = spec.get("paths") or [spec["path"]]
        self.raws = [
            raw_request(method, path, HOST, spec["port"], body, spec["content_type"], headers)
            for path in self.paths
        ]
        self.unique_key = spec.get("unique_key", False)
        self.prefix = uuid.uuid4().hex  # keys unique across processes and rounds
        self.counter = itertools.count()

    def next(self):
        """The bytes of the next request (paths taken in turn)."""
        number = next(self.counter)
        raw = self.raws[number % len(self.raws)]
        if not self.unique_key:
            return raw
        head, _, rest = raw.partition(b"\r\n")
        return head + f"\r\nIdempotency-Key: {self.prefix}-{number}".encode() + b"\r\n" + rest


# ---------------------------------------------------------------------------------------------
# The processes: the load generator and the bare sender (`python -m devkit.bench _load ...`)
# ---------------------------------------------------------------------------------------------


def load_main(spec_path):
    """Load generator process: ``connections`` keep-alive clients for ``duration`` seconds."""
    with open(spec_path, encoding="utf-8") as handle:
        spec = json.load(handle)
    headers = (
        [f"Authorization: Bearer {os.environ['BENCH_API_KEY']}"]
        if os.environ.get("BENCH_API_KEY")
        else []
    )
    raw = Requests(spec, headers)
    start_at, end_at = spec["start_at"], spec["start_at"] + spec["duration"]
    outputs = []
    threads = [
        threading.Thread(target=load_connection, args=(spec, raw, start_at, end_at, outputs))
        for _ in range(spec["connections"])
    ]
    cpu_before = os.times()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    cpu_after = os.times()
    merged = {
        "latencies_ms": [],
        "ids": [],
        "statuses": Counter(),
        "errors": [],
        "items_in_window": 0,
        "requests_in_window": 0,
        "cpu_seconds": (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system),
    }
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
    """One client connection of the load generator: send until ``end_at``, record everything.

    ``raw`` is the process's ``Requests``; its counter is shared by the threads (``next`` on an
    ``itertools.count`` is atomic under the GIL)."""
    out = {
        "latencies_ms": [],
        "ids": [],
        "statuses": Counter(),
        "errors": [],
        "items_in_window": 0,
        "requests_in_window": 0,
    }
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
            status, body = client.request(raw.next())
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
    from mailer.worker.sessions import Sessions
    from providers import Message, build_providers

    config = load_config(None)
    provider = build_providers(config)[0]
    sessions = Sessions()
    counter = itertools.count()
    failures = []

    def sender():
        """One send thread: take the next index until ``count`` are sent."""
        while (index := next(counter)) < count:
            message = Message(
                id=str(uuid.uuid4()),
                from_address=SENDER,
                to=[f"rcpt{index}@example.com"],
                subject=f"Mail {index}",
                text=BODY_TEXT,
            )
            try:
                provider.send(sessions.get(provider), message)
            except Exception as err:  # counted and reported
                failures.append(repr(err))

    threads = [
        threading.Thread(target=sender) for _ in range(max(1, int(config["WORKER_CONCURRENCY"])))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps({"sent": count - len(failures), "failures": failures[:5]}), flush=True)
    return 1 if failures else 0
