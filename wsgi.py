"""The production entry point: ``gunicorn -c gunicorn.conf.py wsgi:app``.

Builds the app from MAIL_SERVICE_CONFIG and the environment, and refuses to start without a
SECRET_KEY (gunicorn's workers must share one) or while the database schema is missing or
behind. A refusal is gunicorn's AppImportError, so that gunicorn prints the reason and stops
("App failed to load") instead of starting the worker again and again.
"""

from gunicorn.errors import AppImportError

from app import create_app, require_schema
from mailer.config import load_config, require_secret_key


def load_app():
    """The app, once its settings hold a SECRET_KEY and the database has the current schema."""
    try:
        require_secret_key(load_config())
    except ValueError as err:  # also a setting of the wrong type
        raise AppImportError(str(err)) from None
    application = create_app()
    try:
        require_schema(application)  # logs the reason, then exits
    except SystemExit:
        raise AppImportError("The database schema is missing or behind (see above).") from None
    return application


app = load_app()
