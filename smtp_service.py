"""The SMTP door: applications submit mail over SMTP into the same queue as ``POST /mail``.

    python smtp_service.py --config settings.cfg     # serve SMTP_LISTEN until SIGTERM / Ctrl-C

Clients log in with an API key (``AUTH PLAIN`` or ``LOGIN`` after ``STARTTLS``); each message
is stored before its ``250``, and the worker sends it. See mailer/smtp/ and docs/smtp.md.
Exit code 0 after a clean stop, 2 for settings that cannot work.
"""

import argparse
import logging
import signal
import sys
import threading

from sqlalchemy.exc import SQLAlchemyError

from mailer.config import load_config
from mailer.database import SchemaError, check_schema, describe
from mailer.smtp.server import Door
from mailer.telemetry import logs
from mailer.telemetry.smtp import HealthServer, health_app
from models import db

log = logging.getLogger("smtp_service")
AIOSMTPD_LOGGER = "mail.log"  # aiosmtpd's: a line at INFO for every command of every session


def parse_args(argv):
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="Flask config file (default: $MAIL_SERVICE_CONFIG)")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    return parser.parse_args(argv)


def quiet_commands():
    """aiosmtpd's line for each SMTP command only at ``--log-level DEBUG``, a tracing aid five
    lines a message; its warnings and errors otherwise, as the level lets through."""
    level = logging.getLogger().getEffectiveLevel()
    if level > logging.DEBUG:
        logging.getLogger(AIOSMTPD_LOGGER).setLevel(max(level, logging.WARNING))


def readiness(door):
    """``/readyz``'s check: None while the database answers with this code's schema, else
    why not."""

    def ready():
        try:
            with door.app.app_context():
                check_schema(db.engine)
        except SchemaError as err:
            return str(err)
        except SQLAlchemyError as err:
            return f"database unavailable: {describe(err)}"
        return None

    return ready


def main(argv=None):
    """Serve the door until SIGTERM or SIGINT; 2 for settings that cannot work."""
    args = parse_args(argv)
    logs.configure("text", args.log_level)
    try:
        config = load_config(args.config)
        logs.configure(config["LOG_FORMAT"], args.log_level)
        quiet_commands()
        door = Door(config)
    except ValueError as err:
        log.error("%s", err)
        return 2
    try:
        with door.app.app_context():
            check_schema(db.engine)
    except SchemaError as err:
        log.error("%s", err)
        return 2
    except SQLAlchemyError as err:
        log.error("database unavailable (%s): answering 451 until it is back", describe(err))
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    probes = health_app(door.metrics, config["METRICS_TOKEN"], readiness(door))
    health = HealthServer(config["SMTP_HEALTH_PORT"], probes)
    try:
        door.start()
    except OSError as err:
        log.error("cannot listen on %s: %s", config["SMTP_LISTEN"], err)
        return 2
    health.start()
    stopping.wait()
    health.stop()
    door.stop()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
