"""How the service compares addresses: ``bare_address``, the one definition.

A mail's ``recipients``, the recipients of the providers' events and the suppression list all
hold bare addresses, so that each compares with the others by plain equality.
"""

from email.utils import parseaddr


def bare_address(address):
    """The address of ``"Name <local@Domain>"`` as ``local@domain``: the domain compares
    case-insensitively, the local part as given."""
    local, _, domain = parseaddr(address)[1].rpartition("@")
    return f"{local}@{domain.lower()}"
