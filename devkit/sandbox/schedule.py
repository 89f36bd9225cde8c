"""Jobs run at their due time, at most ``limit`` at once: how the sandbox posts each send's
events after its delay.

A scheduler (``run``, the event poster's thread) hands each job to the posting threads once it
is due, earliest first; the posting threads are started as a job's ``limit`` first needs them,
and a job waits for a free slot while ``limit`` jobs run. With a limit of 1 (the default) the
jobs run one after the other, in the order they fall due.
"""

import heapq
import itertools
import queue
import threading
import time

MAX_LIMIT = 64  # posting threads at most
TICK = 0.1  # seconds: how quickly a waiting thread notices the stop


class Later:
    """Run jobs at their due time (``time.monotonic``), at most ``limit`` at once."""

    def __init__(self, stopping, name):
        """Jobs of the threads named ``name``-N, until ``stopping`` is set."""
        self.stopping = stopping
        self.name = name
        self.timing = threading.Condition()  # guards ``due``, wakes the scheduler
        self.due = []  # heap of (due, number, limit, job)
        self.numbers = itertools.count()  # ties go in the order they came
        self.ready = queue.Queue()
        self.slots = threading.Condition()  # guards the counts below
        self.running = 0
        self.threads = []
        self.waiting = 0  # jobs put and not finished
        self.late = fresh_lateness()

    def put(self, due, limit, job):
        """Run ``job()`` at ``due``, with at most ``limit`` jobs running then."""
        with self.slots:
            self.waiting += 1
        with self.timing:
            heapq.heappush(self.due, (due, next(self.numbers), limit, job))
            self.timing.notify()

    def run(self):
        """Hand each job to the posting threads once it is due, until stopped."""
        while not self.stopping.is_set():
            with self.timing:
                wait = self.due[0][0] - time.monotonic() if self.due else TICK
                if wait > 0:
                    self.timing.wait(min(wait, TICK))
                    continue
                due, _, limit, job = heapq.heappop(self.due)
            self._hire(min(limit, MAX_LIMIT))
            self.ready.put((due, limit, job))

    def _hire(self, wanted):
        """Start posting threads until there are ``wanted``."""
        while len(self.threads) < wanted:
            thread = threading.Thread(
                target=self._work, name=f"{self.name}-{len(self.threads) + 1}", daemon=True
            )
            self.threads.append(thread)
            thread.start()

    def _work(self):
        """A posting thread: run ready jobs, each in a free slot."""
        while not self.stopping.is_set():
            try:
                due, limit, job = self.ready.get(timeout=TICK)
            except queue.Empty:
                continue
            if not self._take_slot(limit, due):
                return
            try:
                job()
            finally:
                with self.slots:
                    self.running -= 1
                    self.waiting -= 1
                    self.slots.notify_all()

    def _take_slot(self, limit, due):
        """Wait until fewer than ``limit`` jobs run, then count this one as running (and how
        late it starts); False if the sandbox stopped meanwhile."""
        with self.slots:
            while self.running >= limit:
                if self.stopping.is_set():
                    return False
                self.slots.wait(TICK)
            self.running += 1
            late = max(0.0, time.monotonic() - due)
            due_at = time.time() - late  # the due time as unix time
            self.late["jobs"] += 1
            self.late["total"] += late
            self.late["max"] = max(self.late["max"], late)
            self.late["first_due_at"] = min(self.late["first_due_at"] or due_at, due_at)
            self.late["last_due_at"] = max(self.late["last_due_at"] or due_at, due_at)
        return True

    def counts(self):
        """Jobs not finished yet; how late the started ones started (seconds), and the first
        and last of their due times (unix time: when they were meant to run, however late
        they did)."""
        with self.slots:
            jobs = self.late["jobs"]
            return {
                "waiting": self.waiting,
                "late_mean": self.late["total"] / jobs if jobs else 0.0,
                "late_max": self.late["max"],
                "first_due_at": self.late["first_due_at"],
                "last_due_at": self.late["last_due_at"],
            }

    def forget_lateness(self):
        """Start counting lateness afresh (a reset)."""
        with self.slots:
            self.late = fresh_lateness()


def fresh_lateness():
    """How late the jobs started, before any did."""
    return {"jobs": 0, "total": 0.0, "max": 0.0, "first_due_at": None, "last_due_at": None}
