"""Issue 20, section 3 across processes: two workers route mail by its recipient domain, and a
route that cannot work stops a worker at start."""

from collections import Counter

import pytest
from conftest import start_worker_process
from helpers import attempts_of, mail_rows, queue_mails, statuses, wait_for

from mailer.validation.addresses import bare_address

pytestmark = [pytest.mark.slow, pytest.mark.committed]


def test_two_workers_send_routed_mail_through_its_route_and_other_mail_through_providers(
    settings, sandbox, app
):
    url = settings["DATABASE_URL"]
    queue_mails(url, 150, to_address=["Ann <ann@Outlook.com>"])
    queue_mails(url, 150)  # rcpt<n>@example.com
    sandbox.configure("mailgun", latency_ms=20)
    sandbox.configure("sendgrid", latency_ms=20)
    workers = [
        start_worker_process(
            settings,
            PROVIDER_ROUTES="outlook.com hotmail.com=sendgrid,mailgun",
            WORKER_BATCH_SIZE=10,
            POLL_INTERVAL=0.2,
        )
        for _ in range(2)
    ]
    try:
        wait_for(lambda: statuses(url).get("sent", 0) == 300, 90, message="every mail sent")
    finally:
        for worker in workers:
            worker.terminate()
            worker.communicate(timeout=30)
    taken = Counter((row["route"], row["provider"]) for row in mail_rows(url).values())
    assert taken == {("outlook.com", "sendgrid"): 150, ("default", "mailgun"): 150}
    domains = {
        provider: {bare_address(m["to"][0]).partition("@")[2] for m in sandbox.messages(provider)}
        for provider in ("mailgun", "sendgrid")
    }
    assert domains == {"mailgun": {"example.com"}, "sendgrid": {"outlook.com"}}
    assert len(sandbox.messages()) == 300
    # Both workers sent, each along both lanes' rules.
    assert len({attempt["worker"] for attempt in attempts_of(url)}) == 2


def test_a_route_naming_a_provider_not_in_providers_stops_the_worker(settings, app):
    worker = start_worker_process(settings, PROVIDER_ROUTES="gmail.com=sendgrid,ses")
    output, _ = worker.communicate(timeout=30)
    assert worker.returncode == 2
    assert (
        "setting PROVIDER_ROUTES: the route of gmail.com names ses, which is not in PROVIDERS "
        "(mailgun, sendgrid)" in output
    )
