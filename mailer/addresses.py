"""How the service compares addresses: ``bare_address``, the one definition.

A mail's ``recipients``, the recipients of the providers' events and the suppression list all
hold bare addresses, so that each compares with the others by plain equality.
"""

import functools
import re
from email.utils import parseaddr

# An address with nothing for ``parseaddr`` to take apart (no name, quotes, comments or angle
# brackets; dot-separated atoms on both sides of the @), which it returns as it is.
PLAIN = re.compile(r"[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\Z")


@functools.lru_cache(maxsize=65536)
def bare_address(address):
    """The address of ``"Name <local@Domain>"`` as ``local@domain``: the domain compares
    case-insensitively, the local part as given.

    Cached (a pure function of a string): ``parseaddr`` was most of what building a mail's row
    costs on ``POST /mail``, and a client sends to the same addresses again and again. A plain
    address skips it (a twentieth of its cost): the worker looks up every recipient it claims."""
    plain = address if PLAIN.match(address) else parseaddr(address)[1]
    local, _, domain = plain.rpartition("@")
    return f"{local}@{domain.lower()}"
