"""The process supervisor: relayed and logged output, a dead child found, stubborn ones killed."""

import io
import signal
import sys
import time

import pytest
from helpers import alive, wait_for

from devkit.processes import Supervisor

PYTHON = sys.executable


def test_relays_output_behind_the_name_and_finds_the_dead_child():
    out = io.StringIO()
    supervisor = Supervisor(out=out, hide=["s3cret"])
    talker = supervisor.start("talker", [PYTHON, "-c", "print('hello'); print('key s3cret')"])
    sleeper = supervisor.start("sleeper", [PYTHON, "-c", "import time; time.sleep(60)"])
    wait_for(lambda: supervisor.dead() is talker, timeout=60, message="the talker to exit")
    supervisor.stop_all()
    assert "talker  | hello\n" in out.getvalue()
    assert "key ***" in talker.tail() and "s3cret" not in out.getvalue()
    assert sleeper.describe_exit() == "killed by SIGTERM"
    assert supervisor.children == [] and supervisor.dead() is None


def test_writes_output_to_a_log_file(tmp_path):
    supervisor = Supervisor()
    child = supervisor.start(
        "logger", [PYTHON, "-c", "print('to the file')"], log_path=tmp_path / "logger.log"
    )
    assert supervisor.wait(child, timeout=60) == 0
    assert child.output() == "to the file\n"
    sleeper = supervisor.start(
        "sleeper",
        [PYTHON, "-c", "print('zzz', flush=True); import time; time.sleep(60)"],
        log_path=tmp_path / "sleeper.log",
    )
    wait_for(lambda: "zzz" in sleeper.output(), timeout=60, message="the sleeper to start")
    with pytest.raises(TimeoutError, match="sleeper did not finish within 0.2s"):
        supervisor.wait(sleeper, timeout=0.2)
    assert sleeper.poll() == -signal.SIGTERM


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace_period():
    out = io.StringIO()
    supervisor = Supervisor(out=out, grace=0.5)
    stubborn = supervisor.start(
        "stubborn",
        [
            PYTHON,
            "-c",
            (
                "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                "print('ready', flush=True); time.sleep(60)"
            ),
        ],
    )
    wait_for(lambda: "ready" in stubborn.output(), timeout=60, message="the child to start")
    started = time.monotonic()
    supervisor.stop(stubborn)
    assert time.monotonic() - started < 30  # the child would sleep for 60 s
    assert stubborn.poll() == -signal.SIGKILL
    assert "stubborn did not stop within 0.5s: killing it" in out.getvalue()


def test_own_groups_stop_the_childs_children_too(tmp_path):
    supervisor = Supervisor(own_groups=True)
    # A parent that starts a grandchild, as gunicorn starts its workers.
    parent = supervisor.start(
        "parent",
        [
            PYTHON,
            "-c",
            (
                "import subprocess, sys, time; "
                "grandchild = subprocess.Popen("
                "[sys.executable, '-c', 'import time; time.sleep(60)']); "
                "print(grandchild.pid, flush=True); time.sleep(60)"
            ),
        ],
        log_path=tmp_path / "parent.log",
    )
    wait_for(lambda: parent.output().strip(), timeout=60, message="the grandchild's pid")
    grandchild = int(parent.output())
    supervisor.stop(parent)
    wait_for(lambda: not alive(grandchild), timeout=60, message="the grandchild to be stopped")
