"""The operators' admin UI at ``/admin``: views, the dashboard and its chart."""
