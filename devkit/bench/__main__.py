# Benchmarks of the mail service against the targets in BENCHMARKS.md. Each figure is compared
# with a baseline measured in the same run on the same machine, so a noisy or slow machine moves
# both; the table shows our figure, the baseline's, their ratio and whether the target is met.
"""Benchmark the service: dispatch, scale-out, latency, ingest, bulk, insert, queues, memory, purge.

    scripts/bench                       # every scenario (~11 minutes on 2 cores)
    scripts/bench --quick               # tiny sizes: a smoke run (~1 minute)
    scripts/bench --only ingest,latency --json results.json
    scripts/bench --only memory --drain-count 1000000 --max-seconds 4000
    scripts/bench --only ingest --size ingest_seconds=5 --size ingest_variants=form
    scripts/bench --only soak --size 20000   # the soak (only when named), 20,000 mails

``scripts/bench`` runs ``python -m devkit.bench``.

It starts what it needs on loopback (the provider sandbox, gunicorn, worker processes), creates
a throwaway database ``mail_bench_<random>`` on ``--server-url`` (dropped at the end), or uses
``--database-url`` as is (migrated, and its tables EMPTIED between scenarios). Provider and API
keys are random per run and never printed. Exit code: 0 when every scenario ran (met or not),
1 when one failed to run, 2 when the database could not be set up.
"""

import argparse
import os
import platform
import subprocess
import sys
import time

from devkit.bench.harness import DEFAULT_SERVER, Bench, Unavailable, say
from devkit.bench.load import bare_send_main, load_main
from devkit.bench.report import Row, print_table, write_json
from devkit.bench.scenarios import FULL, ON_REQUEST, QUICK, SCENARIO_FUNCTIONS, SCENARIOS
from devkit.bench.soak.receiver import receiver_main
from devkit.processes import SIGNALS, Stop

COMMAND = "scripts/bench"  # the command the printed table names
DEFAULT_MAX_SECONDS = 1500.0  # bound on the whole run


