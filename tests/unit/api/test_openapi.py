"""The outcomes the OpenAPI document lists are those of the provider errors and attempts."""

from mailer import vocabulary
from providers import base


def error_classes(cls):
    """``cls`` and every subclass of it that is loaded, wherever it is defined."""
    return [cls, *(sub for child in cls.__subclasses__() for sub in error_classes(child))]


def test_outcomes_cover_every_provider_error():
    outcomes = {cls.outcome for cls in error_classes(base.ProviderError)}
    assert outcomes | {"sent"} == set(vocabulary.ANSWER_OUTCOMES)
    assert len(vocabulary.ANSWER_OUTCOMES) == len(set(vocabulary.ANSWER_OUTCOMES))
    assert vocabulary.ATTEMPT_OUTCOMES == [
        *vocabulary.ANSWER_OUTCOMES,
        "lease_expired",
        "retried",
        "cancelled",
        "released",
        "send_now",
        "resent",
        "resent_from",
    ]
