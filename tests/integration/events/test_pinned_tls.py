"""A tenant's endpoint is posted to at the address that was checked, over TLS verified against
the URL's host name (SNI and the certificate's names), never with the checks turned off."""

import ssl
import threading

import pytest
import urllib3
from werkzeug import Request, Response
from werkzeug.serving import make_server

from devkit.sandbox.smtp import make_certificates
from mailer.events.destinations import PinnedPoster, Target


@pytest.fixture
def tls_server(tmp_path):
    """An https server on 127.0.0.1 with a certificate for localhost from a private CA:
    ``(port, CA file, the Host headers it got)``."""
    ca_file, cert_file, key_file = make_certificates(tmp_path)
    hosts = []

    @Request.application
    def app(request):
        hosts.append(request.headers.get("Host"))
        return Response("", 204)

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    server = make_server("127.0.0.1", 0, app, threaded=True, ssl_context=context)

    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield server.server_port, ca_file, hosts
    server.shutdown()
    server.server_close()


def where(port, hostname):
    """A delivery to ``hostname`` pinned to 127.0.0.1."""
    return Target("https", hostname, port, "127.0.0.1", f"{hostname}:{port}", "/hooks")


def test_the_certificate_is_checked_against_the_urls_host_name(tls_server, monkeypatch):
    port, ca_file, hosts = tls_server
    poster = PinnedPoster(timeout=5)
    with pytest.raises(urllib3.exceptions.HTTPError, match="CERTIFICATE_VERIFY_FAILED"):
        poster.post(where(port, "localhost"), b"{}", {})  # a CA no one trusts: refused
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca_file)
    poster = PinnedPoster(timeout=5)
    assert poster.post(where(port, "localhost"), b"{}", {})[0] == 204
    assert hosts == [f"localhost:{port}"]
    with pytest.raises(urllib3.exceptions.HTTPError, match="hostname|match"):
        poster.post(where(port, "hooks.example.com"), b"{}", {})  # not a name on the cert
    poster.close()
