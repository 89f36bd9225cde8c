"""Issue 19, item 4: failed authentications are counted per real client, in PostgreSQL (every
API process alike), and never keep a valid key, password or metrics token out.

Behind a proxy every client has the proxy's address: with the proxy in ``TRUSTED_PROXIES``
its ``X-Forwarded-For`` names the client, and one client's guesses block only that client.
"""

import base64
import logging
import socket

import pytest

from app import create_app
from mailer.config import load_config
from models import db

PROXY = {"REMOTE_ADDR": "10.0.0.5"}  # the reverse proxy, as the API sees it connect
RIGHT, WRONG = {"Authorization": "Bearer right-key"}, {"Authorization": "Bearer wrong-key"}
LIMIT = 3


@pytest.fixture
def make_app(settings, app):
    """Apps with extra settings (API keys, a limit of 3), in the test's transaction."""
    apps = []

    def make(**overrides):
        application = create_app(
            {
                **settings,
                "API_KEYS": "right-key",
                "ADMIN_PASSWORD": "s3cret",
                "METRICS_TOKEN": "metrics-token",
                "AUTH_FAILURE_LIMIT": LIMIT,
                "AUTH_BLOCK_SECONDS": 120,
                **overrides,
            }
        )
        apps.append(application)
        return application

    yield make
    for application in apps:
        with application.app_context():
            db.engine.dispose()


def from_client(client, address, headers=None, path="/mail/00000000-0000-4000-8000-000000000000"):
    """GET ``path`` through the proxy for the client at ``address``; the status code."""
    forwarded = {"X-Forwarded-For": address} if address else {}
    response = client.get(path, headers={**forwarded, **(headers or {})}, environ_base=PROXY)
    return response.status_code


def guess(client, address, times=LIMIT, headers=WRONG):
    """``times`` wrong keys from the client at ``address``; their status codes."""
    return [from_client(client, address, headers) for _ in range(times)]


# --- TRUSTED_PROXIES --------------------------------------------------------------------------


def test_trusted_proxies_take_addresses_and_networks():
    config = load_config(environ={"TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8,::1,fd00::/8"})
    assert [str(net) for net in config["TRUSTED_PROXIES"]] == [
        "127.0.0.1/32",
        "10.0.0.0/8",
        "::1/128",
        "fd00::/8",
    ]
    assert load_config(environ={})["TRUSTED_PROXIES"] == ()  # believe nobody


@pytest.mark.parametrize("value", ["proxy.example", "10.0.0.0/33", "127.0.0.1,nope"])
def test_trusted_proxies_refuse_what_is_not_an_address(value):
    with pytest.raises(ValueError, match="setting TRUSTED_PROXIES: .* is not an IP address"):
        load_config(environ={"TRUSTED_PROXIES": value})


# --- One client's guesses block that client only ---------------------------------------------


def test_behind_a_trusted_proxy_one_client_blocks_only_itself(make_app):
    client = make_app(TRUSTED_PROXIES="10.0.0.0/24").test_client()
    assert guess(client, "203.0.113.7") == [401] * LIMIT
    assert guess(client, "203.0.113.7", times=1) == [429]
    assert guess(client, "198.51.100.8", times=1) == [401]  # another client behind the proxy
    assert from_client(client, "198.51.100.8", RIGHT) == 404  # authenticated: no such mail
    # The guesser's own valid key is served too: only its failures are refused.
    assert from_client(client, "203.0.113.7", RIGHT) == 404


def test_without_trusted_proxies_x_forwarded_for_is_not_believed(make_app):
    client = make_app().test_client()  # TRUSTED_PROXIES empty: the peer is the client
    statuses = [from_client(client, f"192.0.2.{n}", WRONG) for n in range(LIMIT + 1)]
    assert statuses == [401] * LIMIT + [429]  # a new X-Forwarded-For each time: still blocked
    assert from_client(client, "192.0.2.99", RIGHT) == 404


def test_what_a_client_writes_in_x_forwarded_for_is_not_believed(make_app):
    # The proxy appends the address it got the request from; the client wrote what is left.
    client = make_app(TRUSTED_PROXIES="10.0.0.5").test_client()
    statuses = [from_client(client, f"192.0.2.{n}, 203.0.113.7", WRONG) for n in range(LIMIT + 1)]
    assert statuses == [401] * LIMIT + [429]
    assert from_client(client, "203.0.113.8", WRONG) == 401


def test_a_chain_of_trusted_proxies_is_walked_back_to_the_client(make_app):
    # A load balancer (10.0.0.9) in front of the proxy (10.0.0.5); a spoofed hop left of it.
    client = make_app(TRUSTED_PROXIES="10.0.0.0/24").test_client()
    chain = "10.0.0.1, 203.0.113.7, 10.0.0.9"
    assert guess(client, chain) == [401] * LIMIT
    assert from_client(client, "203.0.113.7", WRONG) == 429  # the same client, one hop
    assert from_client(client, "10.0.0.1", WRONG) == 401  # not the one that was counted


def test_an_untrusted_peer_is_the_client_whatever_it_forwards(make_app):
    client = make_app(TRUSTED_PROXIES="10.0.0.5").test_client()
    stranger = {"REMOTE_ADDR": "198.51.100.20"}
    for n in range(LIMIT):
        response = client.get(
            "/mail/x", headers={"X-Forwarded-For": f"192.0.2.{n}", **WRONG}, environ_base=stranger
        )
        assert response.status_code == 401
    assert client.get("/mail/x", headers=WRONG, environ_base=stranger).status_code == 429


