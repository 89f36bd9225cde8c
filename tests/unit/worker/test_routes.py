"""``PROVIDER_ROUTES``: how the setting reads, what it refuses, and which lane a mail takes."""

import pytest

from mailer.config import load_config
from mailer.worker.routes import DEFAULT, Lane, Routes


def routes(setting, providers="mailgun,sendgrid", usable=None):
    """The routes of ``setting`` with ``PROVIDERS`` ``providers``."""
    config = load_config(overrides={"PROVIDER_ROUTES": setting, "PROVIDERS": providers}, environ={})
    return Routes.from_config(config, usable)


def test_each_domain_of_a_route_takes_its_providers_in_order_and_the_rest_takes_providers():
    found = routes("outlook.com Hotmail.COM  live.com=sendgrid, mailgun ; gmail.com=mailgun;")
    assert found.lane_of("ann@hotmail.com") == Lane("hotmail.com", ("sendgrid", "mailgun"))
    assert found.lane_of("Ann <ann@Outlook.Com>") == Lane("outlook.com", ("sendgrid", "mailgun"))
    assert found.lane_of("bob@gmail.com") == Lane("gmail.com", ("mailgun",))
    # Whole domains only: a subdomain is another domain.
    assert found.lane_of("carl@mail.gmail.com") == Lane(DEFAULT, ("mailgun", "sendgrid"))
    assert found.lane_of(None) == found.default
    assert str(found.lane_of("ann@live.com")) == "live.com (sendgrid, mailgun)"
    assert [lane.name for lane in found.lanes()] == [
        "outlook.com",
        "hotmail.com",
        "live.com",
        "gmail.com",
        DEFAULT,
    ]


def test_no_setting_no_routes():
    found = routes("  ")
    assert not found
    assert found.lane_of("ann@hotmail.com") == Lane(DEFAULT, ("mailgun", "sendgrid"))


def test_an_unconfigured_provider_leaves_its_routes_and_providers():
    found = routes("gmail.com=sendgrid,mailgun", usable=["mailgun"])
    assert found.lane_of("a@gmail.com").providers == ("mailgun",)
    assert found.default.providers == ("mailgun",)
    with pytest.raises(ValueError, match="PROVIDER_ROUTES: no provider of the route of gmail.com"):
        routes("gmail.com=sendgrid", usable=["mailgun"])


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("gmail.com mailgun", "'gmail.com mailgun' is not domains=providers"),
        ("gmail.com=mailgun=sendgrid", "is not domains=providers"),
        ("=mailgun", "'=mailgun' names no domain"),
        ("ann@gmail.com=mailgun", "'ann@gmail.com' in 'ann@gmail.com=mailgun' is not a domain"),
        ("gmail..com=mailgun", "is not a domain"),
        ("gmail.com, yahoo.com=mailgun", "is not a domain"),
        ("gmail.com=", "the route of gmail.com names no provider"),
        ("gmail.com= , ", "the route of gmail.com names no provider"),
        (
            "gmail.com=mailgun; yahoo.com GMAIL.com=sendgrid",
            "gmail.com is in two routes",
        ),
        (
            "gmail.com=ses,mailgun",
            "the route of gmail.com names ses, which is not in PROVIDERS (mailgun, sendgrid)",
        ),
        ("gmail.com=mailgun,mailgun", "the route of gmail.com names mailgun twice"),
    ],
)
def test_a_route_that_cannot_work_is_refused_naming_the_setting_and_the_part(setting, message):
    with pytest.raises(ValueError) as refused:
        routes(setting)
    assert str(refused.value).startswith("setting PROVIDER_ROUTES: ")
    assert message in str(refused.value)
