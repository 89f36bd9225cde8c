"""Placeholder, to be replaced by the dsn branch's module of the same name: bounce reports
(DSNs) and auto-replies read from a received mail.

Only the two functions ``mailer.queue.inbound.receive`` calls, with their signatures: this
placeholder finds no report and no auto-reply in any mail.
"""


def read_report(inbound):
    """The bounce report (``BounceReport``) that ``inbound`` (an ``InboundMail``) carries, or
    None. Placeholder: always None."""
    return None


def is_auto_reply(inbound):
    """Whether ``inbound`` is an automatic answer (out of office, vacation, ...). Placeholder:
    always False."""
    return False
