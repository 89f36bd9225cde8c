"""One definition of each JSON object the API answers or takes: the mail as listed,
accepted and shown, its parts, the pages, errors, the suppression list, the providers' events
and the health probes (``mail``, ``service``), and the request bodies (``requests``).

The serialisation and the OpenAPI document's schemas both come from these definitions
(``wire``): a member added to a shape is on the wire and in the document.
"""
