"""The MIME message of a mail, for the providers that send one (SES's raw content, an SMTP
relay): the bodies, the inline parts beside the HTML that shows them, then the attached files.

The parts nest as mail clients expect them (RFC 2046's multipart/alternative, RFC 2387's
multipart/related), each level only when the mail needs it::

    multipart/mixed                    attached files
      multipart/alternative            a text and an HTML body
        text/plain
        multipart/related              inline parts
          text/html
          image/png                    Content-ID: <logo@example.com>, Content-Disposition: inline
      application/pdf                  Content-Disposition: attachment

A mail with inline parts and no HTML has nothing that shows them: they go beside the text,
still inline and with their Content-ID.
"""

DEFAULT_TYPE = ("application", "octet-stream")


def add_parts(mime, message, cte=None):
    """Give ``mime`` (an ``EmailMessage`` with its headers set) the bodies and the files of
    ``message``; ``cte``: the bodies' Content-Transfer-Encoding (None: as the policy chooses)."""
    options = {"cte": cte} if cte else {}
    if message.text is not None and message.html:
        mime.set_content(message.text, **options)
        mime.add_alternative(message.html, subtype="html", **options)
    elif message.html:
        mime.set_content(message.html, subtype="html", **options)
    else:
        mime.set_content(message.text or "", **options)
    html = mime.get_body(preferencelist=("html",)) if message.html else None
    for item in message.attachments:
        if item.get("content_id"):
            _add_inline(html if html is not None else mime, item, related=html is not None)
    for item in message.attachments:
        if not item.get("content_id"):
            maintype, subtype = _types(item["content_type"])
            mime.add_attachment(
                bytes(item["content"]),
                maintype=maintype,
                subtype=subtype,
                filename=item["filename"],
            )


def _add_inline(part, item, related):
    """An inline part with its Content-ID: related to the HTML ``part``, or (``related``
    False) beside the bodies of ``part``, the message."""
    maintype, subtype = _types(item["content_type"])
    add = part.add_related if related else part.add_attachment
    add(
        bytes(item["content"]),
        maintype=maintype,
        subtype=subtype,
        disposition="inline",
        filename=item["filename"],
        cid=f"<{item['content_id']}>",
    )


def _types(content_type):
    """``(maintype, subtype)`` of a MIME type; application/octet-stream for none."""
    maintype, _, subtype = (content_type or "").partition("/")
    return (maintype, subtype) if maintype and subtype else DEFAULT_TYPE
