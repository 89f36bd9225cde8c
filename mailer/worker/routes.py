"""Routing by recipient domain: ``PROVIDER_ROUTES`` gives some domains providers of their own.

The setting is a list of routes separated by ``;``, each the recipient domains it takes
(separated by spaces), ``=``, and its providers in failover order (separated by commas)::

    outlook.com hotmail.com live.com=postmark,ses; gmail.com googlemail.com=ses,mailgun

A mail takes the route of the domain of its first ``to`` recipient, compared lower-case and
whole (``mail.outlook.com`` is not ``outlook.com``); a mail whose domain no route names takes
``PROVIDERS``. What a mail takes is its ``Lane``: the providers, and the name its route is
recorded and logged by (the domain that matched, or ``default``). The dispatcher plans each
lane as it plans ``PROVIDERS`` (strategy, weights, caps, breakers).

A setting that cannot work stops the process at start: a part that is not ``domains=providers``,
a domain in two routes, a route without providers, or a provider that is not in ``PROVIDERS``.
"""

import re
from dataclasses import dataclass

from mailer.validation.addresses import bare_address

SETTING = "PROVIDER_ROUTES"
DEFAULT = "default"  # the lane of a mail whose domain no route names: PROVIDERS
# Dot-separated labels without the characters that separate the setting's parts or addresses.
DOMAIN = re.compile(r"[^\s@,;=:/.]+(?:\.[^\s@,;=:/.]+)*")


@dataclass(frozen=True)
class Lane:
    """The providers a mail goes through, in order, and the name of its route: the recipient
    domain that matched one, or ``default``."""

    name: str
    providers: tuple[str, ...]

    def __str__(self):
        """As the worker's log line shows it: ``hotmail.com (postmark, ses)``."""
        return f"{self.name} ({', '.join(self.providers)})"


class Routes:
    """Each routed recipient domain's lane, and the default lane (``PROVIDERS``)."""

    def __init__(self, routes, default):
        """``routes``: {domain (lower-case): provider names in order}; ``default``: names."""
        self.default = Lane(DEFAULT, tuple(default))
        self._lanes = {domain: Lane(domain, tuple(names)) for domain, names in routes.items()}

    @classmethod
    def from_config(cls, config, usable=None):
        """The routes of ``PROVIDER_ROUTES``, checked against ``PROVIDERS``.

        ``usable`` (provider names, default ``PROVIDERS``) are the providers the process can
        send through: a route keeps only those, and one left with none is refused.
        """
        known = tuple(config["PROVIDERS"])
        usable = known if usable is None else tuple(usable)
        routes = {}
        for domain, names in parse(config[SETTING], known).items():
            kept = tuple(name for name in names if name in usable)
            if not kept:
                raise refusal(f"no provider of the route of {domain} is configured")
            routes[domain] = kept
        return cls(routes, [name for name in known if name in usable])

    def __bool__(self):
        """Whether any route is set."""
        return bool(self._lanes)

    def lanes(self):
        """Every lane: each routed domain's, then the default one."""
        return [*self._lanes.values(), self.default]

    def lane(self, domain):
        """The lane of mail to ``domain``."""
        return self._lanes.get(domain.lower(), self.default)

    def lane_of(self, address):
        """The lane of mail whose first ``to`` recipient is ``address`` (None: the default)."""
        if not self._lanes or not address:
            return self.default
        return self.lane(domain_of(address))


def domain_of(address):
    """The lower-case domain of an address (``"Ann <ann@Example.COM>"``: ``example.com``)."""
    return bare_address(address).rpartition("@")[2]


def first_recipient(row):
    """The first ``to`` address of a claimed row, or None."""
    to = row["to_address"]
    return to[0] if to else None


def parse(text, known):
    """``{domain: provider names}`` of a ``PROVIDER_ROUTES`` value; ValueError naming the
    setting and the part that cannot work. ``known`` are the names in ``PROVIDERS``."""
    routes = {}
    for part in (part.strip() for part in str(text or "").split(";")):
        if not part:
            continue
        domains, names = parse_route(part, known)
        for domain in domains:
            if domain in routes:
                raise refusal(f"{domain} is in two routes")
            routes[domain] = names
    return routes


def parse_route(part, known):
    """The domains and the provider names of one route, ``domains=providers``."""
    left, sep, right = part.partition("=")
    if not sep or "=" in right:
        raise refusal(f"{part!r} is not domains=providers")
    domains = [domain.lower() for domain in left.split()]
    if not domains:
        raise refusal(f"{part!r} names no domain")
    for domain in domains:
        if not DOMAIN.fullmatch(domain):
            raise refusal(f"{domain!r} in {part!r} is not a domain")
    names = [name.strip() for name in right.split(",") if name.strip()]
    if not names:
        raise refusal(f"the route of {domains[0]} names no provider")
    for name in names:
        if name not in known:
            raise refusal(
                f"the route of {domains[0]} names {name}, which is not in PROVIDERS "
                f"({', '.join(known)})"
            )
        if names.count(name) > 1:
            raise refusal(f"the route of {domains[0]} names {name} twice")
    return domains, tuple(names)


def refusal(reason):
    """The ValueError that stops a process whose ``PROVIDER_ROUTES`` cannot work."""
    return ValueError(f"setting {SETTING}: {reason}")
