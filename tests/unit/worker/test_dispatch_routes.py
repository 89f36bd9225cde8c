"""``Dispatcher.plan`` orders each claimed mail's providers by its route, and puts the providers
the ``demoted`` hook names for its recipient domain last. No provider here is capped or has a
breaker row, so every one is usable and no plan needs the database."""

from collections import Counter

from mailer.config import load_config
from mailer.worker.circuit import Breakers
from mailer.worker.dispatch import Dispatcher
from providers import build_providers


def dispatcher(demoted=None, **settings):
    """A dispatcher over Mailgun and SendGrid with ``settings``, every provider usable."""
    config = load_config(overrides={"PROVIDERS": "mailgun,sendgrid", **settings}, environ={})
    providers = build_providers(config)
    breakers = Breakers(None, [provider.name for provider in providers])
    extra = {} if demoted is None else {"demoted": demoted}
    return Dispatcher(None, providers, breakers, config, **extra)


def rows(*recipients):
    """Claimed rows, one per first ``to`` recipient."""
    return [{"id": index, "to_address": [to]} for index, to in enumerate(recipients)]


def orders(jobs):
    """Each job's mail id, route name and provider names."""
    return [(row["id"], row["route"].name, [p.name for p in order]) for row, order in jobs]


def test_a_routed_domain_takes_its_route_and_other_mail_takes_providers():
    plan = dispatcher(PROVIDER_ROUTES="hotmail.com outlook.com=sendgrid,mailgun")
    jobs, held = plan.plan(rows("a@Hotmail.com", "Bob <b@example.com>", "c@outlook.com"))
    assert held == []
    assert sorted(orders(jobs)) == [
        (0, "hotmail.com", ["sendgrid", "mailgun"]),
        (1, "default", ["mailgun", "sendgrid"]),
        (2, "outlook.com", ["sendgrid", "mailgun"]),
    ]


def test_the_demoted_providers_of_a_domain_go_last_for_that_domain_only():
    asked = []

    def demoted(domain):
        asked.append(domain)
        return frozenset({"mailgun"}) if domain == "blocked.example" else frozenset()

    plan = dispatcher(demoted)
    mails = rows("a@blocked.example", "b@other.example", "c@BLOCKED.example")
    assert sorted(orders(plan.plan(mails)[0])) == [
        (0, "default", ["sendgrid", "mailgun"]),
        (1, "default", ["mailgun", "sendgrid"]),
        (2, "default", ["sendgrid", "mailgun"]),
    ]
    assert asked == ["blocked.example", "other.example"]  # once per domain and claim


def test_demoted_applies_within_a_route_and_changes_nothing_for_a_route_of_one():
    plan = dispatcher(
        lambda domain: frozenset({"sendgrid"}),
        PROVIDER_ROUTES="hotmail.com=sendgrid,mailgun; gmail.com=sendgrid",
    )
    assert sorted(orders(plan.plan(rows("a@hotmail.com", "b@gmail.com"))[0])) == [
        (0, "hotmail.com", ["mailgun", "sendgrid"]),
        (1, "gmail.com", ["sendgrid"]),
    ]


def test_weighted_spreads_by_the_weights_within_a_route_and_a_demoted_one_is_never_first():
    plan = dispatcher(
        PROVIDER_ROUTES="hotmail.com=sendgrid,mailgun",
        PROVIDER_STRATEGY="weighted",
        PROVIDER_WEIGHTS="mailgun:1,sendgrid:3",
    )
    jobs, _ = plan.plan(rows(*["a@hotmail.com"] * 40))
    assert Counter(order[0].name for _, order in jobs) == {"sendgrid": 30, "mailgun": 10}
    plan.demoted = lambda domain: frozenset({"sendgrid"})
    jobs, _ = plan.plan(rows(*["a@hotmail.com"] * 40))
    assert {tuple(p.name for p in order) for _, order in jobs} == {("mailgun", "sendgrid")}
