"""Mail that comes back: replies, inbound mail and bounce reports.

Each way in (Mailgun's routes, SendGrid's Inbound Parse, Postmark's inbound webhook, the SMTP
door for ``INBOUND_DOMAINS``) turns what it received into one ``message.InboundMail``; what
happens next is the same for all of them (``mailer.queue.inbound``). The modules here read and
normalise only: no database, no Flask.
"""
