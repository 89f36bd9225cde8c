"""Mail for ``INBOUND_DOMAINS``, received as their MX: the SMTP door takes it without AUTH.

A session that did not log in may deliver to addresses in those domains (compared without
case), and to nothing else (``550 5.7.1``: the door is no open relay). Its first recipient
decides what a transaction is: in protected mode, where a loopback client submits outbound mail
without AUTH, a transaction whose first recipient is in another domain stays outbound mail, as
before. A session that logged in submits outbound mail whatever the recipients.

A message is read by ``mailer.inbound.mime`` (its envelope from ``MAIL FROM`` and ``RCPT TO``)
and handed to the store (``mailer.queue.inbound.receive``) in one transaction before the end
of ``DATA`` is answered ``250 2.0.0 Ok: received as <id>``. Its id of the delivery is the
digest of its envelope and bytes: a client that lost the ``250`` and sends the same message
again makes a replay, stored once. Runs in an app context of the door (``server.Door.run``).
"""

from flask import current_app

from mailer.database import transaction
from mailer.inbound import mime
from mailer.inbound.fields import Malformed, digest_id
from mailer.queue import inbound as inbound_mail
from mailer.smtp import replies
from mailer.smtp.submission import database_refusals

SMTP = "smtp"


def domain_of(address):
    """The domain of an envelope address, lower case."""
    return address.rpartition("@")[2].strip().rstrip(".").lower()


def store(mail_from, rcpt_tos, content):
    """Read and store a message received for the inbound domains; what came of it (a
    ``queue.inbound.Received``). ``replies.Refusal`` for no message at all (554) and for a
    database that cannot take it (451: the client tries again)."""
    envelope = (mail_from or "").encode(), "\n".join(rcpt_tos).encode()
    try:
        mail = mime.parse(
            content,
            SMTP,
            "DATA",
            envelope_from=mail_from or "",  # "": a bounce's null sender, <>
            envelope_to=rcpt_tos,
            delivery_id=digest_id(*envelope, content),
        )
    except Malformed as err:
        raise replies.not_a_message(str(err)) from None
    with database_refusals(), transaction() as conn:
        return inbound_mail.receive(
            conn, mail, current_app.config, current_app.extensions["webhooks"]
        )
