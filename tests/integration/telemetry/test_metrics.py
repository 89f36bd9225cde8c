"""Prometheus metrics, scraped as Prometheus would: the API's ``/metrics`` (its requests, the
queue read from the database) and a worker's own, values that move when mail is sent or fails,
who may read them, and the sum over gunicorn's processes."""

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading

import pytest
import requests
from conftest import ROOT
from helpers import queue_mails, sample_mail, wait_for
from prometheus_client.parser import text_string_to_metric_families
from test_client_webhooks import SECRET, Receiver
from test_gunicorn import Gunicorn, gunicorn_env

pytestmark = pytest.mark.committed  # the scrape reads the queue on a connection of its own

TOKEN = "metrics-token-for-tests"


def parse(text):
    """Every sample of a scrape: {(name, frozenset of label pairs): value}."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples, name, **labels):
    """One sample's value, 0 if the scrape does not have it."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape(client, **headers):
    """The API's metrics, through the test client."""
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.content_type.startswith("text/plain")
    return parse(response.get_data(as_text=True))


def free_port():
    """A TCP port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def worker_in_background(run_worker, **overrides):
    """Start a worker on a thread; return it once it exists."""
    threading.Thread(target=run_worker, kwargs={"burst": False, **overrides}, daemon=True).start()
    return wait_for(lambda: run_worker.workers and run_worker.workers[-1], 5, message="worker")


def scrape_worker(port, token=None):
    """A worker's metrics over HTTP."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = requests.get(f"http://127.0.0.1:{port}/metrics", headers=headers, timeout=5)
    assert response.status_code == 200
    return parse(response.text)


def test_api_metrics_count_requests_accepted_and_rejected_mail(client):
    before = scrape(client)
    assert client.post("/mail", json=sample_mail()).status_code == 202
    assert client.post("/mail/batch", json=[sample_mail()] * 3).status_code == 202
    assert client.post("/mail", json=sample_mail(to="nobody")).status_code == 400
    assert client.post("/mail", data="x", content_type="text/plain").status_code == 415
    client.get("/no/such/page")
    after = scrape(client)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("mail_api_mails_accepted_total") == 4
    assert moved("mail_api_mails_rejected_total", reason="invalid") == 1
    assert moved("mail_api_mails_rejected_total", reason="unsupported_media_type") == 1
    assert moved("mail_api_requests_total", endpoint="/mail", method="POST", code="202") == 1
    assert moved("mail_api_requests_total", endpoint="/mail", method="POST", code="400") == 1
    assert moved("mail_api_requests_total", endpoint="unmatched", method="GET", code="404") == 1
    assert moved("mail_api_request_duration_seconds_count", endpoint="/mail", method="POST") == 3
    assert (
        value(
            after,
            "mail_api_request_duration_seconds_bucket",
            endpoint="/mail",
            method="POST",
            le="+Inf",
        )
        >= 3
    )
    # The queue as the database counts it: the mails just stored are waiting.
    assert value(after, "mail_queue_mails", status="queued") == 4
    assert value(after, "mail_queue_mails", status="sent") == 0
    assert value(after, "mail_database_up") == 1


def test_metrics_move_when_mail_is_sent_or_fails(client, run_worker, sandbox, settings):
    port = free_port()
    worker = worker_in_background(run_worker, WORKER_METRICS_PORT=port)
    wait_for(lambda: _answers(port), 10, message="the worker's metrics")
    queue_mails(settings["DATABASE_URL"], 3)
    wait_for(
        lambda: (
            value(
                scrape_worker(port), "mail_worker_sends_total", provider="mailgun", outcome="sent"
            )
            == 3
        ),
        15,
        message="three sends counted",
    )
    sandbox.configure("mailgun", status=503)  # mailgun down: each mail fails over to sendgrid
    queue_mails(settings["DATABASE_URL"], 2)
    wait_for(
        lambda: (
            value(
                scrape_worker(port), "mail_worker_sends_total", provider="sendgrid", outcome="sent"
            )
            == 2
        ),
        15,
        message="two sends through sendgrid",
    )
    sandbox.set_behaviour("mailgun", {"reject_to": "refused"})  # up, refusing a bad message
    queue_mails(
        settings["DATABASE_URL"],
        1,
        to_address=["refused@example.com"],
        recipients=["refused@example.com"],
    )
    worker.last_beat = 0.0  # fold the status ledger now
    samples = wait_for(
        lambda: _with(scrape_worker(port), "mail_worker_mails_total", status="failed"),
        15,
        message="a failed mail counted",
    )
    assert value(samples, "mail_worker_sends_total", provider="mailgun", outcome="transient") >= 2
    assert value(samples, "mail_worker_sends_total", provider="mailgun", outcome="rejected") == 1
    assert value(samples, "mail_worker_mails_total", status="sent") == 5
    assert value(samples, "mail_worker_provider_latency_seconds_count", provider="sendgrid") == 2
    assert value(samples, "mail_worker_claimed_mails_total") == 6
    assert value(samples, "mail_worker_in_flight") == 0
    assert value(samples, "mail_provider_weight", provider="mailgun") == 1
    assert value(samples, "mail_provider_breaker_state", provider="sendgrid", state="closed") == 1
    api = scrape(client)
    assert value(api, "mail_queue_mails", status="sent") == 5
    assert value(api, "mail_queue_mails", status="failed") == 1
    assert value(api, "mail_queue_mails", status="queued") == 0
    assert value(api, "mail_queue_oldest_due_age_seconds") == 0
    assert value(api, "mail_workers_alive") == 1
    assert value(api, "mail_provider_breaker_state", provider="mailgun", state="closed") == 1
    worker.stop()
    wait_for(lambda: not _answers(port), 10, message="the metrics server to stop")


