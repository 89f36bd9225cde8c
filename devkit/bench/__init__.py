"""The benchmarks of the mail service (``scripts/bench``, i.e. ``python -m devkit.bench``).

Modules: ``harness`` (the Bench: database, sandbox, settings, child processes, deadline),
``load`` (the load generators, run as processes of their own), ``scenarios`` (one function per
scenario), ``report`` (the rows, the table and the JSON), ``minimal_app`` (the ingest baseline
served by gunicorn) and ``__main__`` (the command line). BENCHMARKS.md has the figures.
"""
