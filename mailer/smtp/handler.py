"""The door's answers to ``MAIL``, ``RCPT`` and ``DATA`` (aiosmtpd's handler hooks).

Each hook refuses what the API would refuse as early as SMTP can say it: a session that may
not send at ``MAIL``, an address the API would refuse or one recipient too many at ``RCPT``,
the message itself at the end of ``DATA``, which is answered ``250`` only once the mail is
committed. With ``INBOUND_DOMAINS``, a session without AUTH goes on past ``MAIL``, and its
recipients decide (``inbound``): mail for those domains is received, any other refused.
"""

import logging

from mailer.smtp import inbound, replies, submission
from mailer.validation.mail import ValidationError, validate_address

log = logging.getLogger("mail_service.smtp")

SEND_SCOPE = "mail:send"


class Handler:
    """aiosmtpd's handler: ``door`` (``server.Door``) runs the blocking work on its threads,
    knows whom a session acts for and counts what happens."""

    def __init__(self, door):
        self.door = door

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        """Take the sender if the session may send from it; without AUTH, take any sender of
        mail for the inbound domains (its recipients are checked at RCPT)."""
        login = self.door.login_of(session)
        if login is None and not self.door.inbound_domains:
            return replies.AUTH_REQUIRED
        try:
            if login is not None and not login.principal.may(SEND_SCOPE):
                raise replies.scope_missing(SEND_SCOPE)
            if login is not None and address:
                submission.check_sender(login.principal, checked_address(address))
        except replies.Refusal as refusal:
            return self.door.refused(refusal)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        """Take a recipient: a valid address, within ``SMTP_MAX_RECIPIENTS``, that the session
        may send to."""
        limit = self.door.config["SMTP_MAX_RECIPIENTS"]
        try:
            if len(envelope.rcpt_tos) >= limit:
                raise replies.too_many_recipients(limit)
            is_inbound = self.door.is_inbound(session, envelope, address)
            checked_address(address)
        except replies.Refusal as refusal:
            return self.door.refused(refusal)
        envelope.inbound = is_inbound
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        """Store the message; ``250`` with its id once it is committed."""
        if envelope.inbound:
            return await self.receive(envelope)
        login = self.door.login_of(session)
        try:
            mail_id = await self.door.run(
                submission.store, login, envelope.mail_from, envelope.rcpt_tos, envelope.content
            )
        except replies.Refusal as refusal:
            return self.door.refused(refusal)
        self.door.metrics.accepted.inc()
        return replies.QUEUED.format(mail_id=mail_id)

    async def receive(self, envelope):
        """Store a message for the inbound domains; ``250`` with its id once committed."""
        try:
            received = await self.door.run(
                inbound.store, envelope.mail_from, envelope.rcpt_tos, envelope.content
            )
        except replies.Refusal as refusal:
            return self.door.refused(refusal)
        self.door.metrics.received.inc()
        if received.inbound_id is None:
            return replies.REPORT_READ
        return replies.RECEIVED.format(inbound_id=received.inbound_id)


def checked_address(address):
    """``address`` as the API cleans it; ``replies.Refusal`` (553 5.1.3) naming its problem."""
    try:
        return validate_address(address)
    except ValidationError as err:
        raise replies.invalid_address(err.errors) from None