def test_the_breaker_state_shows_an_open_circuit(client, run_worker, sandbox, settings):
    sandbox.configure("mailgun", status=503)
    queue_mails(settings["DATABASE_URL"], 6)  # five failures in a row open mailgun's circuit
    run_worker(CIRCUIT_COOLDOWN=60.0, WORKER_CONCURRENCY=1)
    samples = scrape(client)
    assert value(samples, "mail_provider_breaker_state", provider="mailgun", state="open") == 1
    assert value(samples, "mail_provider_breaker_state", provider="mailgun", state="closed") == 0
    assert value(samples, "mail_meltdown") == 0  # sendgrid still takes mail


def _answers(port):
    """Whether something serves on ``port``."""
    try:
        requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
    except requests.ConnectionError:
        return False
    return True


def _with(samples, name, **labels):
    """``samples`` if they have the sample, else None (for ``wait_for``)."""
    return samples if value(samples, name, **labels) else None


def test_client_webhooks_are_counted(run_worker, settings):
    receiver = Receiver()
    try:
        port = free_port()
        worker_in_background(
            run_worker, WORKER_METRICS_PORT=port, WEBHOOK_URL=receiver.url, WEBHOOK_SECRET=SECRET
        )
        wait_for(lambda: _answers(port), 10, message="the worker's metrics")
        queue_mails(settings["DATABASE_URL"], 2)
        wait_for(
            lambda: (
                value(
                    scrape_worker(port), "mail_worker_webhook_deliveries_total", outcome="delivered"
                )
                == 2
            ),
            15,
            message="two mail.sent webhooks",
        )
        receiver.failing_until = float("inf")  # the receiver is down: posts fail
        queue_mails(settings["DATABASE_URL"], 1)
        wait_for(
            lambda: (
                value(scrape_worker(port), "mail_worker_webhook_deliveries_total", outcome="failed")
                >= 1
            ),
            15,
            message="a failed webhook counted",
        )
    finally:
        receiver.server.shutdown()


# Who may read them ------------------------------------------------------------------------------


def test_metrics_follow_the_apis_rule_with_api_keys(app, client):
    app.config["API_KEYS"] = ("api-key",)
    refused = client.get("/metrics")
    assert (
        refused.status_code == 401 and refused.get_json()["errors"][0]["field"] == "Authorization"
    )
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer api-key"}).status_code == 200


def test_metrics_token_protects_metrics_on_its_own(app, client):
    app.config["METRICS_TOKEN"] = TOKEN
    assert client.get("/metrics").status_code == 401  # even from loopback
    wrong = client.get("/metrics", headers={"Authorization": "Bearer api-key"})
    assert wrong.status_code == 401 and "WWW-Authenticate" in wrong.headers
    assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    app.config["API_KEYS"] = ("api-key",)  # an API key is good too
    assert client.get("/metrics", headers={"X-API-Key": "api-key"}).status_code == 200


def test_metrics_in_protected_mode_serve_local_clients_only(client):
    assert client.get("/metrics").status_code == 200
    remote = client.get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.7"})
    assert remote.status_code == 401
    proxied = client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.7"})
    assert proxied.status_code == 401


