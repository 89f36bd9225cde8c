"""How many worker processes ``WORKER_PROCESSES`` and ``--processes`` ask for."""

import os
import subprocess
import sys

import pytest

from mailer.config import load_config
from mailer.worker.supervisor import describe_exit, processes_wanted

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def test_a_count_is_taken_as_it_is():
    assert processes_wanted(1) == 1
    assert processes_wanted(3) == 3


def test_zero_is_one_per_core_this_process_may_use():
    assert processes_wanted(0) == len(os.sched_getaffinity(0))


def test_a_negative_count_names_the_setting():
    with pytest.raises(ValueError, match="setting WORKER_PROCESSES: -1 is not 0"):
        processes_wanted(-1)


@pytest.mark.parametrize(("value", "expected"), [("", 0), ("  ", 0), ("0", 0), ("4", 4)])
def test_the_setting_empty_is_zero(value, expected):
    assert load_config(environ={"WORKER_PROCESSES": value})["WORKER_PROCESSES"] == expected


def test_the_setting_defaults_to_one_per_core():
    assert load_config(environ={})["WORKER_PROCESSES"] == 0


def test_a_child_exit_is_described_by_code_or_signal():
    assert describe_exit(1) == "exited 1"
    assert describe_exit(-9) == "was killed by SIGKILL"


def supervise(child_code, count=2, burst=True):
    """Run a ``Supervisor`` of ``count`` children running ``child_code`` (Python) in a process
    of its own (it installs signal handlers), its pauses shortened; (exit code, its log)."""
    script = f"""
import logging, sys
from mailer.worker import supervisor
logging.basicConfig(level=logging.INFO, format="%(message)s")
supervisor.RESTART_DELAY = 0.01
argv = [sys.executable, "-c", {child_code!r}]
sys.exit(supervisor.Supervisor(argv, {count}, lambda number: None, burst={burst}).run())
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    return result.returncode, result.stderr


def test_a_burst_run_ends_when_every_child_is_done():
    code, log = supervise("import sys; sys.exit(0)")
    assert code == 0
    assert log.count("started (pid") == 2
    assert log.count("is done") == 2


def test_a_burst_run_gives_up_on_a_child_that_keeps_dying():
    code, log = supervise("import sys; sys.exit(1)", count=1)
    assert code == 1
    assert log.count("started (pid") == 5
    assert "exited 1: starting another" in log
    assert "exited 1, 5 times in a row: stopping" in log


def test_a_child_that_cannot_start_ends_the_run_with_its_code():
    code, log = supervise("import sys; sys.exit(2)", count=2, burst=False)
    assert code == 2
    assert "could not start" in log
