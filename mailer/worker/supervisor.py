"""Several worker processes under one supervisor: ``mail_service.py --processes N``.

One worker process sends on one core at most (Python runs one thread at a time), so a host with
more cores runs more of them. The supervisor starts ``N`` children, each today's worker
(``mail_service.py --processes 1``, with its own heartbeat row and name), and then only watches
them. A child that dies (killed, crashed, out of memory) is started again: at once if it had run
for a while, otherwise after a pause that doubles while it keeps dying young (0.5 s up to 30 s),
so a child that cannot start does not spin. Mail it had claimed comes back when its lease
expires, as for any worker that dies.

SIGTERM, SIGINT or SIGHUP to the supervisor is passed on to every child as SIGTERM: each stops
as a lone worker does (it finishes its sends in flight, records them and hands back the mail it
had not started), and once all have exited the supervisor exits 0. With ``--burst`` each child
exits once nothing is due, and the supervisor once they all have (or, exit code 1, once a
child died young five times in a row: a run that must end does not restart it forever).

A child that exits 2 had a setup problem (a schema the code does not know, say) that a restart
would only repeat: the supervisor stops the others and exits 2. On Linux a child is also sent
SIGTERM if the supervisor itself dies without stopping it (SIGKILL, say), so it leaves no
orphan.
"""

import ctypes
import logging
import os
import select
import signal
import subprocess
import time

log = logging.getLogger("mail_service.supervisor")

RESTART_DELAY = 0.5  # seconds before restarting a child that died young; doubles each time
RESTART_DELAY_CAP = 30.0  # seconds: the longest pause before a restart
STEADY_AFTER = 30.0  # seconds: a child that ran this long is restarted at once
CHECK_INTERVAL = 1.0  # seconds between looks at the children when no signal says to look
SETUP_PROBLEM = 2  # a worker's exit code for a setup problem (see mail_service.main)
BURST_TRIES = 5  # with --burst: a child that dies young this many times in a row ends the run
FAILED = 1  # the supervisor's exit code when a --burst run gave up
PR_SET_PDEATHSIG = 1  # prctl(2): the signal a child gets when its parent dies


def processes_wanted(setting):
    """How many worker processes a ``WORKER_PROCESSES`` (or ``--processes``) value asks for:
    0 means one per core this process may run on."""
    if setting < 0:
        raise ValueError(f"setting WORKER_PROCESSES: {setting} is not 0 (one per core) or more")
    if setting:
        return setting
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class Slot:
    """One of the ``N`` places for a child: its process now, and how often it died young."""

    def __init__(self, number):
        self.number = number
        self.process = None
        self.started = 0.0  # monotonic
        self.failures = 0  # deaths in a row, each within STEADY_AFTER of its start
        self.due = 0.0  # monotonic time to start the next child; None: none is wanted
        self.exit_code = None  # of the last child, once it exited


