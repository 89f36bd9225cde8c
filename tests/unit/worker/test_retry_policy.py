"""The retry policy: how long a mail waits after a failed delivery, and when retrying stops."""

from datetime import UTC, datetime, timedelta

import pytest

from mailer.worker.retry import RetryPolicy

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
POLICY = RetryPolicy(max_attempts=8, max_age=86400.0, base=30.0, cap=3600.0)
SAMPLES = 500  # enough draws for the jitter to come near both ends of its range


def delays(policy, attempts):
    """Many draws of the jittered delay after the ``attempts``-th failure."""
    return [policy.delay(attempts) for _ in range(SAMPLES)]


@pytest.mark.parametrize(
    "attempts, ceiling",
    [
        (0, 30.0),  # never below the base, even for a nonsensical count
        (1, 30.0),
        (2, 60.0),
        (3, 120.0),
        (5, 480.0),
        (7, 1920.0),
        (8, 3600.0),  # 3840 would pass the cap
        (30, 3600.0),
        (200, 3600.0),  # no overflow from a huge exponent
    ],
)
def test_delay_is_between_half_and_all_of_the_doubling_ceiling(attempts, ceiling):
    drawn = delays(POLICY, attempts)
    assert all(ceiling / 2 <= delay <= ceiling for delay in drawn)


def test_delay_is_jittered_so_failed_mails_do_not_retry_in_step():
    drawn = delays(POLICY, 3)
    assert len(set(drawn)) > SAMPLES / 2
    # Spread over the range, not bunched at one end.
    assert min(drawn) < 70.0 and max(drawn) > 110.0


def test_delay_cap_below_the_base_wins():
    assert all(5.0 <= delay <= 10.0 for delay in delays(RetryPolicy(base=30.0, cap=10.0), 1))


@pytest.mark.parametrize(
    "attempts, exhausted", [(0, False), (1, False), (7, False), (8, True), (9, True)]
)
def test_exhausted_after_max_attempts(attempts, exhausted):
    assert POLICY.exhausted(attempts, timedelta(minutes=5).total_seconds()) is exhausted


@pytest.mark.parametrize(
    "age, exhausted",
    [
        (timedelta(0), False),
        (timedelta(hours=23, minutes=59, seconds=59), False),
        (timedelta(days=1), True),  # MAX_AGE reached exactly
        (timedelta(days=3), True),
    ],
)
def test_exhausted_once_older_than_max_age(age, exhausted):
    assert POLICY.exhausted(1, age.total_seconds()) is exhausted
