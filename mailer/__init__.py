"""The mail service's internals, one module per concern.

The entry points stay at the top of the repository (``app.py`` for the API and admin,
``mail_service.py`` for the worker, ``models.py`` for the tables, ``providers/`` for the
gateways); everything they wire together lives here.
"""
