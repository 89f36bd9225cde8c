"""Where a tenant's webhook endpoint may point, and how a webhook reaches it.

A tenant names its own endpoint URLs, so the service must not become a way to reach the
operator's network: an endpoint URL must be ``https`` (plain ``http`` only with
``WEBHOOK_ALLOW_HTTP``, for development) and its host must resolve to public addresses only:
not loopback, link-local, private, shared, multicast, reserved or unspecified, an IPv4 address
written as IPv6 (``::ffff:127.0.0.1``, 6to4, Teredo) included, unless ``WEBHOOK_ALLOW_PRIVATE``
is set.

The check runs when an endpoint is created or changed (``creation_problem``) and again before
every delivery (``target``), since a name may resolve elsewhere later. A delivery then connects
to the very address it checked (``PinnedPoster``), not to whatever a second look-up would
answer, while the ``Host`` header, TLS SNI and the certificate's name check keep the URL's
host name: certificates are always verified.

The settings' ``WEBHOOK_URL`` is the operator's own and is not checked here.
"""

import ipaddress
import os
import socket
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

import certifi
import urllib3

MAX_URL = 2000  # characters
MAX_POOLS = 200  # connection pools a poster keeps (one per address, port and host name)


class Refused(ValueError):
    """A URL, or the address its host resolves to, that no webhook may go to; says why."""


@dataclass(frozen=True)
class Target:
    """Where one delivery goes: the URL's parts and the checked address to connect to."""

    scheme: str
    hostname: str
    port: int
    address: str
    host_header: str  # the URL's host[:port], as the Host header sends it
    path: str  # path and query


def url_problem(url, allow_http):
    """What is wrong with ``url`` as an endpoint URL, read alone (no look-up); None if nothing."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL:
        return f"A URL of at most {MAX_URL} characters"
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        return "Must not contain spaces or control characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError for a port out of range
    except ValueError:
        return "Not a valid URL"
    if parts.scheme not in ("https", "http"):
        return "Must be an https URL"
    if parts.scheme == "http" and not allow_http:
        return "Must be https (http only with WEBHOOK_ALLOW_HTTP, for development)"
    if not parts.hostname:
        return "Must name a host"
    if parts.username is not None or parts.password is not None:
        return "Must not contain credentials"
    if parts.fragment:
        return "Must not contain a fragment (#...)"
    return None


def address_problem(text):
    """Why a webhook must not go to the IP address ``text``, or None for a public address."""
    ip = ipaddress.ip_address(text.partition("%")[0])  # an IPv6 zone (fe80::1%eth0) aside
    for inner in _embedded(ip):
        problem = address_problem(str(inner))
        if problem:
            return problem
    for kind, flag in (
        ("an unspecified", ip.is_unspecified),
        ("a loopback", ip.is_loopback),
        ("a link-local", ip.is_link_local),
        ("a multicast", ip.is_multicast),
        ("a reserved", ip.is_reserved),
        ("a private", ip.is_private),
        ("a non-public", not ip.is_global),
    ):
        if flag:
            return f"{kind} address"
    return None


def _embedded(ip):
    """The IPv4 addresses an IPv6 address carries (mapped, 6to4, Teredo's client)."""
    if ip.version != 6:
        return []
    teredo = ip.teredo
    return [a for a in (ip.ipv4_mapped, ip.sixtofour, teredo and teredo[1]) if a is not None]


def resolve(hostname, port):
    """Every address ``hostname`` resolves to (an IP literal: itself); Refused if none."""
    try:
        infos = socket.getaddrinfo(hostname, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as err:
        raise Refused(f"{hostname} does not resolve ({err})") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        raise Refused(f"{hostname} does not resolve")
    return addresses


def checked(hostname, addresses, allow_private):
    """``addresses`` if each may be sent to; Refused naming the first that may not."""
    if allow_private:
        return addresses
    for address in addresses:
        problem = address_problem(address)
        if problem:
            raise Refused(
                f"{hostname} resolves to {address}, {problem} "
                "(allowed only with WEBHOOK_ALLOW_PRIVATE)"
            )
    return addresses


def creation_problem(url, allow_http, allow_private):
    """What is wrong with ``url`` for a new or changed endpoint, or None.

    A host that does not resolve yet is accepted (delivery checks again, and fails until it
    does); one that resolves must resolve to addresses a webhook may go to.
    """
    problem = url_problem(url, allow_http)
    if problem:
        return problem
    parts = urlsplit(url)
    try:
        addresses = resolve(parts.hostname, _port(parts))
    except Refused:
        return None
    try:
        checked(parts.hostname, addresses, allow_private)
    except Refused as err:
        return str(err)
    return None


def target(url, allow_http, allow_private):
    """Where a delivery to ``url`` goes now: resolved and checked; Refused saying why not."""
    problem = url_problem(url, allow_http)
    if problem:
        raise Refused(problem)
    parts = urlsplit(url)
    port = _port(parts)
    addresses = checked(parts.hostname, resolve(parts.hostname, port), allow_private)
    return Target(
        scheme=parts.scheme,
        hostname=parts.hostname,
        port=port,
        address=addresses[0],
        host_header=parts.netloc,
        path=(parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
    )


def _port(parts):
    """The URL's port, or its scheme's."""
    return parts.port or (443 if parts.scheme == "https" else 80)


class PinnedPoster:
    """Posts to a ``Target``'s checked address, keeping a connection pool per address, port
    and host name (connections are reused between webhooks to one endpoint); thread-safe, each
    pool keeping up to ``connections`` connections alive (one per thread that posts)."""

    def __init__(self, timeout, connections=1):
        self.timeout = urllib3.Timeout(connect=timeout, read=timeout)
        self.connections = connections
        self.pools = {}
        self.lock = threading.Lock()

    def post(self, where, body, headers):
        """POST ``body`` to ``where``: ``(status code, the answer's text)``. Raises urllib3's
        ``HTTPError`` for a connection, TLS or timeout failure; never follows a redirect."""
        response = self._pool(where).urlopen(
            "POST",
            where.path,
            body=body,
            headers={**headers, "Host": where.host_header},
            retries=False,
            redirect=False,
            assert_same_host=False,
        )
        return response.status, response.data.decode("utf-8", errors="replace")

    def _pool(self, where):
        """The pool that connects to ``where.address``, made on first use."""
        slot = (where.scheme, where.address, where.port, where.hostname)
        with self.lock:
            pool = self.pools.get(slot)
            if pool is None:
                if len(self.pools) >= MAX_POOLS:
                    self.close()
                pool = self.pools[slot] = self._new_pool(where)
            return pool

    def _new_pool(self, where):
        """A pool to the checked address; for https, SNI and the certificate's check use the
        URL's host name, against the CA bundle requests uses (``REQUESTS_CA_BUNDLE``, else
        certifi's). No proxy: a proxy would resolve the name again."""
        if where.scheme == "http":
            return urllib3.HTTPConnectionPool(
                where.address, where.port, timeout=self.timeout, maxsize=self.connections
            )
        return urllib3.HTTPSConnectionPool(
            where.address,
            where.port,
            timeout=self.timeout,
            maxsize=self.connections,
            cert_reqs="CERT_REQUIRED",
            ca_certs=os.environ.get("REQUESTS_CA_BUNDLE") or certifi.where(),
            server_hostname=where.hostname,
            assert_hostname=where.hostname,
        )

    def close(self):
        """Close every pool's connections."""
        for pool in self.pools.values():
            pool.close()
        self.pools = {}
