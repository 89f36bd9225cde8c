"""Child processes started by name and stopped together: the quick start's and the benchmark's.

A ``Supervisor`` starts each child with its output either relayed to ours, line by line behind
its name (``api     | ...``), or written to a log file; tells which child has died; and stops
children with SIGTERM, then SIGKILL after a grace period. ``SIGNALS`` turns SIGINT, SIGTERM and
SIGHUP into a ``Stop`` exception in the main thread, held back while a child is being started,
so that every child that was started is one the supervisor knows of and stops.

    supervisor = Supervisor(cwd=ROOT)
    SIGNALS.install()
    try:
        api = supervisor.start("api", [sys.executable, "app.py"], env)
        ...
    except Stop:
        ...
    finally:
        with SIGNALS.ignored():  # a second Ctrl-C must not leave orphans
            supervisor.stop_all()
"""

import collections
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time

STOP_GRACE = 5.0  # seconds between SIGTERM and SIGKILL
TAIL_LINES = 200  # relayed lines kept per child for ``Child.tail``


class Stop(Exception):
    """Raised in the main thread by SIGINT, SIGTERM or SIGHUP once ``SIGNALS`` is installed."""


class StopSignals:
    """Turn SIGINT/SIGTERM/SIGHUP into ``Stop``; ``held()`` defers it to the end of a block."""

    NUMBERS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self):
        self.holding = False
        self.pending = None

    def install(self):
        """Raise ``Stop`` on the signals from now on."""
        for signum in self.NUMBERS:
            signal.signal(signum, self._handle)

    def _handle(self, signum, _frame):
        """The handler: raise now, or remember the signal while held."""
        name = signal.Signals(signum).name
        if self.holding:
            self.pending = self.pending or name
        else:
            raise Stop(name)

    @contextlib.contextmanager
    def held(self):
        """Defer a ``Stop`` during the block and raise it at its end (if nothing else raised)."""
        holding, self.holding = self.holding, True
        try:
            yield
        finally:
            self.holding = holding
        if self.pending and not holding:
            raise Stop(self.pending)

    @contextlib.contextmanager
    def ignored(self):
        """Ignore the signals during the block (while stopping), then handle them as before."""
        previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in self.NUMBERS}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


SIGNALS = StopSignals()  # signal handlers are per process, so there is one of these


class Child:
    """A started child process, by name; its output is relayed or in ``log_path``."""

    def __init__(self, name, process, log_path=None, own_group=False, hide=()):
        self.name = name
        self.process = process
        self.log_path = log_path
        self.own_group = own_group
        self.hide = hide
        self.recent = collections.deque(maxlen=TAIL_LINES)
        self.relay = None  # the thread that copies a relayed child's output

    @property
    def pid(self):
        """The process id."""
        return self.process.pid

    def poll(self):
        """The exit code (negative: killed by that signal), or None while it runs."""
        return self.process.poll()

    def wait(self, timeout=None):
        """Wait until it exits; its exit code. Raises subprocess.TimeoutExpired."""
        return self.process.wait(timeout=timeout)

    def signal(self, signum):
        """Send ``signum`` to it, or to its whole process group when it has one of its own."""
        try:
            if self.own_group:
                os.killpg(self.process.pid, signum)
            elif self.process.poll() is None:
                self.process.send_signal(signum)
        except (ProcessLookupError, PermissionError):
            pass  # it has exited already

    def output(self):
        """All of its output: the log file, or the last relayed lines (secrets masked)."""
        if self.log_path is None:
            return self.mask("".join(self.recent))
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as handle:
                return self.mask(handle.read())
        except OSError:
            return ""

    def tail(self, lines=15):
        """The last ``lines`` lines of its output, for error messages."""
        return "".join(self.output().splitlines(keepends=True)[-lines:])

    def mask(self, text):
        """``text`` with every secret in ``hide`` replaced by ***."""
        for secret in self.hide:
            text = text.replace(secret, "***")
        return text

    def describe_exit(self):
        """'running', 'exit code 2' or 'killed by SIGKILL'."""
        code = self.poll()
        if code is None:
            return "running"
        if code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exit code {code}"


