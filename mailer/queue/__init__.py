"""The queue: the only code that runs SQL against our tables (migrations aside). Every status
change of a mail goes through here; the logic that decides it lives in ``api``, ``admin``,
``worker`` and ``events``, which call these modules. Each module's statements are named in
``sql/<module>.sql`` and read by ``queries``:

- ``submit``: new mail, its attachments, tags and Idempotency-Key;
- ``lease``: a worker's claim, finish, release and reap;
- ``actions``: retry, cancel, release, send now, resend (clients and operators);
- ``events``: the providers' events and the roll-up of recipients into their mail;
- ``reads``: what ``GET /mail`` and ``GET /mail/<id>`` show;
- ``counts``: mail by status, and how far behind the workers are;
- ``purge``: retention;
- ``suppressions``, ``heartbeats``, ``webhooks`` (the client webhooks' outbox), ``breakers``
  (providers' circuit breakers), ``rates`` (shared send-rate caps), ``dashboard`` (the
  admin's panels) and ``notify`` (LISTEN/NOTIFY).
"""
