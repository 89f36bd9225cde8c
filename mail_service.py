"""The worker process: sends queued mail through the providers, failing over between them.

    python mail_service.py --config settings.cfg                # run until SIGTERM / Ctrl-C
    python mail_service.py --config settings.cfg --burst        # send what is due, then exit 0
    python mail_service.py --config settings.cfg --processes 4  # four sending processes

``--processes`` (default ``WORKER_PROCESSES``: one per core) runs that many worker processes
under a supervisor that restarts one that dies and stops them all on SIGTERM
(mailer/worker/supervisor.py); with 1 this process is the worker. Run as many of these as you
like, on one host or several, against one PostgreSQL: they claim mail with ``FOR UPDATE SKIP
LOCKED`` and never take the same mail. See mailer/worker/loop.py for the loop.
"""

import argparse
import gc
import logging
import os
import sys
import time

from sqlalchemy.exc import SQLAlchemyError

from mailer.config import load_config
from mailer.database import SchemaError, check_schema, describe, make_engine
from mailer.events import outbox
from mailer.telemetry import logs
from mailer.telemetry import worker as worker_metrics
from mailer.worker.loop import Worker
from mailer.worker.routes import Routes
from mailer.worker.supervisor import Supervisor, processes_wanted
from providers import build_providers

log = logging.getLogger("mail_service")


def parse_args(argv):
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="Flask config file (default: $MAIL_SERVICE_CONFIG)")
    parser.add_argument(
        "--burst", action="store_true", help="send everything that is due, then exit 0"
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    parser.add_argument(
        "--processes",
        type=int,
        help="worker processes to run (default $WORKER_PROCESSES; 0: one per core)",
    )
    return parser.parse_args(argv)


def configured_providers(config):
    """The providers of ``PROVIDERS`` in failover order; ValueError naming the settings of any
    of them that are missing: a provider the operator named must be able to send, or the worker
    does not start."""
    providers = build_providers(config)
    for provider in providers:
        missing = provider.missing_settings()
        if missing:
            verb = "is" if len(missing) == 1 else "are"
            raise ValueError(
                f"PROVIDERS names {provider.name}, but {', '.join(missing)} {verb} not set: "
                f"set {'it' if len(missing) == 1 else 'them'}, or take {provider.name} out of "
                "PROVIDERS"
            )
    return providers


def wait_for_schema(engine, worker):
    """Check the schema, waiting with backoff while the database is unreachable."""
    delay = 0.5
    while not worker.stopping.is_set():
        try:
            check_schema(engine)
            return True
        except SQLAlchemyError as err:
            log.error("database unavailable (%s): retrying in %.1fs", describe(err), delay)
            worker.stopping.wait(delay)
            delay = min(delay * 2, 10.0)
    return False


def main(argv=None):
    """Run the worker, or several under a supervisor; the exit code is 0 after a clean stop, 2
    for a setup problem."""
    args = parse_args(argv)
    logs.configure("text", args.log_level)  # until the settings name LOG_FORMAT
    try:
        config = load_config(args.config)
        logs.configure(config["LOG_FORMAT"], args.log_level)
        logs.skip_unshown_fields()  # a line per mail: only what the formats show
        providers = configured_providers(config)
        Routes.from_config(config, [provider.name for provider in providers])  # PROVIDER_ROUTES
        outbox.subscription(config)  # WEBHOOK_* settings that cannot work stop us here
        worker_metrics.check_settings(config)
        processes = processes_wanted(
            config["WORKER_PROCESSES"] if args.processes is None else args.processes
        )
    except ValueError as err:
        log.error("%s", err)
        return 2
    if processes > 1:
        return supervise(args, config, processes)
    return run_worker(args, config, providers)


def supervise(args, config, processes):
    """Run ``processes`` workers (this command with ``--processes 1``) under a supervisor."""
    argv = [sys.executable, os.path.abspath(__file__), "--processes", "1"]
    argv += ["--log-level", args.log_level, *(["--config", args.config] if args.config else [])]
    argv += ["--burst"] if args.burst else []
    metrics_port = config["WORKER_METRICS_PORT"]

    def environ(number):
        """A child's environment: ours, and its own metrics port (the next ones after the
        first)."""
        if not metrics_port:
            return None
        return {**os.environ, "WORKER_METRICS_PORT": str(metrics_port + number)}

    return Supervisor(argv, processes, environ, burst=args.burst).run()


def run_worker(args, config, providers):
    """Run one worker in this process until it stops; the exit code."""
    pool_size = config["WORKER_CONCURRENCY"] + 4  # send threads write provider health
    engine = make_engine(config, pool_size=pool_size, worker=True)
    worker = Worker(engine, config, providers)
    logs.bind_process(worker=worker.name)  # every line of this process names its worker
    worker.install_signal_handlers()
    try:
        if not wait_for_schema(engine, worker):
            return 0
    except SchemaError as err:
        log.error("%s", err)
        return 2
    # What setting up made lives as long as the process: out of the collector's sight, so that
    # its collections walk only what the sends make (as gunicorn.conf.py's post_worker_init).
    gc.collect()
    gc.freeze()
    started = time.monotonic()
    worker.run(burst=args.burst)
    log.info("done in %.1fs", time.monotonic() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
