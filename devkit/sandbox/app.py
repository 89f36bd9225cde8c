"""The sandbox as a WSGI app: each provider's send API, with injected faults, and /_sandbox/.

A send request waits out the provider's ``latency_ms`` (and a ``hang``), then gets the injected
``status`` if one is set, before authentication, as from a failing gateway in front of the
provider; otherwise the provider module answers it. With ``cut`` the answer is never sent: the
connection is closed instead. Every request body is read in full first, so a connection can
always be kept open for the next request.
"""

import socket
import time

from werkzeug import Request
from werkzeug.exceptions import MethodNotAllowed, NotFound, RequestEntityTooLarge
from werkzeug.routing import Map

from devkit.sandbox import control, mailgun, postmark, sendgrid, ses
from devkit.sandbox.wire import Answer, json_answer, phrase
from mailer.loopback import host_name, is_loopback_host

MAX_BODY = 64 * 1024 * 1024  # refuse absurd uploads rather than buffer them
PROVIDERS = {module.NAME: module for module in (mailgun, sendgrid, ses, postmark)}
URLS = Map(
    [*mailgun.RULES, *sendgrid.RULES, *ses.RULES, *postmark.RULES, *control.RULES],
    strict_slashes=False,
    merge_slashes=False,
)


class SandboxRequest(Request):
    """A request whose form may be as large as any body we accept (Werkzeug's default is 500 KB,
    less than a mail with a big HTML part)."""

    max_content_length = MAX_BODY
    max_form_memory_size = MAX_BODY
    max_form_parts = 10_000


def cut_connection(environ) -> None:
    """Close the client's connection without an answer and end the request.

    Werkzeug's server hands the app its socket as ``werkzeug.socket``; it treats the
    ConnectionAbortedError raised here as a dropped connection and stays quiet about it.
    """
    sock = environ.get("werkzeug.socket")
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # the client has gone already
    raise ConnectionAbortedError("the sandbox cut the connection")


def _unreadable(request) -> Answer | None:
    """Read the whole body; an error answer (closing the connection) if it cannot be read."""
    chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    length = request.environ.get("CONTENT_LENGTH", "").strip()
    if length and not length.isdigit() and not chunked:
        status = 400  # the body's end is unknown, so the connection cannot be reused
    else:
        try:
            request.get_data()
            return None
        except RequestEntityTooLarge:
            status = 413
    return json_answer(status, {"message": phrase(status)}, [("Connection", "close")])


def fault_answer(provider, fault) -> Answer:
    """The injected answer described by a behaviour snapshot."""
    status = fault["status"]
    if "error" in fault and hasattr(provider, "error_fault"):  # SES's error types
        return provider.error_fault(status, fault["error"], fault.get("retry_after"))
    headers = provider.fault_headers(status, fault.get("retry_after"))
    if "body" not in fault:
        body, ctype = provider.fault_body(status)
        return Answer(body, status, headers=headers, content_type=ctype)
    body = fault["body"]
    body = body.encode() if isinstance(body, str) else body
    ctype = fault.get("content_type")
    if ctype is None:  # sniff just enough that an HTML error page looks like one
        is_html = body.lstrip()[:1] == b"<"
        ctype = "text/html; charset=utf-8" if is_html else "text/plain; charset=utf-8"
    return Answer(body, status, headers=headers, content_type=ctype)


class App:
    """The WSGI app: routes requests to the provider modules and to /_sandbox/."""

    def __init__(self, store, keys, stopping, poster, hosts=()):
        """Serve ``store`` with the providers' API ``keys``; ``stopping`` ends waits early;
        ``poster`` posts the events of accepted sends; ``hosts``: the names besides loopback
        that a request's ``Host`` may give (the address it was told to bind, say)."""
        self.store, self.keys, self.stopping, self.poster = store, keys, stopping, poster
        self.hosts = frozenset(host_name(host) for host in hosts)

    def __call__(self, environ, start_response):
        """WSGI entry point."""
        return self.respond(environ)(environ, start_response)

    def respond(self, environ) -> Answer:
        """The answer to one request (ConnectionAbortedError when it gets none)."""
        with SandboxRequest(environ) as request:  # closing it deletes uploaded attachments
            return self._respond(request)

    def _respond(self, request) -> Answer:
        """Route one request whose body can be read, if it names this sandbox."""
        if not self.serves_host(request.host):
            return _wrong_host(request)
        unreadable = _unreadable(request)
        if unreadable is not None:
            return unreadable
        try:
            endpoint, values = URLS.bind("sandbox").match(request.path, request.method)
        except NotFound:
            return _not_found(request.path)
        except MethodNotAllowed as exc:
            return _not_allowed(request.path, exc.valid_methods or [])
        if endpoint in PROVIDERS:
            return self.send(request, PROVIDERS[endpoint], values)
        return control.serve(self.store, request, endpoint, values, self.poster)

    def serves_host(self, host) -> bool:
        """Whether a request with this ``Host`` is meant for the sandbox: a loopback name or
        address, as protected mode requires (mailer.loopback), or one of ``hosts``.

        Any other is DNS rebinding: a web page whose name now resolves to 127.0.0.1 would read
        every mail a developer sent from ``/_sandbox/messages``."""
        return is_loopback_host(host) or host_name(host) in self.hosts

    def send(self, request, provider, values) -> Answer:
        """Answer a send request as ``provider``, with the behaviour it was given."""
        at = time.time()
        latency_ms, fault, reject_to = self.store.take(provider.NAME)
        fault = fault or {}
        delay = latency_ms / 1000 + fault.get("hang", 0)
        if delay and self.stopping.wait(delay):
            self.store.record(provider.NAME, at, None, [])
            cut_connection(request.environ)  # stopping: drop the request unanswered
        if "status" in fault:
            answer, records = fault_answer(provider, fault), []
        else:
            answer, records = provider.send(request, self.keys[provider.NAME], reject_to, **values)
        if fault.get("cut"):
            self.store.record(provider.NAME, at, None, records)
            cut_connection(request.environ)  # taken (if valid), but the client never hears
        self.store.record(provider.NAME, at, answer.status_code, records)
        self.poster.submit(provider.NAME, records, self.store.event_settings())
        return answer


def _wrong_host(request) -> Answer:
    """JSON 403 for a ``Host`` that does not name the sandbox; the body is left unread, so the
    connection closes."""
    message = (
        f"Host {request.host!r} is not this machine: the sandbox answers loopback names and "
        "addresses, its --host and --allow-host only"
    )
    body = {"error": message} if request.path.startswith("/_sandbox") else {"message": message}
    return json_answer(403, body, [("Connection", "close")])


def _not_found(path) -> Answer:
    """JSON 404, in the sandbox's shape under /_sandbox/ and in the providers' elsewhere."""
    if path == "/_sandbox" or path.startswith("/_sandbox/"):
        return json_answer(404, {"error": "not found", "path": path})
    return json_answer(404, {"message": "Not Found", "path": path})


def _not_allowed(path, methods) -> Answer:
    """JSON 405 with the Allow header."""
    shown = [method for method in ("GET", "PUT", "POST", "DELETE") if method in methods]
    allow = [("Allow", ", ".join(shown))]
    if path.startswith("/_sandbox/"):
        return json_answer(405, {"error": f"use {' or '.join(shown)}"}, allow)
    return json_answer(405, {"message": "Method Not Allowed"}, allow)
