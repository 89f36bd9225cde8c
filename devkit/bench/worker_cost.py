# What sending one mail costs a worker process: its CPU per mail (user + system, from os.times
# in the process itself) and the CPU per mail of the PostgreSQL backends it used, against the
# bare sender's CPU per mail, in alternated rounds on one sandbox. CPU per mail moves less with
# a noisy machine than a rate does; so does each kind of thread's share (send, main, record).
# --profile FILE also profiles the threads of the last round's worker (cProfile in CPU time,
# one profiler per thread, merged; --profile-threads REGEX: only the threads so named) and
# writes the pstats to FILE. Makes a throwaway database on --server-url and drops it:
#     .venv/bin/python -m devkit.bench.worker_cost [--count 5000] [--rounds 3] [--profile FILE]
#     .venv/bin/python -m devkit.bench.worker_cost --rounds 1 --profile p.prof \
#         --profile-threads 'record|MainThread'     # the recorder and the loop only
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
PROFILE_THREADS = "WORKER_COST_PROFILE_THREADS"  # --profile-threads, in the worker's environment


def parse_args(argv):
    """The command line."""
    parser = argparse.ArgumentParser(description="CPU per mail: the worker and the bare sender")
    parser.add_argument("--count", type=int, default=5000, help="mails per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-ms", type=int, default=50, help="the sandbox's answer delay")
    parser.add_argument("--concurrency", type=int, default=64, help="WORKER_CONCURRENCY")
    parser.add_argument("--log-level", default="INFO", help="the worker's --log-level")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting of the worker's (repeatable), e.g. PROVIDER_ROUTES='example.com=sendgrid'",
    )
    parser.add_argument("--profile", metavar="FILE", help="pstats of the last worker round")
    parser.add_argument(
        "--profile-threads", metavar="REGEX", help="profile only the threads so named"
    )
    parser.add_argument("--server-url", default=DEFAULT_SERVER)
    args = parser.parse_args(argv)
    args.database_url, args.keep_logs, args.max_seconds = None, False, 3600.0
    return args


def measured(b, name, argv, env, out, count):
    """Run ``argv`` to its end; its CPU per mail in µs (user, system), and the database
    backends' (a backend's CPU is read while it lives: every 0.1 s, its last reading kept)."""
    before = b.database_cpu()
    child, after = b.start(name, argv, env), {}
    while child.poll() is None:
        after.update(b.database_cpu())
        time.sleep(0.1)
    b.finish(child, b.timeout(600))
    with open(out, encoding="utf-8") as handle:
        used = json.load(handle)
    database = cpu_used(before, after) or 0.0
    say(
        f"{name}: CPU per mail by thread: "
        + ", ".join(
            f"{kind} {1e6 * seconds / count:.0f} µs"
            for kind, seconds in sorted(used["threads"].items(), key=lambda item: -item[1])
        )
    )
    return 1e6 * used["user"] / count, 1e6 * used["system"] / count, 1e6 * database / count


def worker_round(b, args, folder, profile=None):
    """Drain ``count`` queued mails with one burst worker; ``measured``'s figures."""
    b.truncate()
    b.sandbox_reset(args.latency_ms)
    b.insert_mails(args.count)
    out = os.path.join(folder, "worker.json")
    argv = [*ME, "_worker", out, profile or "", "--burst", "--log-level", args.log_level]
    settings = dict(item.split("=", 1) for item in args.set)
    if args.profile_threads:
        settings[PROFILE_THREADS] = args.profile_threads
    env = b.env(WORKER_CONCURRENCY=args.concurrency, WORKER_PROCESSES=1, **settings)
    figures = measured(b, "worker", argv, env, out, args.count)
    counts = b.status_counts()
    if counts != {"sent": args.count}:
        raise RuntimeError(f"after the drain the mails are {counts}, not all sent")
    return figures


def bare_round(b, args, folder):
    """Send ``count`` mails with the bare sender; ``measured``'s figures."""
    b.sandbox_reset(args.latency_ms)
    out = os.path.join(folder, "bare.json")
    argv = [*ME, "_bare", out, str(args.count)]
    env = b.env(WORKER_CONCURRENCY=args.concurrency)
    return measured(b, "bare-sender", argv, env, out, args.count)


def run(args):
    """Alternate bare sender and worker rounds; print each round's CPU per mail."""
    b = Bench(args, {})
    SIGNALS.install()
    folder = tempfile.mkdtemp(prefix="worker-cost-")
    try:
        b.setup()
        for number in range(args.rounds):
            bare_user, bare_system, _ = bare_round(b, args, folder)
            last = number == args.rounds - 1
            user, system, database = worker_round(b, args, folder, args.profile if last else None)
            ours, bare = user + system, bare_user + bare_system
            say(
                f"round {number + 1}: worker {ours:.0f} µs/mail (user {user:.0f}, system "
                f"{system:.0f}; PostgreSQL {database:.0f}), bare sender {bare:.0f} (user "
                f"{bare_user:.0f}, system {bare_system:.0f}); worker/bare {ours / bare:.2f}"
            )
    finally:
        with SIGNALS.ignored():
            b.cleanup()
    return 0


def profiled_threads(path, only=None):
    """Profile every thread started from now on whose name matches ``only`` (a regular
    expression; None: all), and this one; at exit, merge into ``path``."""
    import atexit
    import cProfile
    import pstats
    import re
    import threading

    profiles = [cProfile.Profile(time.thread_time)]  # CPU time: a wait costs nothing
    original = threading.Thread.run

    def run(self):
        """A thread's run under a profiler of its own (the threads of ``only``)."""
        if only and not re.match(only, self.name):
            return original(self)
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


def timed_threads():
    """CPU seconds by kind of thread (its name without digits), from now on: each thread's
    when it ends; the dict is filled as they end."""
    import re
    import threading

    used = {}
    original = threading.Thread.run

    def run(self):
        """A thread's run, its CPU added to its kind's."""
        try:
            original(self)
        finally:
            kind = re.sub(r"[_-]?\d+", "", self.name) or "thread"
            used[kind] = used.get(kind, 0.0) + time.thread_time()

    threading.Thread.run = run
    return used


def child_main(argv):
    """``_worker OUT PROFILE ARGS...`` or ``_bare OUT COUNT``: run it, write to OUT the CPU it
    used from its first send on (not the imports and set-up, the same for any number of
    mails)."""
    kind, out = argv[0], argv[1]
    started, threads = [], timed_threads()
    if kind == "_worker":
        if argv[2]:
            profiled_threads(argv[2], os.environ.get(PROFILE_THREADS))
        import mail_service
        from mailer.worker.loop import Worker

        run = Worker.run

        def measured_run(self, *args, **kwargs):
            """The worker's loop, its CPU counted from here."""
            started.append(os.times())
            started.append(time.thread_time())
            return run(self, *args, **kwargs)

        Worker.run = measured_run
        code = mail_service.main(argv[3:])
    else:
        import mail_service  # noqa: F401 (the bare sender's imports, not counted)
        import providers  # noqa: F401
        from devkit.bench.load import bare_send_main

        started.extend((os.times(), time.thread_time()))
        code = bare_send_main(int(argv[2]))
    ended = os.times()
    user, system = ended.user - started[0].user, ended.system - started[0].system
    threads["main"] = time.thread_time() - started[1]
    with open(out, "w", encoding="utf-8") as handle:
        json.dump({"user": user, "system": system, "threads": threads}, handle)
    return code


def main(argv=None):
    """Entry point, and the children's."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["_worker"], ["_bare"]):
        return child_main(argv)
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
