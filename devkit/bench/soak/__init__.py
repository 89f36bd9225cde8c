"""The soak (``scripts/bench --only soak``): mail through the whole life, at length.

Modules: ``scenario`` (the run, start to end), ``clients`` (the mails submitted by the three
ways in, held back by the queue's backlog), ``receiver`` (the client's webhook endpoint, a
process of its own), ``watch`` (progress, CPU and memory every second), ``procfs`` (what
``/proc`` says of a process), ``results`` (what the run did, read back from the database) and
``report`` (the table's rows, ``soak.json``, ``soak.md`` and the plot).
"""
