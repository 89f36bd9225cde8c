"""The circuit breaker's pure transitions: what a worker may do, and what one failure changes."""

from datetime import UTC, datetime, timedelta

import pytest

from mailer.worker.circuit import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    PROBE,
    SKIP,
    USE,
    failure_transition,
    mode_of,
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
EARLIER = NOW - timedelta(seconds=1)
LATER = NOW + timedelta(seconds=1)
THRESHOLD, COOLDOWN, CAP = 5, 30.0, 600.0


def breaker(state=CLOSED, **fields):
    """A breaker row as the ``provider_state`` table holds it."""
    return {
        "state": state,
        "consecutive_failures": 0,
        "cooldown": 0.0,
        "open_until": None,
        "probe_until": None,
        "paused_until": None,
        **fields,
    }


def fail(row):
    """The new values of ``row`` after one more transient failure, with the default settings."""
    return failure_transition(row, NOW, THRESHOLD, COOLDOWN, CAP)


# --- mode_of ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "row, mode",
    [
        (breaker(CLOSED), USE),
        (breaker(CLOSED, consecutive_failures=4), USE),
        (breaker(OPEN, open_until=LATER), SKIP),  # cooling down
        (breaker(OPEN, open_until=NOW), PROBE),  # the cool-down ends exactly now
        (breaker(OPEN, open_until=EARLIER), PROBE),
        (breaker(OPEN), PROBE),  # no end recorded: do not stay away for ever
        (breaker(HALF_OPEN, probe_until=LATER), SKIP),  # another worker's probe is in flight
        (breaker(HALF_OPEN, probe_until=EARLIER), PROBE),  # that probe's window is over
        (breaker(HALF_OPEN), PROBE),
    ],
    ids=[
        "closed",
        "closed-counting",
        "open-cooling",
        "open-due-now",
        "open-due",
        "open-no-end",
        "probe-in-window",
        "probe-window-over",
        "half-open-no-window",
    ],
)
def test_mode_of_follows_the_state_and_its_deadline(row, mode):
    assert mode_of(row, NOW) == mode


@pytest.mark.parametrize("state", [CLOSED, OPEN, HALF_OPEN])
def test_a_paused_provider_is_skipped_whatever_its_state(state):
    row = breaker(state, paused_until=LATER, open_until=EARLIER, probe_until=EARLIER)
    assert mode_of(row, NOW) == SKIP


@pytest.mark.parametrize("state", [CLOSED, OPEN, HALF_OPEN])
def test_a_breaker_held_open_by_hand_is_skipped_whatever_its_times(state):
    # No cool-down and no probe window ends an operator's hold: only closing it by hand does.
    row = breaker(state, held_by="admin:ops", open_until=EARLIER, probe_until=EARLIER)
    assert mode_of(row, NOW) == SKIP


def test_a_pause_that_is_over_no_longer_skips():
    assert mode_of(breaker(CLOSED, paused_until=EARLIER), NOW) == USE
    assert mode_of(breaker(CLOSED, paused_until=NOW), NOW) == USE


# --- failure_transition -----------------------------------------------------------------------


@pytest.mark.parametrize("failures", range(THRESHOLD - 1))
def test_failures_under_the_threshold_only_count(failures):
    values = fail(breaker(CLOSED, consecutive_failures=failures))
    assert values == {"consecutive_failures": failures + 1, "updated_at": NOW}


def test_the_threshold_failure_opens_the_breaker_for_the_cooldown():
    values = fail(breaker(CLOSED, consecutive_failures=THRESHOLD - 1))
    assert values == {
        "consecutive_failures": THRESHOLD,
        "updated_at": NOW,
        "state": OPEN,
        "cooldown": COOLDOWN,
        "open_until": NOW + timedelta(seconds=COOLDOWN),
        "probe_until": None,
    }
    assert mode_of({**breaker(CLOSED), **values}, NOW) == SKIP


def test_a_threshold_of_one_opens_at_the_first_failure():
    values = failure_transition(breaker(CLOSED), NOW, 1, COOLDOWN, CAP)
    assert values["state"] == OPEN and values["consecutive_failures"] == 1


def test_a_failure_while_already_open_only_counts():
    # A send that was in flight when another opened the breaker: the cool-down is not extended.
    row = breaker(OPEN, consecutive_failures=THRESHOLD, cooldown=COOLDOWN, open_until=LATER)
    assert fail(row) == {"consecutive_failures": THRESHOLD + 1, "updated_at": NOW}


@pytest.mark.parametrize(
    "cooldown, doubled",
    [
        (COOLDOWN, 2 * COOLDOWN),
        (120.0, 240.0),
        (0.0, 2 * COOLDOWN),  # a row with no cool-down yet starts from the setting
        (10.0, 2 * COOLDOWN),  # nor below it (the setting was raised since)
        (400.0, CAP),  # doubling would pass the cap
        (CAP, CAP),
    ],
)
def test_a_failed_probe_reopens_with_twice_the_cooldown_up_to_the_cap(cooldown, doubled):
    row = breaker(HALF_OPEN, consecutive_failures=THRESHOLD, cooldown=cooldown, probe_until=LATER)
    values = fail(row)
    assert values["state"] == OPEN and values["cooldown"] == doubled
    assert values["open_until"] == NOW + timedelta(seconds=doubled)
    assert values["probe_until"] is None  # the probe is over: the next one waits for open_until
    assert values["consecutive_failures"] == THRESHOLD + 1


def test_repeated_failed_probes_climb_to_the_cap_and_stay_there():
    row = breaker(HALF_OPEN, cooldown=COOLDOWN)
    cooldowns = []
    for _ in range(7):
        row = {**row, **fail(row), "state": HALF_OPEN}  # the next probe, which fails again
        cooldowns.append(row["cooldown"])
    assert cooldowns == [60.0, 120.0, 240.0, 480.0, CAP, CAP, CAP]


def test_failure_transition_leaves_the_row_alone():
    row = breaker(CLOSED, consecutive_failures=THRESHOLD - 1)
    fail(row)
    assert row == breaker(CLOSED, consecutive_failures=THRESHOLD - 1)