class Supervisor:
    """Runs ``count`` children of ``argv``, restarts those that die, stops them all on a signal.

    ``environ(number)`` is the environment of the child in slot ``number`` (0 to count - 1).
    """

    def __init__(self, argv, count, environ, burst=False):
        self.argv = list(argv)
        self.slots = [Slot(number) for number in range(count)]
        self.environ = environ
        self.burst = burst
        self.stopping = False
        self.code = 0
        self._wakeup = None  # the pipe's ends: (read, write), written to by signals

    def run(self):
        """Start the children and watch them until stopped; the exit code (0, 1 or 2)."""
        self._install_signal_handlers()
        log.info("starting %d worker processes", len(self.slots))
        try:
            while not self.stopping:
                self._collect_exits()
                if self.burst and all(slot.due is None for slot in self.slots):
                    break  # every child is done
                self._start_due()
                self._sleep(self._next_look())
            self._stop_children()
        finally:
            signal.set_wakeup_fd(-1)
            for end in self._wakeup:
                os.close(end)
        return self.code

    def stop(self, *_signal_args):
        """Stop every child, then return from ``run`` (a signal handler: sets a flag only)."""
        self.stopping = True

    def _install_signal_handlers(self):
        """SIGTERM, SIGINT, SIGHUP stop; SIGCHLD (a child exited) wakes the loop at once.

        Each signal also wakes ``_sleep``: Python writes its number to the pipe of
        ``signal.set_wakeup_fd`` as it arrives. Setting a ``threading.Event`` in a handler
        instead would deadlock when the signal lands while this thread holds the Event's lock
        inside its ``wait``.
        """
        self._wakeup = os.pipe()
        for end in self._wakeup:
            os.set_blocking(end, False)
        signal.set_wakeup_fd(self._wakeup[1])
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self.stop)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so that it reaches the pipe

    def _sleep(self, seconds):
        """Wait up to ``seconds``, less if a signal comes; empty the pipe it wrote to."""
        select.select([self._wakeup[0]], [], [], seconds)
        try:
            while os.read(self._wakeup[0], 512):
                pass
        except BlockingIOError:
            pass

    def _start_due(self):
        """Start a child in each empty slot whose time has come."""
        now = time.monotonic()
        for slot in self.slots:
            if slot.process is None and slot.due is not None and slot.due <= now:
                self._start(slot)

    def _start(self, slot):
        """Start the child of ``slot``."""
        slot.process = subprocess.Popen(
            self.argv, env=self.environ(slot.number), preexec_fn=_die_with_parent(os.getpid())
        )
        slot.started = time.monotonic()
        log.info("worker process %d started (pid %d)", slot.number, slot.process.pid)

    def _collect_exits(self):
        """Note each child that exited, and when its slot starts the next one (or not)."""
        for slot in self.slots:
            if slot.process is None or slot.process.poll() is None:
                continue
            code, pid = slot.process.returncode, slot.process.pid
            slot.process, slot.exit_code = None, code
            if self.burst and code == 0:
                slot.due = None  # nothing more was due
                log.info("worker process %d (pid %d) is done", slot.number, pid)
            elif code == SETUP_PROBLEM:
                log.error(
                    "worker process %d (pid %d) could not start (see above): stopping",
                    slot.number,
                    pid,
                )
                slot.due, self.code = None, SETUP_PROBLEM
                self.stopping = True
            else:
                self._plan_restart(slot, pid, code)

    def _plan_restart(self, slot, pid, code):
        """Start ``slot`` again: at once after a long run, else after a growing pause; with
        ``--burst``, give up after ``BURST_TRIES`` deaths in a row (a run that must end)."""
        if time.monotonic() - slot.started >= STEADY_AFTER:
            slot.failures = 0
        if self.burst and slot.failures + 1 >= BURST_TRIES:
            log.error(
                "worker process %d (pid %d) %s, %d times in a row: stopping",
                slot.number,
                pid,
                describe_exit(code),
                BURST_TRIES,
            )
            slot.due, self.code, self.stopping = None, FAILED, True
            return
        delay = 0.0 if not slot.failures else RESTART_DELAY * 2 ** (slot.failures - 1)
        delay = min(delay, RESTART_DELAY_CAP)
        slot.failures += 1
        slot.due = time.monotonic() + delay
        log.warning(
            "worker process %d (pid %d) %s: starting another in %.1fs",
            slot.number,
            pid,
            describe_exit(code),
            delay,
        )

    def _next_look(self):
        """Seconds until the loop must look again: the next due start, or CHECK_INTERVAL."""
        now = time.monotonic()
        waits = [
            slot.due - now for slot in self.slots if slot.process is None and slot.due is not None
        ]
        return max(0.0, min([CHECK_INTERVAL, *waits]))

    def _stop_children(self):
        """SIGTERM to every child still running, then wait for each (they stop gracefully)."""
        running = [slot for slot in self.slots if slot.process is not None]
        if running:
            log.info("stopping %d worker processes", len(running))
        for slot in running:
            _signal(slot.process, signal.SIGTERM)
        for slot in running:
            code = slot.process.wait()
            if code not in (0, -signal.SIGTERM) and not self.code:
                log.warning("worker process %d %s while stopping", slot.number, describe_exit(code))
        log.info("all worker processes stopped")


def _signal(process, signum):
    """Send ``signum`` to ``process`` unless it has exited."""
    try:
        process.send_signal(signum)
    except ProcessLookupError:
        pass


def describe_exit(code):
    """How a child ended, from ``Popen.returncode``: ``exited 1``, ``was killed by SIGKILL``."""
    if code is not None and code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited {code}"


def _die_with_parent(parent):
    """A ``preexec_fn``: on Linux, ask for SIGTERM when the parent dies (prctl
    PR_SET_PDEATHSIG), and end at once if it died already; elsewhere nothing."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux
        return None

    def ask():
        """In the child, between fork and exec."""
        prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the request was made
            os._exit(1)

    return ask