def test_worker_metrics_ask_for_the_token(run_worker):
    port = free_port()
    worker_in_background(run_worker, WORKER_METRICS_PORT=port, METRICS_TOKEN=TOKEN)
    wait_for(lambda: _answers(port), 10, message="the worker's metrics")
    refused = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    assert refused.status_code == 401 and refused.json()["errors"][0]["field"] == "Authorization"
    assert "mail_worker_in_flight" in {name for name, _ in scrape_worker(port, TOKEN)}


# gunicorn: several processes, one sum ----------------------------------------------------------


@pytest.fixture
def gunicorn_server(tmp_path, database_url):
    """gunicorn with three single-threaded processes; stopped at the end."""
    env = gunicorn_env(
        tmp_path,
        database_url,
        WEB_CONCURRENCY="3",
        GUNICORN_THREADS="1",
        PROMETHEUS_MULTIPROC_DIR=None,
    )
    server = Gunicorn(env)
    yield server
    server.stop()


def test_gunicorn_sums_the_counts_of_every_process(app, gunicorn_server):
    base = f"http://127.0.0.1:{gunicorn_server.port()}"
    wait_for(lambda: _ready(base), 60, message="gunicorn's processes to serve")
    directory = wait_for(lambda: _metrics_dir(gunicorn_server.output), 5, message="the dir")
    posted = 0
    # Rounds of six new connections at once, until two processes or more have served some
    # (a process still loading the app takes none): each process counts in files of its own.
    for _ in range(20):
        posted += post_concurrently(base + "/mail", connections=6, each=5)
        if len(_pids(directory)) >= 2:
            break
    assert len(_pids(directory)) >= 2, "the requests were served by more than one process"
    samples = parse(requests.get(base + "/metrics", timeout=10).text)
    assert value(samples, "mail_api_mails_accepted_total") == posted
    assert (
        value(samples, "mail_api_requests_total", endpoint="/mail", method="POST", code="202")
        == posted
    )
    assert value(samples, "mail_queue_mails", status="queued") == posted
    gunicorn_server.stop()
    assert not os.path.exists(directory)  # the directory it made is removed on exit


def post_concurrently(url, connections, each):
    """POST ``each`` mails on each of ``connections`` new connections at once; how many."""
    failures = []

    def post():
        with requests.Session() as session:
            for _ in range(each):
                status = session.post(url, json=sample_mail(), timeout=10).status_code
                if status != 202:
                    failures.append(status)

    threads = [threading.Thread(target=post) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures
    return connections * each


def _pids(directory):
    """The processes that have written metrics in ``directory``."""
    return {name.rsplit("_", 1)[1] for name in os.listdir(directory) if name.endswith(".db")}


def _ready(base):
    """Whether gunicorn answers ``/readyz`` with 200 (its processes may still be booting)."""
    try:
        return requests.get(base + "/readyz", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def _metrics_dir(output):
    """The metrics directory gunicorn's master announced, or None."""
    for line in output.splitlines():
        if "metrics of the worker processes in " in line:
            return line.rsplit(" in ", 1)[1].strip()
    return None


# The Grafana dashboard ---------------------------------------------------------------------------


def test_the_grafana_dashboard_reads_only_metrics_we_expose():
    with open(os.path.join(ROOT, "docs", "grafana", "mail-service.json"), encoding="utf-8") as f:
        dashboard = json.load(f)
    assert dashboard["uid"] and dashboard["panels"]
    variables = {item["name"]: item for item in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    exposed = ""
    for module in ("metrics.py", "metric_families.py", "worker_metrics.py"):
        with open(os.path.join(ROOT, "mailer", module), encoding="utf-8") as f:
            exposed += f.read()
    used = set()
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            used |= set(re.findall(r"\bmail_[a-z_]+", target["expr"]))
    bare = {re.sub(r"_(bucket|count|sum)$", "", name) for name in used}

    def defined(name):  # a counter family may be named without its _total
        return f'"{name}"' in exposed or f'"{name.removesuffix("_total")}"' in exposed

    assert bare and all(defined(name) for name in bare), sorted(
        name for name in bare if not defined(name)
    )


def test_gunicorn_removes_the_metrics_dir_of_a_killed_master(tmp_path, database_url):
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()  # its pid names no running process now
    orphan = tempfile.mkdtemp(prefix=f"mail-service-metrics-{finished.pid}-")
    open(os.path.join(orphan, "counter_1.db"), "wb").close()
    server = Gunicorn(gunicorn_env(tmp_path, database_url, PROMETHEUS_MULTIPROC_DIR=None))
    try:
        wait_for(lambda: _metrics_dir(server.output), 30, message="gunicorn's metrics dir")
        assert not os.path.exists(orphan)
    finally:
        server.stop()
