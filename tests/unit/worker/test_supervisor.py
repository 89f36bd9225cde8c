"""How many worker processes ``WORKER_PROCESSES`` and ``--processes`` ask for."""

import os

import pytest

from mailer.config import load_config
from mailer.worker.supervisor import describe_exit, processes_wanted


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
