"""The API and admin process: ``create_app()`` wires the pieces; each lives in its own module.

python app.py --config settings.cfg                  # development server on :5000
gunicorn -c gunicorn.conf.py wsgi:app                # production (see docs/operations.md)
"""

import argparse
import logging
import sys

from flask import Flask
from flask_migrate import Migrate
from sqlalchemy.exc import OperationalError

from mailer import cli
from mailer.admin import templates as admin_templates
from mailer.admin import views as admin_views
from mailer.api import (
    audit,
    auth,
    bodies,
    endpoints,
    errors,
    health,
    inbound,
    keys,
    openapi,
    resources,
    templates,
)
from mailer.config import ensure_secret_key, load_config, load_settings
from mailer.database import SchemaError, check_schema, engine_options, normalize_url
from mailer.events import inbound as inbound_receivers
from mailer.events import outbox, receive
from mailer.telemetry import logs, metrics
from models import db

migrate = Migrate()


def create_app(test_config=None, config_path=None):
    """Build the Flask app from settings (or ``test_config``, for tests)."""
    app = Flask(__name__)
    # A test's own settings stand alone: no settings file, no developer's environment.
    environ = {} if test_config is not None else None
    load_settings(app.config, config_path, environ, overrides=test_config)
    app.config["SQLALCHEMY_DATABASE_URI"] = normalize_url(app.config["DATABASE_URL"])
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options(app.config)
    app.config["ERROR_404_HELP"] = False  # Flask-RESTful's "did you mean" hint
    ensure_secret_key(app.config, app.logger)
    app.extensions["webhooks"] = outbox.subscription(app.config)  # what the client gets

    db.init_app(app)
    migrate.init_app(app, db, directory="migrations")
    errors.init_app(app)
    metrics.init_app(app)  # first, so that it times everything after it
    bodies.init_app(app)
    api = resources.init_app(app)
    templates.init_app(api)
    keys.init_app(api)
    audit.init_app(api)
    endpoints.init_app(api)
    inbound.init_app(api)
    receive.init_app(app)
    inbound_receivers.init_app(app)
    health.init_app(app)
    openapi.init_app(app)
    admin_templates.init_app(admin_views.init_app(app))
    auth.init_app(app)
    cli.init_app(app)
    return app


def require_schema(app):
    """Stop the process with a clear message unless the database schema is current.

    A database that is merely down does not stop it: requests answer 503 until it is back.
    """
    with app.app_context():
        try:
            check_schema(db.engine)
        except SchemaError as err:
            app.logger.error("%s", err)
            sys.exit(2)
        except OperationalError:
            app.logger.error("database unreachable at start; answering 503 until it is back")


def main():
    """Run the development server (use gunicorn in production)."""
    parser = argparse.ArgumentParser(description="Mail service API and admin (development)")
    parser.add_argument("--config", help="Flask config file (default: $MAIL_SERVICE_CONFIG)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument(
        "--access-log",
        action="store_true",
        help="log a line per request (off: the console shows what matters)",
    )
    args = parser.parse_args()
    logs.configure(load_config(args.config)["LOG_FORMAT"], "INFO")
    if not args.access_log:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = create_app(config_path=args.config)
    try:
        auth.check_bind(app.config, args.host)
    except ValueError as err:
        app.logger.error("%s", err)
        sys.exit(2)
    require_schema(app)
    app.run(host=args.host, port=args.port, threaded=True)


if __name__ == "__main__":
    main()
