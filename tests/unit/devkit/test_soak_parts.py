"""The soak's parts that need neither a database nor a process: how the mails are split and
spread over the run, how the clients are held back, how CPU is counted while processes come and
go, and when a lag counts as growing."""

import threading
from collections import Counter

from devkit.bench.soak.clients import Gate, address, plan
from devkit.bench.soak.results import LAGS, growth
from devkit.bench.soak.watch import CpuMeter


def test_plan_splits_the_mails_90_9_1_and_spreads_each_way_over_the_run():
    units = plan(100_000, 1_000)
    mails = Counter()
    for unit in units:
        mails[unit.way] += unit.count
    assert mails == {"batch": 90_000, "single": 9_000, "smtp": 1_000}
    batches = [unit for unit in units if unit.way == "batch"]
    assert all(unit.count == 1_000 for unit in batches)
    assert sum(unit.templated for unit in batches) == 45  # every other batch
    # Every mail has a number of its own, hence an address of its own.
    numbers = [unit.first + n for unit in units for n in range(unit.count)]
    assert sorted(numbers) == list(range(100_000))
    assert len({address(n) for n in numbers}) == 100_000
    # Each way's mails are spread over the run: by the middle, about half of each went in.
    first_half = Counter()
    for unit in units[: len(units) // 2]:
        first_half[unit.way] += unit.count
    for way, total in mails.items():
        assert 0.4 * total <= first_half[way] <= 0.6 * total


def test_plan_of_a_size_that_is_no_round_number():
    units = plan(2_345, 1_000)
    assert sum(unit.count for unit in units) == 2_345
    assert [unit.count for unit in units if unit.way == "batch"] == [
        1_000,
        1_000,
        110,
    ]  # 90% of 2,345, rounded


def test_the_gate_holds_back_while_the_backlog_is_full():
    gate = Gate(3_000, threading.Event())
    assert gate.enter(1_000) and gate.enter(1_000) and gate.enter(1_000)
    entered = threading.Event()
    threading.Thread(target=lambda: gate.enter(1_000) and entered.set(), daemon=True).start()
    assert not entered.wait(0.3)  # 3,000 submitted, none taken yet
    before = gate.reading()
    gate.observe(before, 1_500)  # the workers took half
    assert entered.wait(10)


def test_the_gate_counts_what_was_submitted_after_the_reading_began():
    gate = Gate(2_000, threading.Event())
    before = gate.reading()  # the reading begins ...
    assert gate.enter(1_000) and gate.enter(1_000)  # ... mails go in meanwhile ...
    gate.observe(before, 0)  # ... and it saw none of them: they still count
    entered = threading.Event()
    threading.Thread(target=lambda: gate.enter(1) and entered.set(), daemon=True).start()
    assert not entered.wait(0.3)


def test_the_gate_lets_a_unit_bigger_than_the_backlog_through_an_empty_queue():
    gate = Gate(500, threading.Event())
    assert gate.enter(1_000)


def test_a_stopped_gate_lets_nobody_through():
    stopping = threading.Event()
    gate = Gate(1, stopping)
    assert gate.enter(1)
    stopping.set()
    assert gate.enter(1) is False


def test_cpu_counts_from_the_start_and_new_processes_from_theirs():
    meter = CpuMeter()
    meter.read({("api", 1): 10.0, ("postgres", 7): 3.0})
    meter.read({("api", 1): 12.0, ("postgres", 7): 4.0, ("postgres", 8): 0.5})  # 8 is new
    meter.read({("api", 1): 13.0, ("postgres", 8): 0.7, ("postgres", 7): None})  # 7 ended
    assert meter.used() == {"api": 3.0, "postgres": 1.0 + 0.7}


def lags(values):
    """Lag rows whose every stage's p50 is the next of ``values``."""
    return [{"t": n, "mails": 1, **{name: [v, v] for name in LAGS}} for n, v in enumerate(values)]


def test_a_lag_that_keeps_rising_grows_and_a_steady_one_does_not():
    rising = growth(lags([1.0 + n for n in range(40)]))
    assert rising["event recorded"]["grows"] is True
    steady = growth(lags([1.5, 1.6, 1.4, 1.5] * 10))
    assert steady["event recorded"]["grows"] is False
    # Half a second more is noise, however many times more it is.
    small = growth(lags([0.05] * 20 + [0.4] * 20))
    assert small["queue wait"]["grows"] is False
    assert growth(lags([1.0]))["queue wait"]["grows"] is None  # too short to say
