"""Which provider each claimed mail goes to first: by its route, failover order or spread by
weight, under shared rate caps.

Each claimed mail has a lane (``routes``): the providers of the route of its recipient domain,
or ``PROVIDERS``. Within its lane, ``PROVIDER_STRATEGY`` ``failover`` (the default) sends
through the first usable provider; ``weighted`` spreads mail across the usable providers in
proportion to ``PROVIDER_WEIGHTS``, with a smooth weighted round robin (nginx's), so even a
small batch follows the weights. Either way a provider at its ``PROVIDER_RATE_LIMITS`` cap
counts as unavailable for the moment: its share overflows to the others, and mail whose lane
has no token left goes back to the queue (none fails or spends an attempt) until one is due.
The caps are the providers', whichever lanes draw on them.

A mail's order is its first provider, then the other ones of its lane in order, so a transient
failure still fails over; a failover to a capped provider takes a token of its own. The
providers ``demoted`` for the mail's recipient domain (the deliverability guard's) go last,
whatever the lane's order and strategy.
"""

from collections import Counter

from mailer.worker import ratecap
from mailer.worker.circuit import PROBE, USE
from mailer.worker.routes import Routes, domain_of, first_recipient

STRATEGIES = ("failover", "weighted")
RECHECK_SECONDS = 5.0  # a lane whose providers are all held open by hand: mail looked at again


def nothing_demoted(domain):
    """No provider goes last for any domain (the default of ``Dispatcher``'s ``demoted``)."""
    return frozenset()


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


