"""The SMTP door: applications that speak SMTP submit mail into the same queue as ``POST /mail``.

``smtp_service.py`` runs it. Each message is parsed (``message``) into the request ``POST /mail``
takes and stored by the same validation, rendering and statement (``submission``), before the
end of ``DATA`` is answered; ``handler`` answers each SMTP command, ``server`` listens with
aiosmtpd and checks the API key of ``AUTH``, and ``replies`` holds what the door answers.
"""
