"""The guard's rule (``steers``), and a mail's order with the steered providers last
(``Dispatcher.demote``): no database, no process."""

from types import SimpleNamespace

import pytest

from mailer.worker.dispatch import Dispatcher, recipient_domain
from mailer.worker.steering import steers

MIN_EVENTS, MAX_RATE = 50, 0.2


@pytest.mark.parametrize(
    ("failed", "events", "steered"),
    [
        (31, 120, True),  # 25.8%: over the threshold, enough outcomes
        (10, 50, False),  # exactly 20%: not over
        (11, 50, True),  # 22%
        (49, 49, False),  # every one failed, but too few to judge
        (0, 500, False),
        (0, 0, False),
    ],
)
def test_a_pair_is_steered_with_enough_outcomes_and_too_many_failed(failed, events, steered):
    assert steers(failed, events, False, MIN_EVENTS, MAX_RATE) is steered


@pytest.mark.parametrize(
    ("failed", "events", "stays"),
    [
        (5, 8, True),  # few outcomes left in the window, still failing: stays put last
        (2, 10, False),  # back to the threshold: comes back
        (1, 40, False),
        (0, 0, False),  # its outcomes left the window
    ],
)
def test_a_steered_pair_comes_back_once_its_share_is_back_to_the_threshold(failed, events, stays):
    assert steers(failed, events, True, MIN_EVENTS, MAX_RATE) is stays


@pytest.mark.parametrize("already", [False, True])
def test_a_max_failure_rate_of_1_steers_nothing(already):
    assert steers(120, 120, already, MIN_EVENTS, 1.0) is False


def provider(name):
    """A stand-in provider: the dispatcher only reads its name."""
    return SimpleNamespace(name=name)


MAILGUN, SENDGRID, SES = provider("mailgun"), provider("sendgrid"), provider("ses")
CONFIG = {"PROVIDER_STRATEGY": "failover", "PROVIDER_WEIGHTS": {}, "PROVIDER_RATE_LIMITS": {}}


def dispatcher(demoted):
    """A dispatcher of three providers whose ``demoted`` hook is ``demoted``."""
    return Dispatcher(None, [MAILGUN, SENDGRID, SES], None, CONFIG, demoted=demoted)


def test_the_steered_providers_go_last_for_their_domain_only():
    steered = {"outlook.com": frozenset({"mailgun"})}
    plan = dispatcher(lambda domain: steered.get(domain, frozenset()))
    order = [MAILGUN, SENDGRID, SES]
    outlook = {"to_address": ["Ann <ann@Outlook.COM>", "bob@gmail.com"]}
    gmail = {"to_address": ["bob@gmail.com", "ann@outlook.com"]}
    assert plan.demote(outlook, order) == [SENDGRID, SES, MAILGUN]
    assert plan.demote(gmail, order) == [MAILGUN, SENDGRID, SES]


def test_several_steered_providers_keep_their_order_at_the_end():
    plan = dispatcher(lambda domain: frozenset({"ses", "mailgun"}))
    assert plan.demote({"to_address": ["a@x.org"]}, [MAILGUN, SENDGRID, SES]) == [
        SENDGRID,
        MAILGUN,
        SES,
    ]


def test_without_the_hook_nothing_moves():
    plan = Dispatcher(None, [MAILGUN, SENDGRID], None, CONFIG)
    assert plan.demote({"to_address": ["a@x.org"]}, [MAILGUN, SENDGRID]) == [MAILGUN, SENDGRID]


def test_the_domain_is_the_first_to_address_lower_case():
    assert recipient_domain({"to_address": ['"Ann" <ann@Mail.Example.COM>']}) == (
        "mail.example.com"
    )
    assert recipient_domain({"to_address": []}) == ""
