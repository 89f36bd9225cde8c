"""How the service compares addresses: ``bare_address``, the one definition.

A mail's ``recipients``, the recipients of the providers' events and the suppression list all
hold bare addresses, so that each compares with the others by plain equality.
"""

import functools
import re
from email.utils import parseaddr

# An address that is nothing but dot-atoms of these characters, which ``parseaddr`` gives back
# as it is (a thousand SendGrid events hold a thousand such addresses, most never seen before).
PLAIN = re.compile(r"[A-Za-z0-9_+=-]+(?:\.[A-Za-z0-9_+=-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")


@functools.lru_cache(maxsize=65536)
def bare_address(address):
    """The address of ``"Name <local@Domain>"`` as ``local@domain``: the domain compares
    case-insensitively, the local part as given.

    Cached (a pure function of a string): ``parseaddr`` was most of what building a mail's row
    costs on ``POST /mail``, and a client sends to the same addresses again and again. A plain
    address (``PLAIN``) skips it: parsing one cost 20 times the match (a SendGrid batch holds a
    thousand addresses, and the worker looks up every recipient it claims)."""
    plain = PLAIN.fullmatch(address) is not None
    local, _, domain = (address if plain else parseaddr(address)[1]).rpartition("@")
    return f"{local}@{domain.lower()}"
