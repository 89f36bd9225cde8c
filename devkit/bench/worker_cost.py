# What sending one mail costs a worker process: its CPU per mail (user + system, from os.times
# in the process itself) and the CPU per mail of the PostgreSQL backends it used, against the
# bare sender's CPU per mail, in alternated rounds on one sandbox. CPU per mail moves less with
# a noisy machine than a rate does. --profile FILE also profiles every thread of the last round's
# worker (cProfile, one profiler per thread, merged) and writes the pstats to FILE. Makes a
# throwaway database on --server-url and drops it:
#     .venv/bin/python -m devkit.bench.worker_cost [--count 5000] [--rounds 3] [--profile FILE]
import argparse
import json
import os
import sys
import tempfile
import time

from devkit.bench.harness import (
    DEFAULT_SERVER,
    PYTHON,
    Bench,
    cpu_used,
    say,
)
from devkit.processes import SIGNALS

ME = [PYTHON, "-m", "devkit.bench.worker_cost"]


def parse_args(argv):
    """The command line."""
    parser = argparse.ArgumentParser(description="CPU per mail: the worker and the bare sender")
    parser.add_argument("--count", type=int, default=5000, help="mails per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-ms", type=int, default=50, help="the sandbox's answer delay")
    parser.add_argument("--concurrency", type=int, default=64, help="WORKER_CONCURRENCY")
    parser.add_argument("--log-level", default="INFO", help="the worker's --log-level")
    parser.add_argument("--profile", metavar="FILE", help="pstats of the last worker round")
    parser.add_argument("--server-url", default=DEFAULT_SERVER)
    args = parser.parse_args(argv)
    args.database_url, args.keep_logs, args.max_seconds = None, False, 3600.0
    return args


def measured(b, name, argv, env, out):
    """Run ``argv`` to its end; (its own CPU seconds, the database backends' CPU seconds).

    A backend's CPU is read while it lives: every 0.1 s, its last reading kept."""
    before = b.database_cpu()
    child, after = b.start(name, argv, env), {}
    while child.poll() is None:
        after.update(b.database_cpu())
        time.sleep(0.1)
    b.finish(child, b.timeout(600))
    with open(out, encoding="utf-8") as handle:
        return json.load(handle)["cpu"], cpu_used(before, after) or 0.0


def worker_round(b, args, folder, profile=None):
    """Drain ``count`` queued mails with one burst worker; (CPU per mail in µs, database's)."""
    b.truncate()
    b.sandbox_reset(args.latency_ms)
    b.insert_mails(args.count)
    out = os.path.join(folder, "worker.json")
    argv = [*ME, "_worker", out, profile or "", "--burst", "--log-level", args.log_level]
    env = b.env(WORKER_CONCURRENCY=args.concurrency, WORKER_PROCESSES=1)
    cpu, database = measured(b, "worker", argv, env, out)
    counts = b.status_counts()
    if counts != {"sent": args.count}:
        raise RuntimeError(f"after the drain the mails are {counts}, not all sent")
    return 1e6 * cpu / args.count, 1e6 * database / args.count


def bare_round(b, args, folder):
    """Send ``count`` mails with the bare sender; its CPU per mail in µs."""
    b.sandbox_reset(args.latency_ms)
    out = os.path.join(folder, "bare.json")
    argv = [*ME, "_bare", out, str(args.count)]
    cpu, _ = measured(b, "bare-sender", argv, b.env(WORKER_CONCURRENCY=args.concurrency), out)
    return 1e6 * cpu / args.count


def run(args):
    """Alternate bare sender and worker rounds; print each round's CPU per mail."""
    b = Bench(args, {})
    SIGNALS.install()
    folder = tempfile.mkdtemp(prefix="worker-cost-")
    try:
        b.setup()
        for number in range(args.rounds):
            bare = bare_round(b, args, folder)
            last = number == args.rounds - 1
            ours, database = worker_round(b, args, folder, args.profile if last else None)
            say(
                f"round {number + 1}: worker {ours:.0f} µs/mail (+ PostgreSQL {database:.0f}), "
                f"bare sender {bare:.0f} µs/mail; worker/bare {ours / bare:.2f}"
            )
    finally:
        with SIGNALS.ignored():
            b.cleanup()
    return 0


def profiled_threads(path):
    """Profile every thread started from now on and this one; at exit, merge into ``path``."""
    import atexit
    import cProfile
    import pstats
    import threading
    import time

    profiles = [cProfile.Profile(time.thread_time)]  # CPU time: a wait costs nothing
    original = threading.Thread.run

    def run(self):
        """A thread's run under a profiler of its own."""
        profile = cProfile.Profile(time.thread_time)
        profiles.append(profile)
        profile.runcall(original, self)

    def dump():
        """Merge the threads' profiles into ``path``."""
        profiles[0].disable()
        stats = pstats.Stats(profiles[0])
        for profile in profiles[1:]:
            stats.add(profile)
        stats.dump_stats(path)

    threading.Thread.run = run
    atexit.register(dump)
    profiles[0].enable()


def child_main(argv):
    """``_worker OUT PROFILE ARGS...`` or ``_bare OUT COUNT``: run it, write to OUT the CPU it
    used from its first send on (not the imports and set-up, the same for any number of
    mails)."""
    kind, out = argv[0], argv[1]
    started = []
    if kind == "_worker":
        if argv[2]:
            profiled_threads(argv[2])
        import mail_service
        from mailer.worker.loop import Worker

        run = Worker.run

        def measured_run(self, *args, **kwargs):
            """The worker's loop, its CPU counted from here."""
            started.append(cpu_seconds())
            return run(self, *args, **kwargs)

        Worker.run = measured_run
        code = mail_service.main(argv[3:])
    else:
        import mail_service  # noqa: F401 (the bare sender's imports, not counted)
        import providers  # noqa: F401
        from devkit.bench.load import bare_send_main

        started.append(cpu_seconds())
        code = bare_send_main(int(argv[2]))
    with open(out, "w", encoding="utf-8") as handle:
        json.dump({"cpu": cpu_seconds() - started[0]}, handle)
    return code


def cpu_seconds():
    """This process's user + system CPU seconds so far."""
    times = os.times()
    return times.user + times.system


def main(argv=None):
    """Entry point, and the children's."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["_worker"], ["_bare"]):
        return child_main(argv)
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
