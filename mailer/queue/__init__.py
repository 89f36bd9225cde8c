"""The queue: the only code that runs SQL against the mail tables (submitting, leasing, actions,
events, reads, suppressions, heartbeats, purging, notifications). Every status change of a mail
goes through here."""