class Supervisor:
    """Start named children in ``cwd``; find a dead one; stop them, SIGKILLing the stubborn.

    ``own_groups``: start each child in a session of its own and signal its whole process group
    (for servers such as gunicorn that have children of their own); then a Ctrl-C in the
    terminal reaches only us, and the supervisor passes it on. ``hide``: secrets masked in what
    the children print. ``out``: where relayed lines go.
    """

    def __init__(
        self, cwd=None, grace=STOP_GRACE, own_groups=False, hide=(), out=None, name_width=7
    ):
        self.cwd = cwd
        self.grace = grace
        self.own_groups = own_groups
        self.hide = [secret for secret in hide if secret]
        self.out = out or sys.stdout
        self.name_width = name_width
        self.children = []
        self._print_lock = threading.Lock()

    def say(self, *lines):
        """Print lines of our own, whole, between the children's lines."""
        with self._print_lock:
            for line in lines:
                self.out.write(line + "\n")
            self.out.flush()

    def start(self, name, argv, env=None, log_path=None):
        """Start ``argv``; its output goes to ``log_path``, or is relayed behind its name."""
        with SIGNALS.held():  # a Stop now would leave a child that nobody stops
            if log_path is None:
                process = self._popen(argv, env, subprocess.PIPE)
            else:
                with open(log_path, "wb") as log:
                    process = self._popen(argv, env, log)
            child = Child(name, process, log_path, self.own_groups, self.hide)
            self.children.append(child)
        if log_path is None:
            child.relay = threading.Thread(
                target=self._relay, args=(child,), name=f"relay-{name}", daemon=True
            )
            child.relay.start()
        return child

    def _popen(self, argv, env, output):
        """The Popen of a child whose stdout and stderr both go to ``output``."""
        return subprocess.Popen(
            argv,
            cwd=self.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=self.own_groups,
        )

    def _relay(self, child):
        """Copy a child's output to ours, line by line, behind its name."""
        prefix = f"{child.name:<{self.name_width}} | "
        with child.process.stdout as stream:
            for raw in stream:
                line = child.mask(raw.rstrip("\n")) + "\n"
                child.recent.append(line)
                with self._print_lock:
                    self.out.write(prefix + line)
                    self.out.flush()

    def dead(self):
        """The first child that has exited, or None."""
        for child in self.children:
            if child.poll() is not None:
                return child
        return None

    def wait(self, child, timeout):
        """Wait for ``child`` to exit; on timeout stop it and raise TimeoutError with its tail."""
        try:
            return child.wait(timeout=max(0.1, timeout))
        except subprocess.TimeoutExpired:
            self.stop(child)
            tail = child.tail()
            detail = f"\n--- last lines of {child.name} ---\n{tail}" if tail else ""
            raise TimeoutError(f"{child.name} did not finish within {timeout:g}s{detail}") from None

    def stop(self, *children, grace=None):
        """SIGTERM the children together, SIGKILL those still running after ``grace`` seconds.

        Stopped children leave ``children``: ``dead`` reports only those that died by themselves.
        """
        grace = self.grace if grace is None else grace
        for child in children:
            if child.poll() is None:
                child.signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for child in children:
            try:
                child.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say(f"{child.name} did not stop within {grace:g}s: killing it")
                child.signal(signal.SIGKILL)
                child.wait()
            if child.relay is not None:
                child.relay.join(timeout=2)  # its last lines, before ours
            if child in self.children:
                self.children.remove(child)  # stopped on purpose: no longer ours to watch

    def stop_all(self, grace=None):
        """Stop every child, all together (those that have exited only leave ``children``)."""
        self.stop(*self.children, grace=grace)
