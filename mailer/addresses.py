"""How the service compares addresses: ``bare_address``, the one definition.

A mail's ``recipients``, the recipients of the providers' events and the suppression list all
hold bare addresses, so that each compares with the others by plain equality.
"""

import functools
from email.utils import parseaddr


@functools.lru_cache(maxsize=65536)
def bare_address(address):
    """The address of ``"Name <local@Domain>"`` as ``local@domain``: the domain compares
    case-insensitively, the local part as given.

    Cached (a pure function of a string): ``parseaddr`` was most of what building a mail's row
    costs on ``POST /mail``, and a client sends to the same addresses again and again."""
    local, _, domain = parseaddr(address)[1].rpartition("@")
    return f"{local}@{domain.lower()}"
