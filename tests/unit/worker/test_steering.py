"""The guard's rule (``steers``): no database, no process. A mail's order with the steered
providers last is tested with the dispatcher's hook (test_dispatch_routes.py)."""

import pytest

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
