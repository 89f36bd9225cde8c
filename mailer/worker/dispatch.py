"""Which provider each claimed mail goes to first: failover order, or spread by weight, under
shared rate caps.

``PROVIDER_STRATEGY`` ``failover`` (the default) sends through the first usable provider in
``PROVIDERS`` order; ``weighted`` spreads mail across the usable providers in proportion to
``PROVIDER_WEIGHTS``, with a smooth weighted round robin (nginx's), so even a small batch
follows the weights. Either way a provider at its ``PROVIDER_RATE_LIMITS`` cap counts as
unavailable for the moment: its share overflows to the others, and when every provider is at
its cap no mail is claimed (none fails or spends an attempt) until a token is due.

A mail's order is its first provider, then the other usable ones in ``PROVIDERS`` order, so a
transient failure still fails over; a failover to a capped provider takes a token of its own.
Then the providers the guard steers away from for the mail's recipient domain go last
(``Dispatcher.demote``, by the ``demoted`` hook: ``mailer.worker.steering``).
"""

from collections import Counter

from mailer.validation.addresses import bare_address
from mailer.worker import ratecap
from mailer.worker.circuit import PROBE, USE

STRATEGIES = ("failover", "weighted")


def weights(config, names):
    """Each provider's weight in ``weighted`` (``PROVIDER_WEIGHTS``; one not named weighs 1)."""
    return {name: config["PROVIDER_WEIGHTS"].get(name, 1.0) for name in names}


def caps(config, names):
    """The shared rate cap of each capped provider of ``names``, mails per second, by name."""
    return {
        name: rate
        for name, rate in config["PROVIDER_RATE_LIMITS"].items()
        if name in names and rate > 0
    }


def plan(config, names, rates):
    """Each provider's weight, cap and current rate, as ``/readyz`` and the metrics show them.

    ``rates`` are ``ratecap.current_rates``: the sends of the last whole second, counted in the
    database for capped providers only, so an uncapped provider's rate and cap are None.
    """
    weighed, capped = weights(config, names), caps(config, names)
    return {
        name: {
            "weight": weighed[name],
            "rate_limit": capped.get(name),
            "current_rate": rates.get(name),
        }
        for name in names
    }


def no_demotion(domain):
    """The default ``demoted`` hook: no provider goes last for any domain."""
    return frozenset()


def recipient_domain(row):
    """The lower-case domain of a claimed mail's first ``to`` address ('' if it has none)."""
    to = row["to_address"] or ()
    return bare_address(to[0]).rpartition("@")[2] if to else ""


class Dispatcher:
    """Plans the first provider of each mail of a claim, and admits failovers under the caps.

    ``demoted(domain)`` names the providers to put last for mail to a recipient domain (the
    guard's steering).
    """

    def __init__(self, engine, providers, breakers, config, demoted=no_demotion):
        self.engine = engine
        self.demoted = demoted
        self.providers = list(providers)
        self.breakers = breakers
        self.strategy = config["PROVIDER_STRATEGY"]
        if self.strategy not in STRATEGIES:
            raise ValueError(f"PROVIDER_STRATEGY must be one of {', '.join(STRATEGIES)}")
        names = [provider.name for provider in self.providers]
        self.weights = weights(config, names)
        self.caps = caps(config, names)
        self._current = dict.fromkeys(names, 0.0)  # the round robin's running weights
        self.wait_hint = None  # seconds until a capped provider has a token again

    def ensure_rows(self):
        """Create the shared buckets of the capped providers."""
        if self.caps:
            with self.engine.begin() as conn:
                ratecap.ensure_rows(conn, self.caps)

    def plan(self, room):
        """The provider order of up to ``room`` mails to claim now (fewer under the caps)."""
        usable = [p for p in self.providers if self.breakers.mode(p.name) == USE]
        if not usable or room <= 0:
            return []
        wanted = self._wanted(usable, room)
        granted = self._reserve(usable, wanted, room)
        return [self._order(first) for first in self._interleave(granted)]

    def _order(self, first):
        """A mail's order: ``first``, then the others in ``PROVIDERS`` order.

        A provider waiting for its probe (half-open) that ``PROVIDERS`` puts before ``first``
        goes before it: one mail wins the probe (``Breakers.try_probe``), so a recovered
        provider gets its traffic back; the others skip it.
        """
        probes = [
            p
            for p in self.providers[: self.providers.index(first)]
            if self.breakers.mode(p.name) == PROBE
        ]
        rest = [p for p in self.providers if p is not first and p not in probes]
        return [*probes, first, *rest]

    def demote(self, row, order):
        """``order`` (a claimed mail's, by the strategy) with the providers ``demoted`` names
        for the mail's recipient domain moved last, each part in its order."""
        names = self.demoted(recipient_domain(row))
        if not names:
            return order
        return [p for p in order if p.name not in names] + [p for p in order if p.name in names]

    def admit(self, provider):
        """Whether a failover may use ``provider`` now: a token if it is capped."""
        if provider.name not in self.caps:
            return True
        with self.engine.begin() as conn:
            taken, _ = ratecap.take(conn, provider.name, self.caps[provider.name], 1)
        return taken == 1

    def _wanted(self, usable, room):
        """How many of ``room`` mails each usable provider should take first, by strategy."""
        if self.strategy == "failover":
            return Counter({usable[0].name: room})
        return Counter(self._round_robin(usable, room))

    def _round_robin(self, usable, count):
        """``count`` picks of a smooth weighted round robin over ``usable``."""
        picks = []
        total = sum(self.weights[p.name] for p in usable)
        for _ in range(count):
            for provider in usable:
                self._current[provider.name] += self.weights[provider.name]
            best = max(usable, key=lambda p: self._current[p.name])
            self._current[best.name] -= total
            picks.append(best.name)
        return picks

    def _reserve(self, usable, wanted, room):
        """Tokens for the wanted shares, then the shortfall from whoever has room; by name."""
        granted, waits, exhausted = Counter(), [], set()
        for provider in usable:  # first each provider's own share
            self._grant(provider.name, wanted[provider.name], granted, waits, exhausted)
        for provider in usable:  # then what a capped one could not take overflows
            short = room - sum(granted.values())
            if short <= 0:
                break
            if provider.name not in exhausted:
                self._grant(provider.name, short, granted, waits, exhausted)
        self.wait_hint = min(waits) if waits and not sum(granted.values()) else None
        return granted

    def _grant(self, name, count, granted, waits, exhausted):
        """Add up to ``count`` first sends for ``name`` (all of them, if it is not capped)."""
        if count <= 0:
            return
        if name not in self.caps:
            granted[name] += count
            return
        with self.engine.begin() as conn:
            taken, wait = ratecap.take(conn, name, self.caps[name], count)
        granted[name] += taken
        if taken < count:
            waits.append(wait)
            exhausted.add(name)

    def _interleave(self, granted):
        """The granted first providers mixed evenly, so a small claim is not all one provider."""
        by_name = {p.name: p for p in self.providers}
        left = Counter({name: count for name, count in granted.items() if count > 0})
        firsts = []
        while left:
            for name in list(left):
                firsts.append(by_name[name])
                left[name] -= 1
                if left[name] == 0:
                    del left[name]
        return firsts