class Dispatcher:
    """Orders the providers of each claimed mail by its lane, and admits failovers under the caps.

    ``demoted(domain)`` is the set of provider names to put last for a recipient domain
    (lower-case): the deliverability guard's hook, asked once per domain and claim; by default
    nothing goes last.
    """

    def __init__(self, engine, providers, breakers, config, demoted=nothing_demoted):
        self.engine = engine
        self.providers = list(providers)
        self.breakers = breakers
        self.strategy = config["PROVIDER_STRATEGY"]
        if self.strategy not in STRATEGIES:
            raise ValueError(f"PROVIDER_STRATEGY must be one of {', '.join(STRATEGIES)}")
        names = [provider.name for provider in self.providers]
        self.routes = Routes.from_config(config, names)
        self.demoted = demoted
        self.weights = weights(config, names)
        self.caps = caps(config, names)
        self._by_name = {provider.name: provider for provider in self.providers}
        self._current = {}  # each provider list's round robin's running weights, by its names
        self.capped_for = None  # seconds until the mail the caps held back may all go

    def ensure_rows(self):
        """Create the shared buckets of the capped providers."""
        if self.caps:
            with self.engine.begin() as conn:
                ratecap.ensure_rows(conn, self.caps)

    def plan(self, rows, probing=False):
        """The provider order of each claimed row, and the rows that must wait.

        Sets each row's ``route`` to its ``Lane``. Returns ``(jobs, held)``: ``jobs`` the
        (row, order) to send now; ``held`` the (ids, seconds) of mail to hand back to the
        queue, due again in that many seconds, because its lane has no token left (the caps)
        or no provider to use (the breakers). ``capped_for`` is then the seconds until the lane
        the caps held back last has a token again (None: the caps held nothing back). With
        ``probing`` (no provider anywhere is usable, one may be probed) one mail goes, along
        its whole lane.
        """
        self.capped_for = None
        jobs, held = [], []
        for (names, preferred), members in self._groups(rows).items():
            orders, wait = self._plan_group(names, preferred, len(members), probing)
            jobs.extend(zip(members, orders, strict=False))
            if len(orders) < len(members):
                held.append(([row["id"] for row in members[len(orders) :]], wait))
        return jobs, held

    def _groups(self, rows):
        """The rows by the provider names they go through (``_preference``), in claim order."""
        groups, demoted = {}, {}
        for row in rows:
            address = first_recipient(row)
            lane = row["route"] = self.routes.lane_of(address)
            groups.setdefault(self._preference(lane, address, demoted), []).append(row)
        return groups

    def _preference(self, lane, address, demoted):
        """The names of ``lane``'s providers, those demoted for ``address``'s domain last, and
        how many are not demoted. ``demoted`` caches the hook's answer per domain."""
        names = lane.providers
        if len(names) < 2 or not address or self.demoted is nothing_demoted:
            return names, len(names)
        domain = domain_of(address)
        if domain not in demoted:
            demoted[domain] = self.demoted(domain)
        down = demoted[domain]
        if not down or not down.intersection(names):
            return names, len(names)
        kept = tuple(name for name in names if name not in down)
        return kept + tuple(name for name in names if name in down), len(kept)

    def _plan_group(self, names, preferred, count, probing):
        """The orders of up to ``count`` mails through the providers ``names`` (the first
        ``preferred`` of them not demoted), and the seconds the others must wait (or None)."""
        providers = [self._by_name[name] for name in names]
        usable = [p for p in providers if self.breakers.mode(p.name) == USE]
        if probing or not usable:
            return self._unplanned(providers, count)
        firsts = [p for p in usable if p.name in names[:preferred]] or usable
        wanted = self._wanted(names, firsts, count)
        granted, wait = self._reserve(usable, wanted, count)
        if wait is not None:
            self.capped_for = max(wait, self.capped_for or 0.0)
        firsts = self._interleave(granted)
        return [self._order(providers, first) for first in firsts], wait

    def _unplanned(self, providers, count):
        """A lane with no provider to use now: one mail goes along it if one of its providers
        may be probed, the others wait for the next change of its breakers."""
        names = [p.name for p in providers]
        probe = any(self.breakers.mode(name) == PROBE for name in names)
        orders = [list(providers)] if probe and count else []
        change = self.breakers.seconds_to_next_change(names)
        wait = RECHECK_SECONDS if change is None else min(max(change, 0.05), RECHECK_SECONDS)
        return orders, wait

    def _order(self, providers, first):
        """A mail's order: ``first``, then the others of ``providers`` in their order.

        A provider waiting for its probe (half-open) that ``providers`` puts before ``first``
        goes before it: one mail wins the probe (``Breakers.try_probe``), so a recovered
        provider gets its traffic back; the others skip it.
        """
        probes = [
            p for p in providers[: providers.index(first)] if self.breakers.mode(p.name) == PROBE
        ]
        rest = [p for p in providers if p is not first and p not in probes]
        return [*probes, first, *rest]

    def admit(self, provider):
        """Whether a failover may use ``provider`` now: a token if it is capped."""
        if provider.name not in self.caps:
            return True
        with self.engine.begin() as conn:
            taken, _ = ratecap.take(conn, provider.name, self.caps[provider.name], 1)
        return taken == 1

    def _wanted(self, names, firsts, count):
        """How many of ``count`` mails each of ``firsts`` should take first, by strategy."""
        if self.strategy == "failover":
            return Counter({firsts[0].name: count})
        current = self._current.setdefault(names, dict.fromkeys(names, 0.0))
        return Counter(self._round_robin(current, firsts, count))

    def _round_robin(self, current, usable, count):
        """``count`` picks of a smooth weighted round robin over ``usable`` (running weights
        ``current``)."""
        picks = []
        total = sum(self.weights[p.name] for p in usable)
        for _ in range(count):
            for provider in usable:
                current[provider.name] += self.weights[provider.name]
            best = max(usable, key=lambda p: current[p.name])
            current[best.name] -= total
            picks.append(best.name)
        return picks

    def _reserve(self, usable, wanted, count):
        """Tokens for the wanted shares, then the shortfall from whoever has room: by name, and
        the seconds until a token is due if some of ``count`` got none (else None)."""
        granted, waits, exhausted = Counter(), [], set()
        for provider in usable:  # first each provider's own share
            self._grant(provider.name, wanted[provider.name], granted, waits, exhausted)
        for provider in usable:  # then what a capped one could not take overflows
            short = count - sum(granted.values())
            if short <= 0:
                break
            if provider.name not in exhausted:
                self._grant(provider.name, short, granted, waits, exhausted)
        held = count - sum(granted.values()) > 0
        return granted, min(waits) if held and waits else None

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
        left = Counter({name: count for name, count in granted.items() if count > 0})
        firsts = []
        while left:
            for name in list(left):
                firsts.append(self._by_name[name])
                left[name] -= 1
                if left[name] == 0:
                    del left[name]
        return firsts
