"""Development tools, never imported by the API or the worker: the provider sandbox, the
benchmark, the quick start's dev server, the embedded PostgreSQL and the process supervisor."""
