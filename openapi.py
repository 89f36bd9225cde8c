"""Placeholder replaced below."""


def init_app(app):
    """Register the spec routes."""
