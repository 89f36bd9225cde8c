"""Where a tenant's webhook endpoint may point: the URL's form, and the addresses its host
may resolve to (no look-up of a name but ``localhost`` and IP literals)."""

import pytest

from mailer.events.destinations import Refused, address_problem, target, url_problem


@pytest.mark.parametrize(
    "address, kind",
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.0.1", "private"),
        ("fd00::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "non-public"),
        ("192.0.2.1", "private"),  # documentation: never a real receiver
    ],
)
def test_non_public_addresses_are_named(address, kind):
    assert kind in address_problem(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1::1", "8.8.8.8"])
def test_public_addresses_pass(address):
    assert address_problem(address) is None


def test_urls_must_be_https_unless_allowed():
    assert "https" in url_problem("http://hooks.example.com/", allow_http=False)
    assert url_problem("http://hooks.example.com/", allow_http=True) is None
    assert url_problem("https://hooks.example.com/a?b=c", allow_http=False) is None
    assert "credentials" in url_problem("https://u:p@hooks.example.com/", False)
    assert "fragment" in url_problem("https://hooks.example.com/#x", False)
    assert url_problem("https://hooks.example.com:99999/", False) == "Not a valid URL"
    assert "spaces" in url_problem("https://hooks.example.com/a b", False)


def test_delivery_resolves_and_checks_then_pins_the_address():
    with pytest.raises(Refused, match="localhost resolves to 127.0.0.1, a loopback address"):
        target("https://localhost:8443/hooks", allow_http=False, allow_private=False)
    where = target("https://localhost:8443/hooks?x=1", allow_http=False, allow_private=True)
    assert where.address in ("127.0.0.1", "::1")
    assert (where.hostname, where.port, where.host_header, where.path) == (
        "localhost",
        8443,
        "localhost:8443",
        "/hooks?x=1",
    )
