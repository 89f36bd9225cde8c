"""Issue 12 across processes: two workers share the rate caps, and together they near their sum."""

import pytest
from conftest import start_worker_process
from helpers import (
    arrival_times,
    busiest_second,
    mail_rows,
    queue_mails,
    rate_takes,
    statuses,
    wait_for,
)

from mailer.worker import ratecap

pytestmark = [pytest.mark.slow, pytest.mark.committed]


def test_caps_hold_across_two_workers_and_the_total_nears_their_sum(settings, sandbox, app):
    url = settings["DATABASE_URL"]
    # Caps far below what two workers send on any machine, however busy, so that the rate is
    # the caps' and not the machine's: 28/s together, for about seven seconds.
    caps = {"mailgun": 20, "sendgrid": 8}
    count = 196
    queue_mails(url, count)
    sandbox.configure("mailgun", latency_ms=10)
    sandbox.configure("sendgrid", latency_ms=10)
    limits = ",".join(f"{name}:{rate}" for name, rate in caps.items())
    with rate_takes(url) as takes:
        workers = [
            start_worker_process(settings, PROVIDER_RATE_LIMITS=limits, POLL_INTERVAL=0.2)
            for _ in range(2)
        ]
        try:
            wait_for(
                lambda: statuses(url).get("sent", 0) == count,
                timeout=60,
                message="every mail to be sent",
            )
        finally:
            for worker in workers:
                worker.terminate()
                worker.communicate(timeout=30)
        drawn = takes()
    # The caps hold however the two workers were scheduled: in no second did they draw more
    # than a cap and a full bucket between them, and each mail sent had drawn its token.
    for name, cap in caps.items():
        busiest = busiest_second(drawn[name])
        assert busiest <= cap + ratecap.burst(cap), (name, busiest)
        assert sum(tokens for _, tokens in drawn[name]) >= len(sandbox.messages(name))
    times = sorted(arrival_times(sandbox, "mailgun") + arrival_times(sandbox, "sendgrid"))
    rate = (len(times) - 1) / (times[-1] - times[0])
    assert rate >= 0.8 * sum(caps.values()), rate
    assert all(row["attempts"] == 1 for row in mail_rows(url).values())