# --- Counted in PostgreSQL, across processes -----------------------------------------------------


def test_every_api_process_counts_the_same_failures(make_app, sql):
    first = make_app(TRUSTED_PROXIES="10.0.0.5").test_client()
    second = make_app(TRUSTED_PROXIES="10.0.0.5").test_client()  # no memory shared with first
    assert guess(first, "203.0.113.7", times=LIMIT - 1) == [401] * (LIMIT - 1)
    assert guess(second, "203.0.113.7", times=1) == [401]
    assert guess(first, "203.0.113.7", times=1) == [429]
    assert guess(second, "203.0.113.7", times=1) == [429]
    [row] = sql("SELECT client, failures, blocked_until > now() AS blocked FROM auth_failure")
    assert row == {"client": "203.0.113.7", "failures": 0, "blocked": True}


def test_the_block_is_logged_once(make_app, caplog):
    caplog.set_level(logging.WARNING, logger="mail_service.auth")
    client = make_app(TRUSTED_PROXIES="10.0.0.5").test_client()
    guess(client, "203.0.113.7", times=LIMIT + 3)
    lines = [r.getMessage() for r in caplog.records if "failed authentications" in r.getMessage()]
    assert lines == [
        "3 failed authentications from 203.0.113.7 within 60s: refusing its failures for 120s"
    ]
    assert "wrong-key" not in caplog.text


def test_failures_count_within_the_window_and_the_block_ends(make_app, sql):
    client = make_app(TRUSTED_PROXIES="10.0.0.5").test_client()
    guess(client, "203.0.113.7", times=LIMIT - 1)
    sql("UPDATE auth_failure SET window_ends = now() - interval '1 second'")  # window over
    assert guess(client, "203.0.113.7", times=LIMIT) == [401] * LIMIT  # counted afresh
    assert guess(client, "203.0.113.7", times=1) == [429]
    sql("UPDATE auth_failure SET blocked_until = now() - interval '1 second'")  # block over
    assert guess(client, "203.0.113.7", times=1) == [401]


def test_each_failure_deletes_spent_rows(make_app, sql):
    sql(
        "INSERT INTO auth_failure (client, failures, window_ends, blocked_until, expires_at) "
        "SELECT '192.0.2.' || n, 1, now() - interval '2 minutes', now() - interval '1 minute', "
        "now() - interval '1 minute' FROM generate_series(1, 15) n"
    )
    client = make_app(TRUSTED_PROXIES="10.0.0.5").test_client()
    guess(client, "203.0.113.7", times=2)
    assert [row["client"] for row in sql("SELECT client FROM auth_failure")] == ["203.0.113.7"]


# --- The admin's password and the metrics token ------------------------------------------------


def basic(password):
    """An HTTP Basic Authorization header for user admin."""
    return {"Authorization": "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()}


def test_wrong_admin_passwords_block_the_guesser_not_the_operator(make_app):
    client = make_app(TRUSTED_PROXIES="10.0.0.5").test_client()
    guesses = [from_client(client, "203.0.113.7", basic("guess"), "/admin/") for _ in range(4)]
    assert guesses == [401, 401, 401, 429]
    assert from_client(client, "203.0.113.7", basic("s3cret"), "/admin/") == 200
    assert from_client(client, "198.51.100.8", basic("guess"), "/admin/") == 401


def test_a_wrong_admin_password_counts_once_per_request(make_app, sql):
    client = make_app(TRUSTED_PROXIES="10.0.0.5").test_client()
    from_client(client, "203.0.113.7", basic("guess"), "/admin/email/")
    assert sql("SELECT failures FROM auth_failure") == [{"failures": 1}]


def test_wrong_metrics_tokens_block_the_guesser_not_the_scraper(make_app):
    client = make_app(TRUSTED_PROXIES="10.0.0.5").test_client()
    wrong = {"Authorization": "Bearer not-the-token"}
    guesses = [from_client(client, "203.0.113.7", wrong, "/metrics") for _ in range(4)]
    assert guesses == [401, 401, 401, 429]
    scrape = {"Authorization": "Bearer metrics-token"}
    assert from_client(client, "203.0.113.7", scrape, "/metrics") == 200


# --- Valid credentials need no database -------------------------------------------------------


@pytest.fixture
def closed_port():
    """A loopback port nothing listens on: a database that is down."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_valid_credentials_pass_while_the_database_is_down(settings, closed_port, mail):
    app = create_app(
        {
            **settings,
            "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{closed_port}/mail",
            "DB_CONNECT_TIMEOUT": 1,
            "API_KEYS": "right-key",
            "METRICS_TOKEN": "metrics-token",
            "AUTH_FAILURE_LIMIT": 1,
        }
    )
    client = app.test_client()
    stored = client.post("/mail", json=mail, headers=RIGHT)
    assert stored.status_code == 503  # past authentication; only the storing needs the database
    scrape = client.get("/metrics", headers={"Authorization": "Bearer metrics-token"})
    assert scrape.status_code == 200
    # A wrong key is still a 401 (counted nowhere), not a 500; the valid one stays in.
    assert [client.post("/mail", json=mail, headers=WRONG).status_code for _ in range(2)] == [
        401,
        401,
    ]
    assert client.post("/mail", json=mail, headers=RIGHT).status_code == 503
    with app.app_context():
        db.engine.dispose()
