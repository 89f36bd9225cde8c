"""Which host names and addresses mean this machine: protected mode's ``Host`` rule, and the
provider sandbox's (devkit/sandbox), which serves a developer's mail on loopback too.

A ``Host`` that is not one of them is DNS rebinding: a web page whose name now resolves to
127.0.0.1, reading what a local server answers. Standard library only, so that any tool can
use the rule without the web app.
"""

import ipaddress

LOOPBACK_NAMES = ("localhost", "localhost.")


def host_name(host):
    """The name or address of a ``Host`` header (or an Origin's host), port and brackets
    removed, lower-cased."""
    name = host.lower()
    if name.startswith("["):
        return name[1:].partition("]")[0]
    if name.count(":") == 1:
        return name.partition(":")[0]
    return name


def is_loopback_host(host):
    """Whether ``host`` (a Host header or an Origin's host, port removed) names this machine."""
    name = host_name(host)
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
