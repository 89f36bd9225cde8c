"""Probes for whatever runs the API: ``GET /healthz`` (alive) and ``GET /readyz`` (ready).

- ``/healthz`` answers 200 as long as the process serves requests; it touches nothing else,
  so a database outage never gets a healthy API process restarted.
- ``/readyz`` answers 200 when the database answers and its schema is at this code's Alembic
  head, else 503 (a load balancer then sends requests elsewhere). Its body also shows each
  provider's circuit, ``meltdown`` (by the one definition in ``circuit``), each provider's
  weight, shared rate cap and current rate (``dispatch.plan``), how many workers sent a
  heartbeat lately, and the providers the guard steers away from for a recipient domain
  (``steered``, the workers' shared ``steering`` rows). A meltdown does not make the API
  unready: it still stores mail, which waits in the queue.

Both are JSON, need no key and show no secret (no URL, host or user of the database).
``/health`` (in ``api``) stays as it was.
"""

import functools

from alembic.migration import MigrationContext
from flask import Blueprint, current_app
from sqlalchemy.exc import SQLAlchemyError

from mailer.api.errors import DB_RETRY_AFTER
from mailer.database import head_revision
from mailer.queue import heartbeats, steering
from mailer.shapes.service import Liveness, Readiness
from mailer.worker import circuit, dispatch, ratecap
from models import db

blueprint = Blueprint("health", __name__)


@functools.cache
def schema_head():
    """The Alembic head this code needs (read from the migrations once per process)."""
    return head_revision()


@blueprint.get("/healthz")
def healthz():
    """Liveness: the process answers. No database, no providers."""
    return Liveness.dump({"status": "ok"})


@blueprint.get("/readyz")
def readyz():
    """Readiness: 200 with the providers' state, or 503 saying what is not ready."""
    config = current_app.config
    try:
        with db.engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
            if current != schema_head():
                status = "missing" if current is None else "behind"
                return not_ready(status, current), 503, retry_after()
            body = readiness(conn, config)
    except SQLAlchemyError:
        return not_ready("unknown", None, database="unavailable"), 503, retry_after()
    return body


def readiness(conn, config):
    """The body of a ready ``/readyz``, read on ``conn``: a few small, indexed queries."""
    names = list(config["PROVIDERS"])
    health = circuit.health(conn, names)
    plan = dispatch.plan(config, names, ratecap.current_rates(conn))
    providers = {row["name"]: row for row in health["providers"]}
    return Readiness.dump(
        {
            "status": "ready",
            "database": "ok",
            "schema": {"status": "current", "revision": schema_head(), "head": schema_head()},
            "meltdown": health["status"] == "meltdown",
            "strategy": config["PROVIDER_STRATEGY"],
            # A provider no worker has used yet has no breaker row: closed, as the worker sees it.
            "providers": [
                {**providers.get(name, circuit.never_reported(name)), **plan[name]}
                for name in names
            ],
            "workers_alive": len(heartbeats.alive(conn)),
            "steered": steering.steered(conn),
        }
    )


def not_ready(schema_status, revision, database="ok"):
    """The body of a 503 ``/readyz``."""
    return Readiness.dump(
        {
            "status": "unavailable",
            "database": database,
            "schema": {"status": schema_status, "revision": revision, "head": schema_head()},
        }
    )


def retry_after():
    """The headers of a 503: when to ask again."""
    return {"Retry-After": str(DB_RETRY_AFTER)}


def init_app(app):
    """Register ``/healthz`` and ``/readyz``."""
    app.register_blueprint(blueprint)
