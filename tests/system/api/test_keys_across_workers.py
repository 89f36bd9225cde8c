"""Stored keys under gunicorn with three worker processes: a revoked key stops working on every
one of them within a second, and a key's ``allowed_from_domains``, ``rate_limit`` and
``daily_quota`` hold across them all (the limits are counted in the database)."""

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from helpers import sample_mail

from system.gunicorn_server import Gunicorn, gunicorn_env

ROOT = "root-key-for-gunicorn"
WORKERS = 3


@pytest.fixture
def server(app, tmp_path, database_url):
    """gunicorn with three workers, ``API_KEYS`` = ``ROOT``; the ``app`` fixture (committed
    rows) empties the tables before and after."""
    gunicorn = Gunicorn(
        gunicorn_env(tmp_path, database_url, API_KEYS=ROOT, WEB_CONCURRENCY=str(WORKERS))
    )
    try:
        gunicorn.url()
        yield gunicorn
    finally:
        gunicorn.stop()


pytestmark = pytest.mark.committed


def bearer(key):
    """The Authorization header of ``key``."""
    return {"Authorization": f"Bearer {key}"}


def make_key(server, **fields):
    """A new key of tenant ``shop`` (POST /keys as the operator): its body, with ``key``."""
    answer = requests.post(
        server.url("/keys"),
        json={"name": "app", "tenant": "shop", "scopes": ["mail:send", "mail:read"], **fields},
        headers=bearer(ROOT),
        timeout=10,
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


def send_all(server, key, count, threads=9, **mail):
    """POST ``count`` mails at once over ``threads`` connections (spread over the workers):
    the status of each, and the seconds they took."""
    url = server.url("/mail")

    def one(_):
        with requests.Session() as session:
            response = session.post(url, json=sample_mail(**mail), headers=bearer(key), timeout=30)
            return response.status_code

    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        statuses = list(pool.map(one, range(count)))
    return statuses, time.monotonic() - started


def test_a_revoked_key_stops_working_on_every_worker_within_a_second(server):
    made = make_key(server)
    url = server.url("/mail?limit=1")

    def status():
        return requests.get(url, headers=bearer(made["key"]), timeout=10).status_code

    # Each worker has the key cached: many requests over fresh connections reach all three.
    with ThreadPoolExecutor(WORKERS * 3) as pool:
        assert set(pool.map(lambda _: status(), range(60))) == {200}
    revoked = requests.delete(server.url(f"/keys/{made['id']}"), headers=bearer(ROOT), timeout=10)
    assert revoked.status_code == 204
    since_revoked = time.monotonic()
    answered = []  # (seconds after the revocation, status)
    with ThreadPoolExecutor(WORKERS * 3) as pool:
        while time.monotonic() - since_revoked < 2.0:
            for code in pool.map(lambda _: status(), range(WORKERS * 3)):
                answered.append((time.monotonic() - since_revoked, code))
    still_served = [at for at, code in answered if code == 200]
    assert not still_served or max(still_served) < 1.2, still_served
    # Refused: 401, or 429 once the failed-authentication throttle counts this client's tries.
    late = [code for at, code in answered if at > 1.2]
    assert late and set(late) <= {401, 429}, late


def test_the_daily_quota_holds_across_three_workers(server):
    made = make_key(server, daily_quota=7)
    statuses, _ = send_all(server, made["key"], 30)
    assert statuses.count(202) == 7 and statuses.count(429) == 23, statuses


def test_the_rate_limit_holds_across_three_workers(server):
    rate = 5.0
    made = make_key(server, rate_limit=rate)
    statuses, seconds = send_all(server, made["key"], 120, threads=12)
    accepted = statuses.count(202)
    assert set(statuses) <= {202, 429}
    # A full bucket (one second's worth) and the rate for the time the burst took, no more.
    assert accepted <= rate + rate * seconds + 1, (accepted, seconds)
    assert accepted >= rate, (accepted, seconds)


def test_allowed_from_domains_holds_on_every_worker(server):
    made = make_key(server, allowed_from_domains=["shop.example"])
    good, _ = send_all(server, made["key"], 12, **{"from": "a@shop.example"})
    bad, _ = send_all(server, made["key"], 12, **{"from": "a@other.example"})
    assert set(good) == {202} and set(bad) == {403}