def machine(b):
    """The machine's description: cores, memory, CPU model, Python and PostgreSQL versions."""
    model = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            model = next(
                (line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")),
                model,
            )
    except OSError:
        pass
    try:
        memory = subprocess.run(
            ["free", "-h"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        memory = "unknown"
    pg = b.sql("SELECT version()")[0][0] if b.db is not None else "unknown"
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": model,
        "memory": memory,
        "python": platform.python_version(),
        "postgresql": pg,
    }


def parse_args(argv):
    """The command line."""
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        help=f"comma-separated scenarios: {','.join(SCENARIOS)}; "
        f"and, only when named, {','.join(ON_REQUEST)}",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    parser.add_argument(
        "--max-seconds",
        type=float,
        help=f"bound on the whole run (default {DEFAULT_MAX_SECONDS:g}; the soak's own bound, "
        "which grows with its size, when longer)",
    )
    parser.add_argument("--json", metavar="FILE", help="write the results to FILE")
    parser.add_argument(
        "--server-url",
        default=DEFAULT_SERVER,
        help="PostgreSQL server to create the throwaway database on",
    )
    parser.add_argument(
        "--database-url", help="use this existing database instead (its tables are EMPTIED)"
    )
    parser.add_argument(
        "--drain-count", type=int, help="mails the memory scenario drains (default 50,000)"
    )
    parser.add_argument(
        "--purge-batch-size",
        type=int,
        default=5000,
        help="--batch-size for scripts/purge and the baseline (default 5000, purge's own default)",
    )
    parser.add_argument(
        "--size",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override one of the scenarios' sizes (repeatable), e.g. "
        "--size ingest_seconds=5 --size ingest_rounds=3; the names are the "
        "keys of FULL in devkit/bench/scenarios.py; a bare number N is --size soak=N",
    )
    parser.add_argument(
        "--soak-out",
        metavar="DIR",
        default=".",
        help="where the soak writes soak.json and soak.md (default: the current directory)",
    )
    parser.add_argument(
        "--soak-plot",
        metavar="FILE",
        help="where the soak draws its plot (default: docs/soak.png of the repository)",
    )
    parser.add_argument(
        "--keep-logs",
        action="store_true",
        help="keep the children's logs (their folder is printed)",
    )
    args = parser.parse_args(argv)
    chosen = [
        name.strip() for name in (args.only or ",".join(SCENARIOS)).split(",") if name.strip()
    ]
    unknown = [name for name in chosen if name not in SCENARIOS + ON_REQUEST]
    if unknown:
        parser.error(f"unknown scenarios {unknown}; choose from {','.join(SCENARIOS + ON_REQUEST)}")
    args.scenarios = chosen
    args.sizes = dict(parse_size(parser, text) for text in args.size)
    return args


def parse_size(parser, text):
    """One ``--size NAME=VALUE``: (name, value as a number, or a tuple of numbers or words); a
    bare whole number is the soak's mails."""
    if text.isdigit():
        return "soak", int(text)
    name, separator, value = text.partition("=")
    if not separator or name not in FULL:
        parser.error(f"--size {text!r}: use NAME=VALUE with NAME one of {', '.join(FULL)}")

    def number(word):
        """An int, a float, or the word itself."""
        for kind in (int, float):
            try:
                return kind(word)
            except ValueError:
                pass
        return word

    if isinstance(FULL[name], tuple):
        return name, tuple(number(word) for word in value.split(",") if word)
    return name, number(value)


def run_scenario(b, name):
    """Run one scenario and stop what it started; (its rows, whether it failed to run)."""
    say(f"scenario {name}")
    started = time.monotonic()
    failed = False
    try:
        rows = SCENARIO_FUNCTIONS[name](b)
    except Unavailable as why:
        rows = [Row(name, "not available", note=str(why))]
    except Stop:
        raise
    except Exception as err:  # report it, run the other scenarios
        failed = True
        message = str(err).strip()
        rows = [
            Row(
                name,
                "error",
                note=message.splitlines()[0][:300] if message else err.__class__.__name__,
            )
        ]
        say(f"scenario {name} failed: {err.__class__.__name__}: {message}")
    finally:
        # The sandbox serves the whole run; whatever else the scenario started ends with it.
        b.supervisor.stop(*[child for child in b.supervisor.children if child.name != "sandbox"])
    say(f"scenario {name} took {time.monotonic() - started:.0f}s")
    return rows, failed


def run_scenarios(b, args):
    """Run the chosen scenarios while --max-seconds allows; how many failed to run."""
    errors = 0
    for name in args.scenarios:
        if b.remaining() < 5:
            b.rows.append(Row(name, "skipped", note="--max-seconds reached"))
            continue
        rows, failed = run_scenario(b, name)
        errors += failed
        b.rows.extend(rows)
    return errors


def run(args):
    """Set up, run the chosen scenarios, print the table; the exit code."""
    sizes = dict(QUICK if args.quick else FULL)
    if args.drain_count:
        sizes["memory"] = args.drain_count
    sizes.update(args.sizes)
    b = Bench(args, sizes, args.max_seconds or DEFAULT_MAX_SECONDS)
    errors = 0
    info = {}
    SIGNALS.install()  # Ctrl-C, SIGTERM and SIGHUP end the run cleaned up, the table printed
    try:
        try:
            b.setup()
        except Stop:
            raise
        except Exception as err:  # the run cannot start: say why
            print(f"bench: setup failed: {err}", file=sys.stderr)
            return 2
        info = machine(b)
        print(
            f"machine: {info['nproc']} cores ({info['cpu']}), Python {info['python']}, "
            f"{info['postgresql'].split(' on ')[0]}"
        )
        print(f"command: {' '.join([COMMAND, *sys.argv[1:]])}")
        errors = run_scenarios(b, args)
    except Stop as why:
        say(f"interrupted ({why}): cleaning up")
        errors += 1
    finally:
        with SIGNALS.ignored():  # a second Ctrl-C must not leave orphans
            b.cleanup()
    print_table(b.rows)
    if args.json:
        write_json(args.json, info, args, b.rows)
    return 1 if errors else 0


def main(argv=None):
    """Entry point; also the load generator and bare sender subprocess modes."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_load"]:
        return load_main(argv[1])
    if argv[:1] == ["_bare-send"]:
        return bare_send_main(int(argv[1]))
    if argv[:1] == ["_receiver"]:
        return receiver_main(argv[1])
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
