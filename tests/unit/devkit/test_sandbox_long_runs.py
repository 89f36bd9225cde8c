"""The sandbox's parts for long runs (the soak): a fault that hits a share of the sends, a
bounded record kept beside a tally of everything, outcomes drawn for a share of the addresses,
and events posted several at once. Real HTTP on loopback, no mocks."""

import threading

import pytest
import requests
from helpers import wait_for
from werkzeug import Request, Response
from werkzeug.serving import make_server

from devkit.sandbox import Sandbox
from devkit.sandbox.events import check_settings, outcome_of
from mailer.events.signatures import new_webhook_secret

MG_KEY = "mg-test-key"
DOMAIN = "mg.example.com"


@pytest.fixture
def sb():
    """A sandbox of the test's own (its posting threads and settings go with it)."""
    with Sandbox(mailgun_key=MG_KEY).start() as sandbox:
        yield sandbox


@pytest.fixture
def http():
    """A requests session that ignores proxy settings from the environment."""
    with requests.Session() as session:
        session.trust_env = False
        yield session


def mg_send(http, sb, mail_id=None, to="ann@example.com"):
    """One Mailgun send, with the service's ``v:mail_id`` if given; the status answered."""
    data = {"from": "shop@example.com", "to": to, "subject": "Hi", "text": "Hello"}
    if mail_id:
        data["v:mail_id"] = mail_id
    return http.post(f"{sb.url}/v3/{DOMAIN}/messages", auth=("api", MG_KEY), data=data).status_code


def test_a_fault_with_a_rate_hits_a_share_of_the_sends(sb, http):
    sb.configure("mailgun", status=503, rate=0.5)
    statuses = {mg_send(http, sb) for _ in range(200)}
    assert statuses == {200, 503}  # each of 200 draws misses both with odds of 2**-199
    sb.configure("mailgun", rate=0)
    assert {mg_send(http, sb) for _ in range(20)} == {200}
    sb.configure("mailgun", rate=1)
    assert {mg_send(http, sb) for _ in range(20)} == {503}


def test_a_rate_needs_a_fault(sb):
    with pytest.raises(ValueError, match="rate"):
        sb.configure("mailgun", rate=0.1)
    with pytest.raises(ValueError):
        sb.configure("mailgun", status=503, rate=1.5)


def test_keep_bounds_the_record_and_the_tally_counts_everything(sb, http):
    sb.set_keep(2)
    sb.configure("mailgun", status=503, count=1)
    statuses = [mg_send(http, sb, mail_id=f"m{n}") for n in range(5)]
    statuses.append(mg_send(http, sb, mail_id="m4"))  # the same mail taken twice
    assert statuses == [503, 200, 200, 200, 200, 200]
    assert len(sb.messages()) == 2 and len(sb.requests()) == 2
    tally = sb.tally()
    assert tally["requests"] == {"mailgun": {"200": 5, "503": 1}}
    assert (tally["accepted"], tally["mail_ids"], tally["repeats"]) == (5, 4, {"m4": 2})
    assert tally["keep"] == 2
    sb.reset()  # back to keeping everything, counting from nothing
    assert sb.tally()["keep"] is None and sb.tally()["accepted"] == 0


def test_tally_and_keep_over_http(sb, http):
    base = f"{sb.url}/_sandbox"
    assert http.put(f"{base}/keep", json={"keep": 1}).json() == {"keep": 1}
    assert mg_send(http, sb, mail_id="a") == 200 and mg_send(http, sb, mail_id="b") == 200
    assert len(http.get(f"{base}/messages").json()["messages"]) == 1
    tally = http.get(f"{base}/tally").json()
    assert (tally["accepted"], tally["mail_ids"], tally["repeats"]) == (2, 2, {})
    assert tally["events"]["waiting"] == 0 and tally["events"]["posts"] == 0
    for bad in ({"keep": -1}, {"keep": "all"}, {"kept": 3}, [1]):
        answer = http.put(f"{base}/keep", json=bad)
        assert answer.status_code == 400 and "keep" in answer.json()["error"]
    assert http.get(f"{base}/keep").json() == {"keep": 1}


def test_rates_draw_an_outcome_for_a_share_of_the_addresses_always_the_same():
    settings = check_settings({"rates": {"bounce": 0.02, "complain": 0.001}})
    addresses = [f"soak-{n}@example.com" for n in range(20_000)]
    drawn = [outcome_of(address, settings) for address in addresses]
    assert 300 <= drawn.count("bounce") <= 500  # 2% of 20,000 is 400
    assert 5 <= drawn.count("complain") <= 45  # 0.1% is 20
    assert drawn.count("deliver") == len(drawn) - drawn.count("bounce") - drawn.count("complain")
    assert drawn == [outcome_of(address, settings) for address in addresses]
    named = check_settings({"rates": {"bounce": 1}, "outcomes": {"x@example.com": "deliver"}})
    assert outcome_of("x@example.com", named) == "deliver"  # outcomes name it: no draw


@pytest.mark.parametrize(
    "settings",
    [
        {"rates": {"bounce": 0.6, "complain": 0.5}},
        {"rates": {"vanish": 0.1}},
        {"rates": {"bounce": -0.1}},
        {"jitter": 61},
        {"posters": 0},
        {"posters": 65},
    ],
)
def test_bad_event_settings_are_refused(settings):
    with pytest.raises(ValueError):
        check_settings(settings)


class HeldReceiver:
    """A service's event endpoint that holds every post until released, and notes how many it
    held at once."""

    def __init__(self):
        self.lock = threading.Lock()
        self.inside = self.most = self.answered = 0
        self.release = threading.Event()
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    @Request.application
    def app(self, request):
        """Hold the post until released."""
        with self.lock:
            self.inside += 1
            self.most = max(self.most, self.inside)
        self.release.wait(60)
        with self.lock:
            self.inside -= 1
            self.answered += 1
        return Response("{}", 200, content_type="application/json")

    def stop(self):
        """Let every post go, stop serving."""
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    """A ``HeldReceiver`` for the test."""
    held = HeldReceiver()
    yield held
    held.stop()


@pytest.mark.parametrize("posters", [1, 3])
def test_events_are_posted_at_most_posters_at_once(sb, http, receiver, posters):
    key = new_webhook_secret()
    sb.configure_events(url=receiver.url, mailgun_key=key, delay=0, posters=posters)
    for n in range(6):
        assert mg_send(http, sb, mail_id=f"m{n}", to=f"r{n}@example.com") == 200
    wait_for(lambda: receiver.inside == posters, timeout=30, message=f"{posters} posts held")
    assert sb.tally()["events"]["waiting"] == 6
    receiver.release.set()
    wait_for(lambda: sb.tally()["events"]["waiting"] == 0, timeout=30, message="every post")
    assert receiver.most == posters and receiver.answered == 6
    events = sb.tally()["events"]
    assert (events["posts"], events["events"], events["answers"]) == (6, 6, {"200": 6})
    assert len(sb.posted_events()) == 6
