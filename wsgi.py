"""The production entry point: ``gunicorn -c gunicorn.conf.py wsgi:app``.

Builds the app from MAIL_SERVICE_CONFIG and the environment, and refuses to start (each
gunicorn worker exits with a clear message) while the database schema is missing or behind.
"""

from app import create_app, require_schema

app = create_app()
require_schema(app)
