"""The scenarios, one function each: every one measures a figure against a baseline from the
same run and returns its rows of the table."""

import http.client
import json
import os
import random
import re
import statistics
import threading
import time
from collections import Counter
from datetime import datetime

from devkit.bench.client_webhooks import scenario_webhooks
from devkit.bench.harness import (
    BODY_TEXT,
    HOST,
    PYTHON,
    SENDER,
    Unavailable,
    connect,
    cpu_used,
    http_json,
    last_lines,
    libpq_url,
    say,
    tree_cpu_seconds,
)
from devkit.bench.report import Row, fmt, percentile, ratio_of
from devkit.bench.smtp_submit import scenario_smtp
from devkit.bench.soak.scenario import scenario_soak

SCENARIOS = (
    "dispatch",
    "scaleout",
    "processes",
    "latency",
    "ingest",
    "bulk",
    "templates",
    "insert",
    "million",
    "memory",
    "retention",
    "listing",
    "providers",
    "events",
    "webhooks",
    "smtp",
)
# Scenarios that run only when --only names them: the soak takes hours at its full size.
ON_REQUEST = ("soak",)

# Sizes per scenario: the full run, and --quick (a smoke run that only checks it all works).
FULL = {
    "dispatch": 10_000,
    "dispatch_rounds": 3,
    "dispatch_latency_ms": 50,
    "dispatch_in_flight": 64,
    "scaleout": 6_000,
    "scaleout_procs": (1, 2, 4),
    "processes": 6_000,
    "processes_rounds": 3,
    "latency_posts": 200,
    "latency_gap_ms": (40, 120),
    "ingest_seconds": 10.0,
    "ingest_rounds": 3,
    "ingest_concurrency": 32,
    "load_procs": 2,
    "ingest_variants": ("form", "json", "form+key", "json+key"),
    "bulk_seconds": 10.0,
    "bulk_size": 1_000,
    "bulk_concurrency": 2,
    "bulk_rounds": 3,
    "templates_rounds": 3,
    "insert_size": 1_000,
    "insert_rounds": 100,
    "million": 1_000_000,
    "million_small": 1_000,
    "claims": 30,
    "memory": 50_000,
    "retention": 200_000,
    "retention_keep": 2_000,
    "listing": 1_000_000,
    "listing_seconds": 5.0,
    "listing_rounds": 3,
    "listing_concurrency": 8,
    "providers_capped": 1_400,
    "providers_free": 2_000,
    "events_per_request": 1_000,
    "events_requests": 10,
    "events_rounds": 3,
    "events_clients": 2,
    "webhooks": 20_000,
    "webhooks_workers": 2,
    "webhooks_concurrency": 16,
    "webhooks_latency_ms": 50,
    "webhooks_receiver_ms": 50,
    "smtp_messages": 2_000,
    # The soak: mails; the sandbox's latency (ms), share of 503s, events' delay and jitter (s),
    # shares of addresses that bounce and complain, posts at once; the receiver's answer time
    # (ms); mails waiting for a worker before the clients hold back; mails per batch request;
    # mails a second the clients submit at most (0: as fast as the backlog lets them).
    "soak": 1_000_000,
    "soak_latency_ms": 50,
    "soak_fault_rate": 0.01,
    "soak_event_delay": 1.0,
    "soak_event_jitter": 1.0,
    "soak_bounce": 0.02,
    "soak_complain": 0.001,
    "soak_posters": 32,
    "soak_receiver_ms": 50,
    "soak_backlog": 3_000,
    "soak_batch": 1_000,
    "soak_rate": 0,
}
QUICK = {
    "dispatch": 200,
    "dispatch_rounds": 1,
    "dispatch_latency_ms": 50,
    "dispatch_in_flight": 64,
    "scaleout": 200,
    "scaleout_procs": (1, 2),
    "processes": 200,
    "processes_rounds": 1,
    "latency_posts": 8,
    "latency_gap_ms": (20, 40),
    "ingest_seconds": 1.5,
    "ingest_rounds": 1,
    "ingest_concurrency": 8,
    "load_procs": 2,
    "ingest_variants": ("form", "json+key"),
    "bulk_seconds": 1.5,
    "bulk_size": 1_000,
    "bulk_concurrency": 2,
    "bulk_rounds": 1,
    "templates_rounds": 1,
    "insert_size": 1_000,
    "insert_rounds": 3,
    "million": 5_000,
    "million_small": 500,
    "claims": 5,
    "memory": 1_000,
    "retention": 3_000,
    "retention_keep": 200,
    "listing": 5_000,
    "listing_seconds": 1.0,
    "listing_rounds": 1,
    "listing_concurrency": 8,
    "providers_capped": 140,
    "providers_free": 200,
    "events_per_request": 1_000,
    "events_requests": 2,
    "events_rounds": 1,
    "events_clients": 2,
    "webhooks": 200,
    "webhooks_workers": 2,
    "webhooks_concurrency": 16,
    "webhooks_latency_ms": 50,
    "webhooks_receiver_ms": 50,
    "smtp_messages": 200,
    "soak": 2_000,
    "soak_latency_ms": 50,
    "soak_fault_rate": 0.01,
    "soak_event_delay": 1.0,
    "soak_event_jitter": 1.0,
    "soak_bounce": 0.02,
    "soak_complain": 0.001,
    "soak_posters": 32,
    "soak_receiver_ms": 50,
    "soak_backlog": 3_000,
    "soak_batch": 1_000,
    "soak_rate": 0,
}


def scenario_dispatch(b):
    """1. One worker drains N mails at >= 95% of a bare sender's rate in every round (50 ms
    provider, WORKER_CONCURRENCY in flight)."""
    count, latency = b.sizes["dispatch"], b.sizes["dispatch_latency_ms"]
    in_flight = {"WORKER_CONCURRENCY": b.sizes["dispatch_in_flight"]}  # both sides
    bare, ours = [], []
    for round_number in range(b.sizes["dispatch_rounds"]):
        say(
            f"dispatch round {round_number + 1}: bare sender, {count} mails, "
            f"{in_flight['WORKER_CONCURRENCY']} in flight"
        )
        bare.append(b.bare_send(count, latency, **in_flight))
        say(f"dispatch round {round_number + 1}: one worker, {count} mails")
        ours.append(b.drain(count, 1, latency, **in_flight))
    mine, base = statistics.median(ours), statistics.median(bare)
    ratio = ratio_of(mine, base)
    rounds = [ratio_of(o, r) for o, r in zip(ours, bare, strict=True)]
    worst = min((r for r in rounds if r is not None), default=None)
    return [
        Row(
            f"dispatch ({count:,} mails, {latency} ms, {in_flight['WORKER_CONCURRENCY']} in "
            f"flight)",
            mine,
            base,
            ratio,
            f">= {DISPATCH_TARGET} every round",
            worst is not None and worst >= DISPATCH_TARGET,
            "/s",
            note=f"medians of {len(ours)} alternated runs; rounds' ratios "
            f"{', '.join(f'{r:.2f}' for r in rounds if r is not None)} (worst "
            f"{fmt(worst)}); worker {', '.join(f'{r:.0f}' for r in ours)}/s, bare sender "
            f"{', '.join(f'{r:.0f}' for r in bare)}/s",
            details={"worker_rates": ours, "bare_rates": bare},
        )
    ]


def scenario_scaleout(b):
    """2. 1, 2 and 4 worker processes: more drain faster while the provider is not the limit."""
    count, rows = b.sizes["scaleout"], []
    for latency, judged in ((b.sizes["dispatch_latency_ms"], True), (0, False)):
        rates = {}
        for processes in b.sizes["scaleout_procs"]:
            say(f"scale-out: {processes} worker(s), {count} mails, {latency} ms")
            rates[processes] = b.drain(count, processes, latency)
        for processes in b.sizes["scaleout_procs"]:
            ratio = ratio_of(rates[processes], rates[1])
            if processes == 1:
                rows.append(
                    Row(
                        f"scale-out 1 proc, {latency} ms", rates[1], unit="/s", target="(reference)"
                    )
                )
                continue
            rows.append(
                Row(
                    f"scale-out {processes} procs, {latency} ms",
                    rates[processes],
                    rates[1],
                    ratio,
                    "> 1.0" if judged else "(info)",
                    (ratio is not None and ratio > 1.0) if judged else None,
                    "/s",
                )
            )
    return rows


PROCESSES_TARGET = 1.8  # --processes 2 against --processes 1


def scenario_processes(b):
    """2b. One command runs two sending processes (``mail_service.py --processes 2``, its
    supervisor's) at >= 1.8x the rate of ``--processes 1``, in every round; 50 ms provider,
    ``WORKER_CONCURRENCY`` at its default."""
    count, latency = b.sizes["processes"], b.sizes["dispatch_latency_ms"]
    ones, twos = [], []
    for round_number in range(b.sizes["processes_rounds"]):
        say(f"processes round {round_number + 1}: --processes 1, {count} mails, {latency} ms")
        ones.append(b.drain_supervised(count, 1, latency))
        say(f"processes round {round_number + 1}: --processes 2, {count} mails, {latency} ms")
        twos.append(b.drain_supervised(count, 2, latency))
    mine, base = statistics.median(twos), statistics.median(ones)
    rounds = [ratio_of(two, one) for two, one in zip(twos, ones, strict=True)]
    worst = min((r for r in rounds if r is not None), default=None)
    return [
        Row(
            f"--processes 2 against 1 ({count:,} mails, {latency} ms)",
            mine,
            base,
            ratio_of(mine, base),
            f">= {PROCESSES_TARGET} every round",
            worst is not None and worst >= PROCESSES_TARGET,
            "/s",
            note=f"medians of {len(twos)} alternated runs; rounds' ratios "
            f"{', '.join(f'{r:.2f}' for r in rounds if r is not None)}; --processes 2 "
            f"{', '.join(f'{r:.0f}' for r in twos)}/s, --processes 1 "
            f"{', '.join(f'{r:.0f}' for r in ones)}/s",
            details={"two_rates": twos, "one_rates": ones},
        )
    ]


PROVIDER_SETUPS = {  # name -> the worker's settings
    "one provider, cap mailgun:50": {"PROVIDERS": "mailgun", "PROVIDER_RATE_LIMITS": "mailgun:50"},
    "two providers, caps mailgun:50,sendgrid:20 (failover)": {
        "PROVIDERS": "mailgun,sendgrid",
        "PROVIDER_RATE_LIMITS": "mailgun:50,sendgrid:20",
    },
    "five providers, caps mailgun:40,sendgrid:30,ses:20,postmark:10,smtp:10 (failover)": {
        "PROVIDERS": "mailgun,sendgrid,ses,postmark,smtp",
        "PROVIDER_RATE_LIMITS": "mailgun:40,sendgrid:30,ses:20,postmark:10,smtp:10",
    },
    "one provider, no cap": {"PROVIDERS": "mailgun"},
    "two providers, weighted mailgun:3,sendgrid:1, no cap": {
        "PROVIDERS": "mailgun,sendgrid",
        "PROVIDER_STRATEGY": "weighted",
        "PROVIDER_WEIGHTS": "mailgun:3,sendgrid:1",
    },
}


def drain_split(b, count, latency_ms, settings):
    """Drain ``count`` mails with one burst worker with ``settings``; (sends/s, per provider)."""
    b.truncate()
    b.sandbox_reset(latency_ms)
    b.insert_mails(count)
    b.finish(b.start_worker("--burst", **settings), b.timeout(120 + count / 10))
    counts = b.status_counts()
    if counts != {"sent": count}:
        raise RuntimeError(f"after the drain the mails are {counts}, not all sent")
    split = Counter(r["provider"] for r in b.sandbox_log("requests"))
    return b.send_rate(count), dict(split)


def scenario_providers(b):
    """10. Total output with one provider, and with two and with five under rate caps (>= 80 %
    of the caps' sum), and weighted 3:1 without caps; one burst worker, 50 ms provider."""
    capped, free = b.sizes["providers_capped"], b.sizes["providers_free"]
    latency = b.sizes["dispatch_latency_ms"]
    results = {}
    for name, settings in PROVIDER_SETUPS.items():
        count = capped if "cap " in name or "caps" in name else free
        say(f"providers: {name}, {count:,} mails, {latency} ms")
        results[name] = (*drain_split(b, count, latency, settings), count)
    names = list(PROVIDER_SETUPS)
    one, _, one_count = results[names[0]]
    two, two_split, two_count = results[names[1]]
    five, five_split, five_count = results[names[2]]
    alone, _, _ = results[names[3]]
    weighted, weighted_split, _ = results[names[4]]
    share = weighted_split.get("mailgun", 0) / max(1, sum(weighted_split.values()))
    return [
        Row(
            f"{names[0]} ({one_count:,} mails)",
            one,
            50.0,
            ratio_of(one, 50.0),
            "(reference)",
            None,
            "/s",
            note="baseline = the cap",
        ),
        Row(
            f"{names[1]} ({two_count:,} mails)",
            two,
            one,
            ratio_of(two, one),
            ">= 56/s (80 % of 70)",
            two >= 56,
            "/s",
            note=f"baseline = one provider capped at 50/s, same run; sent by {two_split}",
        ),
        Row(
            f"{names[2]} ({five_count:,} mails)",
            five,
            one,
            ratio_of(five, one),
            ">= 88/s (80 % of 110)",
            five >= 88,
            "/s",
            note=f"baseline = one provider capped at 50/s, same run; sent by {five_split}",
        ),
        Row(
            f"{names[4]} ({free:,} mails)",
            weighted,
            alone,
            ratio_of(weighted, alone),
            "mailgun 75 % +- 5",
            abs(share - 0.75) <= 0.05,
            "/s",
            note=f"baseline = one provider, no cap, same run; sent by {weighted_split} "
            f"(mailgun {share:.1%})",
        ),
    ]


def post_spaced(port, count, gap_ms, api_key):
    """POST ``count`` mails one at a time with random gaps; [(mail id, post start unix time)]."""
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    headers = {
        "Authorization": f"Bearer {api_key}",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    posted = []
    try:
        for index in range(count):
            time.sleep(random.uniform(*gap_ms) / 1000)
            body = (
                f"from={SENDER}&to=rcpt{index}%40example.com&subject=Latency+{index}&text=Hello"
            ).encode()
            started = time.time()
            connection.request("POST", "/mail", body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read()
            if response.status != 202:
                raise RuntimeError(f"POST /mail answered {response.status}: {answer[:200]!r}")
            posted.append((json.loads(answer)["id"], started))
    finally:
        connection.close()
    return posted


def arrival_times(b):
    """Unix time at which each mail id reached the sandbox (its request's ``at``)."""
    requests_seen, messages = b.sandbox_log("requests"), b.sandbox_log("messages")
    if len(requests_seen) == len(messages) and all(r["status"] == 200 for r in requests_seen):
        # The sandbox logs a request and its message together, so the lists line up.
        return {
            m["custom"].get("mail_id"): r["at"]
            for r, m in zip(requests_seen, messages, strict=True)
        }
    return {
        m["custom"].get("mail_id"): datetime.fromisoformat(m["received_at"]).timestamp()
        for m in messages
    }


def latency_run(b, port, notify):
    """Post mails one at a time to an idle worker; post-to-provider latencies in ms."""
    count = b.sizes["latency_posts"]
    b.truncate()
    b.sandbox_reset(0)
    if not notify:
        b.sql("ALTER TABLE email DISABLE TRIGGER USER")
    try:
        worker = b.start_worker()
        time.sleep(2.0)  # started, listening, idle
        if worker.poll() is not None:
            raise RuntimeError(f"worker exited ({worker.describe_exit()}){last_lines(worker)}")
        posted = post_spaced(port, count, b.sizes["latency_gap_ms"], b.api_key)
        deadline = time.monotonic() + b.timeout(30)
        while len(b.sandbox_log("requests")) < count and time.monotonic() < deadline:
            time.sleep(0.2)
        b.supervisor.stop(worker)
    finally:
        if not notify:
            b.sql("ALTER TABLE email ENABLE TRIGGER USER")
    arrived = arrival_times(b)
    missing = [mail_id for mail_id, _ in posted if mail_id not in arrived]
    if missing:
        raise RuntimeError(f"{len(missing)} posted mails never reached the sandbox")
    return [(arrived[mail_id] - started) * 1000 for mail_id, started in posted]


def scenario_latency(b):
    """3. Idle worker: post -> provider under 50 ms p50 / 250 ms p99 (LISTEN/NOTIFY)."""
    _, port = b.start_gunicorn("app:create_app()", "api")
    triggers = b.notify_triggers()
    say("latency: polling only (triggers disabled)")
    polling = latency_run(b, port, notify=False)
    poll_p50, poll_p99 = percentile(polling, 0.5), percentile(polling, 0.99)
    count = len(polling)
    if not triggers:
        return [
            Row(
                "latency p50 (notify)",
                "not available",
                poll_p50,
                unit="ms",
                target="< 50 ms",
                note="no trigger on email: LISTEN/NOTIFY has not landed",
            ),
            Row("latency p99 (notify)", "not available", poll_p99, unit="ms", target="< 250 ms"),
        ]
    say(f"latency: LISTEN/NOTIFY (trigger {', '.join(triggers)})")
    notified = latency_run(b, port, notify=True)
    p50, p99 = percentile(notified, 0.5), percentile(notified, 0.99)
    return [
        Row(
            f"latency p50 ({count} posts)",
            p50,
            poll_p50,
            ratio_of(p50, poll_p50),
            "< 50 ms",
            p50 < 50,
            "ms",
            note="baseline = the same worker polling (trigger disabled, POLL_INTERVAL default)",
            details={"notify_ms": notified, "polling_ms": polling},
        ),
        Row(
            f"latency p99 ({count} posts)",
            p99,
            poll_p99,
            ratio_of(p99, poll_p99),
            "< 250 ms",
            p99 < 250,
            "ms",
        ),
        Row(
            f"latency max ({count} posts)",
            max(notified),
            max(polling),
            ratio_of(max(notified), max(polling)),
            "(info)",
            None,
            "ms",
        ),
    ]


FORM_BODY = (
    f"from={SENDER}&to=rcpt%40example.com&subject=Hello+from+the+benchmark"
    f"&text={BODY_TEXT.replace(' ', '+')}"
).encode()
JSON_BODY = json.dumps(
    {
        "from": SENDER,
        "to": "rcpt@example.com",
        "subject": "Hello from the benchmark",
        "text": BODY_TEXT,
    }
).encode()
BODIES = {
    "form": (FORM_BODY, "application/x-www-form-urlencoded"),
    "json": (JSON_BODY, "application/json"),
}
INGEST_TARGET = 0.85  # the rate: >= 0.85 of the minimal endpoint's
INGEST_P99_TARGET = 1.5  # p99 <= 1.5x the minimal endpoint's
DISPATCH_TARGET = 0.95  # one worker >= 0.95 of the bare sender, in every round
BULK_TARGET = 0.85  # POST /mail/batch >= 0.85 of execute_values, 2 clients
IDEMPOTENCY_TARGET = 1 / 1.15  # with a key at most 15 % slower (rate >= 0.87)


def ingest_round(b, server, label, kind="form", unique_key=False):
    """One timed load run on ``server`` (child, port) with a ``kind`` body; rate, percentiles,
    the server's CPU per request and the ids check.

    ``unique_key`` sends a fresh ``Idempotency-Key`` with every request (none is a replay)."""
    b.truncate()
    body, content_type = BODIES[kind]
    child, port = server
    cpu = tree_cpu_seconds(child.pid)
    result = b.load(
        port,
        "/mail",
        body,
        content_type,
        b.sizes["ingest_concurrency"],
        b.sizes["ingest_seconds"],
        label,
        unique_key=unique_key,
    )
    # gunicorn's CPU over the run (its warm-up second and tail included) per request answered
    answered = sum(result["statuses"].values())
    result["server_cpu_ms"] = (tree_cpu_seconds(child.pid) - cpu) * 1000 / max(1, answered)
    acked = result["ids"]
    result["committed"] = b.committed(acked)
    result["acked"] = len(set(acked))
    result["rate"] = result["items_in_window"] / result["duration"]
    return result


def summarize_load(runs):
    """Median rate of several load runs, their pooled p50/p99, and totals."""
    latencies = [ms for run in runs for ms in run["latencies_ms"]]
    return {
        "rate": statistics.median(run["rate"] for run in runs),
        "rates": [run["rate"] for run in runs],
        "p50": percentile(latencies, 0.5),
        "p99": percentile(latencies, 0.99),
        "acked": sum(run["acked"] for run in runs),
        "committed": sum(run["committed"] for run in runs),
        "statuses": dict(sum((Counter(run["statuses"]) for run in runs), Counter())),
        "errors": [error for run in runs for error in run["errors"]][:5],
        "error_count": sum(len(run["errors"]) for run in runs),
        "load_cpu_share": sum(run["cpu_seconds"] for run in runs)
        / sum(run["duration"] for run in runs),
        "server_cpu_ms": statistics.median(run.get("server_cpu_ms", 0.0) for run in runs),
        "database_cpu_ms": median_or_none([run.get("database_cpu_ms") for run in runs]),
    }


def median_or_none(values):
    """The median of ``values``, or None if one of them is None (not measured)."""
    return None if not values or None in values else statistics.median(values)


def ingest_variants(b):
    """The variants to run, e.g. ("form", "json", "form+key", "json+key"), and their kinds."""
    variants = b.sizes["ingest_variants"]
    unknown = [v for v in variants if v.removesuffix("+key") not in BODIES]
    if unknown:
        raise RuntimeError(f"unknown ingest variants {unknown}: form, json, form+key, json+key")
    return variants, sorted({v.removesuffix("+key") for v in variants}, key=list(BODIES).index)


def scenario_ingest(b):
    """4. POST /mail (form, JSON, each with and without Idempotency-Key) under gunicorn vs a
    minimal Flask + psycopg2 endpoint storing the same row, in alternated rounds."""
    ours_server = b.start_gunicorn("app:create_app()", "api")
    base_server = b.start_gunicorn("devkit.bench.minimal_app:app", "minimal")
    ours_port, base_port = ours_server[1], base_server[1]
    concurrency = b.sizes["ingest_concurrency"]
    variants, kinds = ingest_variants(b)
    for kind in kinds:
        for port, label in ((base_port, "warm-minimal"), (ours_port, "warm-ours")):
            b.load(port, "/mail", *BODIES[kind], concurrency, 1.0, f"{label}-{kind}")
    # The minimal app runs each body kind without a key, and with one where ours does.
    minimal = [f"minimal {kind}" for kind in kinds]
    minimal += [f"minimal {variant}" for variant in variants if variant.endswith("+key")]
    runs = {name: [] for name in minimal + list(variants)}
    for round_number in range(b.sizes["ingest_rounds"]):
        for kind in kinds:
            say(
                f"ingest round {round_number + 1}, {kind}: minimal app, then ours, "
                f"concurrency {concurrency}"
            )
            for variant in (kind, f"{kind}+key"):
                for server, name in ((base_server, f"minimal {variant}"), (ours_server, variant)):
                    if name in runs:
                        runs[name].append(
                            ingest_round(
                                b,
                                server,
                                f"{name.replace(' ', '-')}-{round_number}",
                                kind,
                                unique_key=variant.endswith("+key"),
                            )
                        )
    results = {name: summarize_load(done) for name, done in runs.items()}
    rows = [row for variant in variants for row in ingest_rows(results, variant, concurrency)]
    rows += idempotency_rows(results, kinds)
    ours = [results[variant] for variant in variants]
    acked, committed = sum(r["acked"] for r in ours), sum(r["committed"] for r in ours)
    base = [results[name] for name in minimal]
    rows.append(
        Row(
            "ingest: 202s committed",
            f"{committed}/{acked}",
            f"{sum(r['committed'] for r in base)}/{sum(r['acked'] for r in base)}",
            None,
            "all",
            committed == acked and acked > 0,
        )
    )
    rows[0].details = results
    return rows


def ingest_rows(results, variant, concurrency):
    """The rate and p99 rows of one ingest variant against the minimal app doing the same work
    (same body kind; with a key, the minimal app keeps it too), and with a key also against
    the minimal app without one (information)."""
    ours, base = results[variant], results[f"minimal {variant}"]
    ratio, p99_ratio = ratio_of(ours["rate"], base["rate"]), ratio_of(ours["p99"], base["p99"])
    rounds = ", ".join(
        f"{o / m:.2f}" for o, m in zip(ours["rates"], base["rates"], strict=True) if m
    )
    return [
        Row(
            f"ingest POST /mail {variant}, c={concurrency}",
            ours["rate"],
            base["rate"],
            ratio,
            f">= {INGEST_TARGET}",
            ratio is not None and ratio >= INGEST_TARGET,
            "/s",
            note=f"rounds' ratios {rounds}; load generator CPU: {ours['load_cpu_share']:.0%} "
            f"of a core (ours), {base['load_cpu_share']:.0%} (minimal); statuses ours "
            f"{ours['statuses']}, minimal {base['statuses']}; connection errors "
            f"{ours['error_count']}",
        ),
        Row(
            f"ingest {variant} p50",
            ours["p50"],
            base["p50"],
            ratio_of(ours["p50"], base["p50"]),
            "(info)",
            None,
            "ms",
        ),
        Row(
            f"ingest {variant} server CPU per request",
            ours["server_cpu_ms"],
            base["server_cpu_ms"],
            ratio_of(ours["server_cpu_ms"], base["server_cpu_ms"]),
            "(info)",
            None,
            "ms",
            note="gunicorn's processes' user + system CPU per answered "
            "request, median of the rounds: steadier than the rates on a shared machine",
        ),
        Row(
            f"ingest {variant} p99",
            ours["p99"],
            base["p99"],
            p99_ratio,
            f"<= {INGEST_P99_TARGET}x",
            p99_ratio is not None and p99_ratio <= INGEST_P99_TARGET,
            "ms",
        ),
    ] + keyless_rows(results, variant)


def keyless_rows(results, variant):
    """With a key: ours against the minimal app *without* a key (the key's whole cost shows)."""
    kind = variant.removesuffix("+key")
    if kind == variant or f"minimal {kind}" not in results:
        return []
    ours, base = results[variant], results[f"minimal {kind}"]
    return [
        Row(
            f"ingest POST /mail {variant} against minimal {kind} (no key)",
            ours["rate"],
            base["rate"],
            ratio_of(ours["rate"], base["rate"]),
            "(info)",
            None,
            "/s",
            note="the minimal app storing no key: the key's row is work it does not do",
        )
    ]


def idempotency_rows(results, kinds):
    """The cost of a key: the rate with a fresh key per request against without one."""
    rows = []
    for kind in kinds:
        if kind in results and f"{kind}+key" in results:
            keyed, plain = results[f"{kind}+key"], results[kind]
            ratio = ratio_of(keyed["rate"], plain["rate"])
            rows.append(
                Row(
                    f"Idempotency-Key cost, POST /mail {kind}",
                    keyed["rate"],
                    plain["rate"],
                    ratio,
                    ">= 0.87 (<= 15% slower)",
                    ratio is not None and ratio >= IDEMPOTENCY_TARGET,
                    "/s",
                    note="ours with a fresh Idempotency-Key per request against ours "
                    "without one, same run; baseline = without",
                )
            )
    return rows


def batch_body(size):
    """A JSON list of ``size`` mail objects for POST /mail/batch."""
    return json.dumps(
        [
            {
                "from": SENDER,
                "to": f"rcpt{index}@example.com",
                "subject": f"Batch mail {index}",
                "text": BODY_TEXT,
            }
            for index in range(size)
        ]
    ).encode()


def scenario_bulk(b):
    """5. POST /mail/batch with 1,000 mails per request at >= 0.85 of a raw execute_values of
    the same rows behind a minimal Flask endpoint (and >= 20,000 mails/s)."""
    ours = b.start_gunicorn("app:create_app()", "api")
    status, answer = http_json(
        "POST",
        f"http://{HOST}:{ours[1]}/mail/batch",
        json.loads(batch_body(1)),
        {"Authorization": f"Bearer {b.api_key}"},
    )
    if status in (404, 405):
        raise Unavailable("POST /mail/batch is not there yet")
    if status != 202 or not answer or "ids" not in answer:
        raise RuntimeError(f"POST /mail/batch with one mail answered {status}: {answer}")
    minimal = b.start_gunicorn("devkit.bench.minimal_app:app", "minimal")
    runs = {"minimal": [], "ours": []}
    for round_number in range(b.sizes["bulk_rounds"]):
        for server, label in ((minimal, "minimal"), (ours, "ours")):
            say(
                f"bulk round {round_number + 1}: {label}, {b.sizes['bulk_size']} mails per "
                f"request, concurrency {b.sizes['bulk_concurrency']}"
            )
            runs[label].append(bulk_round(b, server, f"bulk-{label}-{round_number}"))
    return bulk_rows(b, summarize_load(runs["ours"]), summarize_load(runs["minimal"]))


def bulk_round(b, server, label, body=None):
    """One timed load run of POST /mail/batch on ``server`` (child, port) with ``body`` (default:
    ``batch_body``): rate, percentiles, the ids check, and gunicorn's and PostgreSQL's CPU per
    1,000 mails acknowledged."""
    b.truncate()
    child, port = server
    server_cpu, database_cpu = tree_cpu_seconds(child.pid), b.database_cpu()
    result = b.load(
        port,
        "/mail/batch",
        body or batch_body(b.sizes["bulk_size"]),
        "application/json",
        b.sizes["bulk_concurrency"],
        b.sizes["bulk_seconds"],
        label,
    )
    thousands = max(1, len(result["ids"])) / 1000
    result["server_cpu_ms"] = (tree_cpu_seconds(child.pid) - server_cpu) * 1000 / thousands
    database = cpu_used(database_cpu, b.database_cpu())
    result["database_cpu_ms"] = None if database is None else database * 1000 / thousands
    result["rate"] = result["items_in_window"] / result["duration"]
    result["acked"] = len(set(result["ids"]))
    result["committed"] = b.committed(result["ids"])
    return result


def bulk_rows(b, ours, base):
    """The bulk scenario's rows: the rate against the minimal app's, each side's CPU per 1,000
    mails (gunicorn's, PostgreSQL's backends'), and the ids check."""
    ratio = ratio_of(ours["rate"], base["rate"])
    rounds = ", ".join(
        f"{o / m:.2f}" for o, m in zip(ours["rates"], base["rates"], strict=True) if m
    )
    concurrency = b.sizes["bulk_concurrency"]
    return [
        Row(
            f"bulk /mail/batch x{b.sizes['bulk_size']}, c={concurrency}",
            ours["rate"],
            base["rate"],
            ratio,
            f">= {BULK_TARGET}",
            ratio is not None and ratio >= BULK_TARGET,
            "mails/s",
            note=f"baseline = the minimal app's /mail/batch: one execute_values of the same rows "
            f"into the same table and a commit, {concurrency} clients, one connection each; "
            f"medians of {len(ours['rates'])} alternated rounds, rounds' ratios {rounds}; p50 "
            f"{fmt(ours['p50'], 'ms')} per request (ours), {fmt(base['p50'], 'ms')} (minimal); "
            f"statuses {ours['statuses']}; issue 5's floor: >= 20,000 mails/s "
            f"({'met' if ours['rate'] >= 20_000 else 'not met'})",
            details={"ours": ours, "minimal": base},
        ),
        *[
            Row(
                f"bulk {side} CPU per 1,000 mails",
                ours[key],
                base[key],
                ratio_of(ours[key], base[key]),
                "(info)",
                None,
                "ms",
                note=note,
            )
            for side, key, note in BULK_CPU_ROWS
            if ours[key] is not None
        ],
        Row(
            "bulk: 202s committed",
            f"{ours['committed']}/{ours['acked']}",
            f"{base['committed']}/{base['acked']}",
            None,
            "all",
            ours["committed"] == ours["acked"] and ours["acked"] > 0,
        ),
    ]


BULK_CPU_ROWS = (
    (
        "server",
        "server_cpu_ms",
        "gunicorn's processes' user + system CPU per 1,000 mails "
        "acknowledged, median of the rounds: steadier than the rates on a shared machine",
    ),
    (
        "PostgreSQL",
        "database_cpu_ms",
        "the CPU of the bench database's backends (from /proc: "
        "the server on this machine), per 1,000 mails acknowledged, median of the rounds",
    ),
)


TEMPLATES_TARGET = 0.6  # a batch of templated mails >= 0.6 of the client-rendered batch's rate
BENCH_TEMPLATE = {
    "name": "bench-receipt",
    "subject": "Batch mail {{ index }}",
    "text": "Dear {{ first_name }}, " + BODY_TEXT,
}


def templated_batch_body(size):
    """``{"defaults", "mails"}`` of ``size`` mails from ``BENCH_TEMPLATE``, each with its own
    recipient and variables: the same mails as ``batch_body``'s, rendered by the server."""
    return json.dumps(
        {
            "defaults": {"from": SENDER, "template": BENCH_TEMPLATE["name"]},
            "mails": [
                {
                    "to": f"rcpt{index}@example.com",
                    "variables": {"first_name": f"Person {index}", "index": index},
                }
                for index in range(size)
            ],
        }
    ).encode()


def scenario_templates(b):
    """21. POST /mail/batch of 1,000 templated mails with personal variables at >= 0.6 of the
    rate of 1,000 mails rendered by the client, same server, alternated rounds; and where the
    difference goes (rendering and validation per 1,000 mails, measured in this process)."""
    ours = b.start_gunicorn("app:create_app()", "api")
    url = f"http://{HOST}:{ours[1]}"
    headers = {"Authorization": f"Bearer {b.api_key}"}
    status, answer = http_json("POST", f"{url}/templates", BENCH_TEMPLATE, headers)
    if status in (404, 405):
        raise Unavailable("POST /templates is not there yet")
    if status not in (201, 409):
        raise RuntimeError(f"POST /templates answered {status}: {answer}")
    size = b.sizes["bulk_size"]
    bodies = {"client": batch_body(size), "templated": templated_batch_body(size)}
    runs = {"client": [], "templated": []}
    for round_number in range(b.sizes["templates_rounds"]):
        for label, body in bodies.items():
            say(f"templates round {round_number + 1}: {label}-rendered, {size} mails per request")
            runs[label].append(bulk_round(b, ours, f"templates-{label}-{round_number}", body))
    return templates_rows(
        b, summarize_load(runs["templated"]), summarize_load(runs["client"]), templates_profile()
    )


def templates_profile(count=1_000):
    """Milliseconds per ``count`` mails of the two steps that differ between the sides, timed
    in this process: rendering a version with personal variables (compiled once, as the server
    caches it) and validating a mail's fields."""
    from mailer.rendering import Renderer
    from mailer.validation.mail import validate_mail

    sources = {"subject": BENCH_TEMPLATE["subject"], "text": BENCH_TEMPLATE["text"]}
    version = Renderer().version((1, 1), sources)  # as a batch looks its version up once
    started = time.perf_counter()
    for index in range(count):
        version.render({"first_name": f"Person {index}", "index": index})
    rendering = (time.perf_counter() - started) * 1000
    mails = json.loads(batch_body(count))
    started = time.perf_counter()
    for mail in mails:
        validate_mail(mail)
    return {"render_ms": rendering, "validate_ms": (time.perf_counter() - started) * 1000}


def templates_rows(b, templated, client, profile):
    """The templates scenario's rows: the rate against the client-rendered batch's, each side's
    server CPU per 1,000 mails, and the profile of the difference."""
    ratio = ratio_of(templated["rate"], client["rate"])
    rounds = ", ".join(
        f"{t / c:.2f}" for t, c in zip(templated["rates"], client["rates"], strict=True) if c
    )
    cpu_ratio = ratio_of(templated["server_cpu_ms"], client["server_cpu_ms"])
    return [
        Row(
            f"templates /mail/batch x{b.sizes['bulk_size']} personal, "
            f"c={b.sizes['bulk_concurrency']}",
            templated["rate"],
            client["rate"],
            ratio,
            f">= {TEMPLATES_TARGET}",
            ratio is not None and ratio >= TEMPLATES_TARGET,
            "mails/s",
            note=f"baseline = the same server's /mail/batch of the same mails rendered by the "
            f"client; medians of {len(templated['rates'])} alternated rounds, rounds' ratios "
            f"{rounds}; statuses {templated['statuses']} (templated), {client['statuses']}",
            details={"templated": templated, "client": client, "profile": profile},
        ),
        Row(
            "templates: server CPU per 1,000 mails",
            templated["server_cpu_ms"],
            client["server_cpu_ms"],
            cpu_ratio,
            "(info)",
            None,
            "ms",
            note="gunicorn's CPU per 1,000 mails acknowledged, templated against client-rendered",
        ),
        Row(
            "templates: where the difference goes",
            profile["render_ms"],
            profile["validate_ms"],
            ratio_of(profile["render_ms"], profile["validate_ms"]),
            "(info)",
            None,
            "ms",
            note="this process, per 1,000 mails: rendering subject and text with personal "
            "variables (ours) against validating a mail's fields (baseline), which both sides "
            "do; the rest of the difference is the larger JSON body and one look-up of the "
            "version per batch",
        ),
        Row(
            "templates: 202s committed",
            f"{templated['committed']}/{templated['acked']}",
            f"{client['committed']}/{client['acked']}",
            None,
            "all",
            templated["committed"] == templated["acked"] and templated["acked"] > 0,
        ),
    ]


def insert_rows(size):
    """``size`` mail rows as ``POST /mail/batch`` stores them: validated, then made rows."""
    from mailer.queue import submit
    from mailer.validation.mail import validate_mail

    cleans = [validate_mail(item) for item in json.loads(batch_body(size))]
    return [
        submit.new_mail_row(clean, mail_id)
        for clean, mail_id in zip(cleans, submit.new_ids(size), strict=True)
    ]


def insert_api_statement(session, rows):
    """The API's own statement (``submit._submission``, reused on purpose: the point is to
    time the API's statement, not a copy that could drift from it) on the session's
    connection, as ``POST /mail/batch`` runs it (no attachments, no key)."""
    from mailer.queue import submit

    statement, params = submit._submission(rows, [{"attachments": []}] * len(rows), None, None)
    return len(session.connection().exec_driver_sql(statement, params).all())


# The baseline: the same rows as a VALUES list that psycopg2.extras.execute_values writes.
EXECUTE_VALUES_SQL = (
    "INSERT INTO email (id, from_address, to_address, cc, bcc, reply_to, subject, text, html, "
    "attempts, headers, metadata, tags, recipients, send_at, status, next_attempt_at) VALUES %s "
    "RETURNING id::text, created_at, status, next_attempt_at"
)
EXECUTE_VALUES_ROW = (
    "(%s, %s, %s, %s, %s, %s, %s, %s, %s, 0, %s, %s, %s, %s, %s, CASE WHEN %s::timestamptz > "
    "now() THEN 'scheduled' ELSE 'queued' END, GREATEST(%s::timestamptz, now()))"
)


def insert_execute_values(session, rows):
    """The same rows through psycopg2.extras.execute_values, one page, RETURNING fetched."""
    from psycopg2.extras import Json, execute_values

    values = [
        (
            row["id"],
            row["from_address"],
            row["to_address"],
            row["cc"],
            row["bcc"],
            row["reply_to"],
            row["subject"],
            row["text"],
            row["html"],
            Json(row["headers"]),
            Json(row["metadata"]),
            row["tags"],
            row["recipients"],
            row["send_at"],
            row["send_at"],
            row["send_at"],
        )
        for row in rows
    ]
    with session.connection().connection.cursor() as cursor:
        return len(
            execute_values(
                cursor,
                EXECUTE_VALUES_SQL,
                values,
                template=EXECUTE_VALUES_ROW,
                page_size=len(rows),
                fetch=True,
            )
        )


INSERT_BUILDERS = {
    "the API's statement": insert_api_statement,
    "execute_values": insert_execute_values,
}


def time_insert(engine, builder, rows):
    """(wall ms, our CPU ms) of one INSERT of ``rows`` in a transaction that is rolled back."""
    from sqlalchemy.orm import Session

    with Session(engine) as session:
        session.connection()  # checked out and begun before the clock starts
        wall, cpu = time.perf_counter(), time.process_time()
        stored = builder(session, rows)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        session.rollback()
    if stored != len(rows):
        raise RuntimeError(f"the INSERT returned {stored} rows, not {len(rows)}")
    return wall * 1000, cpu * 1000


def scenario_insert(b):
    """5b. The batch INSERT of 1,000 rows: the hand-written statement vs execute_values."""
    from mailer.config import DEFAULTS
    from mailer.database import make_engine

    size, rounds = b.sizes["insert_size"], b.sizes["insert_rounds"]
    # Made as the API's engine is (no worker batch mode), on one connection.
    engine = make_engine({**DEFAULTS, "DATABASE_URL": b.database_url}, pool_size=1)
    rows, times = insert_rows(size), {name: [] for name in INSERT_BUILDERS}
    b.truncate()
    say(f"insert: {size:,} rows, {rounds} alternated rounds of {len(INSERT_BUILDERS)} builders")
    try:
        for index in range(rounds + 2):
            turn = index % len(INSERT_BUILDERS)
            names = list(INSERT_BUILDERS)[turn:] + list(INSERT_BUILDERS)[:turn]
            for name in names:
                measured = time_insert(engine, INSERT_BUILDERS[name], rows)
                if index >= 2:  # the first two rounds warm the caches
                    times[name].append(measured)
    finally:
        engine.dispose()
    return insert_table(size, rounds, times)


def insert_table(size, rounds, times):
    """The insert scenario's rows: each builder's median wall and CPU beside execute_values."""
    medians = {
        name: (statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs))
        for name, runs in times.items()
    }
    base_wall, base_cpu = medians["execute_values"]
    rows = []
    for name in ("the API's statement",):
        wall, cpu = medians[name]
        rows += [
            Row(
                f"INSERT x{size:,} {name}, wall",
                wall,
                base_wall,
                ratio_of(wall, base_wall),
                "(report)",
                None,
                "ms",
            ),
            Row(
                f"INSERT x{size:,} {name}, CPU",
                cpu,
                base_cpu,
                ratio_of(cpu, base_cpu),
                "(report)",
                None,
                "ms",
            ),
        ]
    rows[0].note = (
        f"baseline = psycopg2.extras.execute_values of the same rows (one page); "
        f"medians of {rounds} alternated rounds, each in a transaction rolled back; "
        f"CPU = this process's"
    )
    rows[0].details = {name: runs for name, runs in times.items()}
    return rows


def claim_time(b, claims):
    """Median ms of ``lease.claim`` of 100 mails, each in a transaction rolled back."""
    from mailer.queue import lease

    engine, times = b.engine(), []
    for index in range(claims + 2):
        with engine.connect() as conn:
            transaction = conn.begin()
            started = time.perf_counter()
            rows = lease.claim(conn, "bench", 100, 60.0)
            elapsed = time.perf_counter() - started
            transaction.rollback()
        if len(rows) != 100:
            raise RuntimeError(f"claim returned {len(rows)} mails, not 100")
        if index >= 2:  # the first two warm the caches
            times.append(elapsed * 1000)
    return statistics.median(times), times


def scenario_million(b):
    """6. Claiming 100 with a million queued (or finished) rows is as fast as with 1,000."""
    big, small, claims = b.sizes["million"], b.sizes["million_small"], b.sizes["claims"]
    b.truncate()
    b.insert_mails(small)
    say(f"million: claims with {small:,} queued")
    base, base_times = claim_time(b, claims)
    b.truncate()
    say(f"million: inserting {big:,} queued mails")
    started = time.perf_counter()
    b.insert_mails(big)
    insert_seconds = time.perf_counter() - started
    queued, queued_times = claim_time(b, claims)
    b.truncate()
    say(f"million: inserting {big:,} finished mails and {small:,} queued")
    b.insert_mails(big - big // 10, "sent", age_days=1)
    b.insert_mails(big // 10, "failed", age_days=1)
    b.insert_mails(small)
    finished, finished_times = claim_time(b, claims)
    b.truncate()
    r1, r2 = ratio_of(queued, base), ratio_of(finished, base)
    return [
        Row(
            f"claim 100, {big:,} queued",
            queued,
            base,
            r1,
            "<= 1.5 (as fast)",
            r1 is not None and r1 <= 1.5,
            "ms",
            note=f"median of {claims} claims; baseline = {small:,} queued; inserting "
            f"{big:,} rows took {insert_seconds:.1f}s",
            details={"queued_ms": queued_times, "small_ms": base_times},
        ),
        Row(
            f"claim 100, {big:,} finished + {small:,} queued",
            finished,
            base,
            r2,
            "<= 1.5 (as fast)",
            r2 is not None and r2 <= 1.5,
            "ms",
            details={"finished_ms": finished_times},
        ),
    ]


LISTING_TARGET_MS = 20.0  # p99 < 20 ms at concurrency 8 with 1,000,000 rows


def fill_listing(b, count):
    """``count`` mails spread over the last ``count`` x 2.6 s: 60 % delivered, 20 % sent, 10 %
    failed, 10 % queued; 10,000 recipients (100 mails each), 100 tags (1 % of mail each)."""
    b.truncate()
    b.sql(
        """
        INSERT INTO email (id, status, from_address, to_address, recipients, tags, subject,
                           text, attempts, next_attempt_at, created_at, updated_at)
        SELECT gen_random_uuid(),
               (ARRAY['delivered', 'delivered', 'delivered', 'delivered', 'delivered',
                      'delivered', 'sent', 'sent', 'failed', 'queued'])[1 + g %% 10],
               %(sender)s, ARRAY['rcpt' || g %% 10000 || '@example.com'],
               ARRAY['rcpt' || g %% 10000 || '@example.com'], ARRAY['tag' || g %% 100],
               'Mail ' || g, %(text)s, 1, t, t, t
        FROM generate_series(1, %(count)s) AS g,
             LATERAL (SELECT now() - make_interval(secs => (%(count)s - g) * 2.6)) AS at(t)
        """,
        {"sender": SENDER, "text": BODY_TEXT, "count": count},
    )
    # Each mail's tag in mail_tag, as the statement that stores a mail writes it.
    b.sql(
        "INSERT INTO mail_tag (email_id, tag, created_at) "
        "SELECT id, unnest(tags), created_at FROM email"
    )
    b.sql("VACUUM ANALYZE email, mail_tag")


def listing_paths(b, count):
    """The pages to time: {name: [paths]} (the deep page is half-way down, by keyset)."""
    from mailer.api.listing import encode_position

    created_at, key = b.sql(
        "SELECT created_at, id FROM email ORDER BY created_at DESC, id DESC OFFSET %s LIMIT 1",
        (count // 2,),
    )[0]
    ids = [str(row[0]) for row in b.sql("SELECT id FROM email TABLESAMPLE SYSTEM (1) LIMIT 200")]
    if not ids:  # a small table's 1 % of pages can be none: its first rows will do
        ids = [str(row[0]) for row in b.sql("SELECT id FROM email LIMIT 200")]
    return {
        "GET /mail (first page)": ["/mail"],
        f"GET /mail (keyset page at {count // 2:,})": [
            f"/mail?cursor={encode_position(created_at, key)}"
        ],
        "GET /mail?status=failed": ["/mail?status=failed"],
        "GET /mail?tag= (1 % of mail)": ["/mail?tag=tag7"],
        "GET /mail?to= (100 mails)": ["/mail?to=rcpt7%40example.com"],
        "GET /mail/<id>": [f"/mail/{mail_id}" for mail_id in ids],
        "GET /health (reference)": ["/health"],
    }


def scenario_listing(b):
    """9. GET /mail pages (first, deep keyset, filtered) and GET /mail/<id> with N rows: p99 at
    concurrency 8 under 20 ms; GET /health on the same server as the HTTP floor."""
    count, seconds = b.sizes["listing"], b.sizes["listing_seconds"]
    concurrency = b.sizes["listing_concurrency"]
    say(f"listing: inserting {count:,} mails")
    started = time.perf_counter()
    fill_listing(b, count)
    fill_seconds = time.perf_counter() - started
    paths = listing_paths(b, count)
    server, port = b.start_gunicorn("app:create_app()", "api")
    for index, name in enumerate(paths):  # warm each worker's caches and connections
        b.load(
            port,
            paths[name][0],
            b"",
            "",
            concurrency,
            0.5,
            f"list-warm-{index}",
            method="GET",
            paths=paths[name],
        )
    runs = {name: [] for name in paths}
    for round_number in range(b.sizes["listing_rounds"]):
        names = list(paths)[round_number % len(paths) :] + list(paths)[: round_number % len(paths)]
        say(
            f"listing round {round_number + 1}: {len(names)} queries, {seconds}s each, "
            f"concurrency {concurrency}"
        )
        for name in names:
            cpu = tree_cpu_seconds(server.pid)
            result = b.load(
                port,
                paths[name][0],
                b"",
                "",
                concurrency,
                seconds,
                f"list-{round_number}-{list(paths).index(name)}",
                method="GET",
                paths=paths[name],
            )
            # gunicorn's CPU over the run per request answered, as ingest_round measures it
            result["server_cpu_ms"] = (
                (tree_cpu_seconds(server.pid) - cpu)
                * 1000
                / max(1, sum(result["statuses"].values()))
            )
            runs[name].append(result)
    b.truncate()
    floor = pooled(runs.pop("GET /health (reference)"))
    rows = []
    for name, done in runs.items():
        result = pooled(done)
        bad = {code: n for code, n in result["statuses"].items() if code != "200"}
        rows.append(
            Row(
                f"{name}, {count:,} rows, c={concurrency}, p99",
                result["p99"],
                floor["p99"],
                ratio_of(result["p99"], floor["p99"]),
                f"< {LISTING_TARGET_MS:.0f} ms",
                result["p99"] is not None and result["p99"] < LISTING_TARGET_MS and not bad,
                "ms",
                note=f"p50 {fmt(result['p50'], 'ms')}, {result['rate']:,.0f} req/s, "
                f"server CPU {result['server_cpu_ms']:.2f} ms per request; "
                f"baseline = GET /health p99 on the same server ({floor['rate']:,.0f} "
                f"req/s, {floor['server_cpu_ms']:.2f} ms)"
                f"{'; NOT 200: ' + str(bad) if bad else ''}",
            )
        )
    rows[0].note += (
        f"; {count:,} rows inserted by generate_series in {fill_seconds:.0f}s; "
        f"{b.sizes['listing_rounds']} rounds of {seconds}s per query, pooled"
    )
    return rows


def pooled(results):
    """Pooled p50/p99, mean rate and statuses of several load runs of one query."""
    latencies = [ms for run in results for ms in run["latencies_ms"]]
    return {
        "p50": percentile(latencies, 0.5),
        "p99": percentile(latencies, 0.99),
        "rate": statistics.mean(run["requests_in_window"] / run["duration"] for run in results),
        "statuses": dict(sum((Counter(run["statuses"]) for run in results), Counter())),
        "server_cpu_ms": statistics.median(run.get("server_cpu_ms", 0.0) for run in results),
    }


EVENTS_TARGET, EVENTS_FLOOR = 0.8, 2000  # >= 0.8 of the baseline, >= 2,000 events/s
EVENT_INSERT = (
    "INSERT INTO delivery_event (email_id, provider, dedup_key, type, provider_event, "
    "recipient, occurred_at, payload) VALUES %s"
)


def sent_by_sendgrid(b, count):
    """``count`` mails as the worker leaves them once SendGrid took them (with their recipient
    rows); [(id, recipient, SendGrid message id)]."""
    b.truncate()
    rows = b.sql(
        "INSERT INTO email (id, status, from_address, to_address, recipients, subject, "
        "text, provider, provider_message_id, attempts) "
        "SELECT gen_random_uuid(), 'sent', %s, ARRAY['r' || n || '@example.com'], "
        "ARRAY['r' || n || '@example.com'], 'Hi', 'Hello', 'sendgrid', 'sg' || n, 1 "
        "FROM generate_series(1, %s) AS n RETURNING id, recipients[1], "
        "provider_message_id",
        (SENDER, count),
    )
    b.sql(
        "INSERT INTO recipient (email_id, address, status) "
        "SELECT id, unnest(recipients), 'sent' FROM email"
    )
    b.sql("ANALYZE")
    return [(str(mail_id), address, message_id) for mail_id, address, message_id in rows]


def signed_batches(mails, per_request, private_key):
    """[(raw body, headers)]: SendGrid batches of ``per_request`` events (processed, then
    delivered, for each mail), each signed as SendGrid signs them."""
    from mailer.events.signatures import SENDGRID_SIGNATURE, SENDGRID_TIMESTAMP, sendgrid_sign

    events = [
        {
            "email": address,
            "timestamp": int(time.time()),
            "event": kind,
            "sg_event_id": os.urandom(12).hex(),
            "mail_id": mail_id,
            "sg_message_id": f"{message_id}.x",
        }
        for mail_id, address, message_id in mails
        for kind in ("processed", "delivered")
    ]
    batches = []
    for start in range(0, len(events), per_request):
        raw = json.dumps(events[start : start + per_request]).encode()
        stamp = str(int(time.time()))
        batches.append(
            (
                raw,
                {
                    SENDGRID_TIMESTAMP: stamp,
                    "Content-Type": "application/json",
                    SENDGRID_SIGNATURE: sendgrid_sign(private_key, stamp, raw),
                },
            )
        )
    return batches


def in_threads(clients, batches, handle):
    """Run ``handle(batch)`` over ``batches`` from ``clients`` threads; seconds taken."""
    queue = list(reversed(batches))
    errors = []

    def client():
        """Take batches until none is left."""
        state = {}
        while True:
            try:
                batch = queue.pop()
            except IndexError:
                return
            try:
                handle(batch, state)
            except Exception as err:  # reported after the run
                errors.append(repr(err))
                return

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"{len(errors)} clients failed: {errors[0]}")
    return time.perf_counter() - started


def post_batch(port):
    """A handler for ``in_threads``: POST the batch to /webhooks/sendgrid on a kept-alive
    connection; raise unless every event was new."""

    def handle(batch, state):
        raw, headers = batch
        connection = state.setdefault("http", http.client.HTTPConnection(HOST, port, timeout=60))
        connection.request("POST", "/webhooks/sendgrid", body=raw, headers=headers)
        response = connection.getresponse()
        answer = response.read()
        if response.status != 200 or json.loads(answer)["new"] != len(json.loads(raw)):
            raise RuntimeError(f"/webhooks/sendgrid answered {response.status}: {answer[:200]!r}")

    return handle


def verify_and_insert(url, public_key):
    """The baseline's handler: verify the signature, parse, one execute_values of the event
    rows and a commit, on a connection of the client's own."""
    from psycopg2.extras import Json, execute_values

    from mailer.events.signatures import SENDGRID_SIGNATURE, SENDGRID_TIMESTAMP, sendgrid_valid

    def handle(batch, state):
        raw, headers = batch
        if not sendgrid_valid(
            public_key, headers[SENDGRID_TIMESTAMP], raw, headers[SENDGRID_SIGNATURE]
        ):
            raise RuntimeError("the baseline's signature did not verify")
        conn = state.setdefault("db", connect(url))
        rows = [
            (
                event["mail_id"],
                "sendgrid",
                event["sg_event_id"],
                event["event"],
                event["event"],
                event["email"],
                event["timestamp"],
                Json(event),
            )
            for event in json.loads(raw)
        ]
        with conn.cursor() as cursor:
            execute_values(
                cursor,
                EVENT_INSERT,
                rows,
                page_size=len(rows),
                template="(%s, %s, %s, %s, %s, %s, to_timestamp(%s), %s)",
            )
        conn.commit()

    return handle


def reset_events(b):
    """Back to 'sent', no events: the next run meets the same rows."""
    b.sql("DELETE FROM delivery_event")
    b.sql("DELETE FROM webhook_outbox")
    b.sql("UPDATE recipient SET status = 'sent', updated_at = now()")
    b.sql("UPDATE email SET status = 'sent'")
    b.sql("VACUUM ANALYZE delivery_event, recipient, email")


def scenario_events(b):
    """11. SendGrid's event webhook, 1,000 signed events per request from 2 clients, against
    signature verification plus a raw insert of the same event rows (>= 0.8, >= 2,000/s)."""
    from mailer.events.signatures import new_sendgrid_keys, sendgrid_public_key

    per_request, requests_per_round = b.sizes["events_per_request"], b.sizes["events_requests"]
    clients = b.sizes["events_clients"]
    private_key, public_text = new_sendgrid_keys()
    _, port = b.start_gunicorn("app:create_app()", "api", SENDGRID_WEBHOOK_PUBLIC_KEY=public_text)
    mails = sent_by_sendgrid(b, per_request * requests_per_round // 2)
    public_key = sendgrid_public_key(public_text)
    ours, base = [], []
    events = len(mails) * 2
    for round_number in range(b.sizes["events_rounds"]):
        for name, handler, rates in (
            ("baseline", verify_and_insert(b.database_url, public_key), base),
            ("ours", post_batch(port), ours),
        ):
            reset_events(b)
            batches = signed_batches(mails, per_request, private_key)
            say(
                f"events round {round_number + 1}: {name}, {len(batches)} requests of "
                f"{per_request} events, {clients} clients"
            )
            rates.append(events / in_threads(clients, batches, handler))
    stored = b.sql("SELECT count(*) FROM delivery_event")[0][0]
    delivered = b.status_counts().get("delivered", 0)
    reset_events(b)
    if stored != events or delivered != len(mails):
        raise RuntimeError(
            f"ours stored {stored} of {events} events, {delivered} of {len(mails)} mails delivered"
        )
    mine, theirs = statistics.median(ours), statistics.median(base)
    ratio = ratio_of(mine, theirs)
    return [
        Row(
            f"SendGrid webhook, {per_request:,} signed events a request, {clients} clients",
            mine,
            theirs,
            ratio,
            f">= {EVENTS_TARGET}, >= {EVENTS_FLOOR:,}/s",
            ratio is not None and ratio >= EVENTS_TARGET and mine >= EVENTS_FLOOR,
            "events/s",
            note=f"medians of {len(ours)} alternated rounds of {events:,} events (ours "
            f"{', '.join(f'{r:,.0f}' for r in ours)}/s; baseline "
            f"{', '.join(f'{r:,.0f}' for r in base)}/s); baseline = the bench process "
            f"verifying each signature and inserting the same event rows with one "
            f"execute_values and a commit, {clients} threads, a connection each; ours also "
            f"moves recipients and mails to delivered and queues client webhooks",
            details={"ours": ours, "baseline": base},
        )
    ]


def rss_mb(pid):
    """VmRSS of ``pid`` in MB, or None once it has exited."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def sample_drain(b, worker, count):
    """RSS samples of ``worker`` every second while it drains: [(seconds, MB, mails sent)]."""
    samples, last_reset = [], time.monotonic()  # (seconds, MB, mails sent so far)
    started = time.monotonic()
    deadline = started + b.timeout(120 + count / 20)
    sent = 0
    while worker.poll() is None and time.monotonic() < deadline:
        mb = rss_mb(worker.pid)
        if sent < count / 10:  # progress is needed only to find the warm sample; then spare it
            sent = b.sql("SELECT count(*) FROM email WHERE status = 'sent'")[0][0]
        if mb is not None:
            samples.append((round(time.monotonic() - started, 1), mb, sent))
        if count > 100_000 and time.monotonic() - last_reset > 10:
            b.sandbox_reset(0)  # the sandbox keeps every message: bound its memory
            last_reset = time.monotonic()
        time.sleep(1.0)
    return samples


def scenario_memory(b):
    """7. Worker RSS stays flat and under 200 MB while it drains N mails (0 ms provider)."""
    count = b.sizes["memory"]
    b.truncate()
    b.sandbox_reset(0)
    b.insert_mails(count)
    say(f"memory: one worker drains {count:,} mails, RSS sampled every second")
    worker = b.start_worker("--burst")
    samples = sample_drain(b, worker, count)
    b.finish(worker, 5)
    counts = b.status_counts()
    if counts != {"sent": count}:
        raise RuntimeError(f"after the drain the mails are {counts}")
    sending = [s for s in samples if s[2] > 0] or samples
    if not sending:
        raise RuntimeError("no RSS sample was taken (the drain was too quick)")
    start_mb, end_mb = sending[0][1], sending[-1][1]
    warm = next((s[1] for s in sending if s[2] >= count / 10), start_mb)
    peak = max(s[1] for s in samples)
    elapsed = samples[-1][0] if samples else None
    flat = end_mb <= warm * 1.10
    return [
        Row(
            f"worker RSS draining {count:,} mails",
            peak,
            warm,
            ratio_of(end_mb, warm),
            "peak < 200 MB, end <= 1.10x warm",
            peak < 200 and flat,
            "MB",
            note=f"RSS start {start_mb:.1f} MB, at 10% sent {warm:.1f} MB, peak "
            f"{peak:.1f} MB, end {end_mb:.1f} MB; {len(samples)} samples over "
            f"~{elapsed}s; ratio = end / at-10%",
            details={"samples": samples},
        )
    ]


class TransactionWatcher(threading.Thread):
    """Samples pg_stat_activity every few ms: the transactions of other clients and their ages."""

    def __init__(self, url, database):
        """Watch ``database`` through a connection to ``url``."""
        super().__init__(name="xact-watch", daemon=True)
        self.url, self.database = url, database
        self.stop_event = threading.Event()
        self.ages = {}  # (pid, xact_start) -> longest age seen, seconds

    def run(self):
        """Sample until stopped."""
        connection = connect(self.url)
        try:
            with connection.cursor() as cursor:
                while not self.stop_event.is_set():
                    cursor.execute(
                        "SELECT pid, xact_start, "
                        "extract(epoch FROM clock_timestamp() - xact_start) "
                        "FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid() "
                        "AND backend_type = 'client backend' AND xact_start IS NOT NULL",
                        (self.database,),
                    )
                    for pid, xact_start, age in cursor.fetchall():
                        key = (pid, xact_start)
                        self.ages[key] = max(self.ages.get(key, 0.0), float(age))
                    time.sleep(0.003)
        finally:
            connection.close()


def old_finished(b, days):
    """How many finished mails are older than ``days``."""
    return b.sql(
        "SELECT count(*) FROM email WHERE status IN ('sent', 'failed') "
        "AND updated_at < now() - make_interval(days => %s)",
        (days,),
    )[0][0]


def fill_retention(b, count, keep):
    """``count`` finished mails 60 days old with one attempt each, plus recent ones to keep."""
    b.truncate()
    b.insert_mails(count - count // 10, "sent", age_days=60)
    b.insert_mails(count // 10, "failed", age_days=60)
    b.insert_mails(keep, "sent", age_days=1)
    b.insert_mails(keep, "queued")
    b.sql(
        "INSERT INTO delivery_attempt (email_id, number, provider, outcome, status_code, "
        "worker, created_at) SELECT id, 1, 'mailgun', 'sent', 200, 'bench', created_at "
        "FROM email WHERE status <> 'queued'"
    )
    b.sql("VACUUM ANALYZE email")
    b.sql("VACUUM ANALYZE delivery_attempt")


def raw_purge(b, days, batch_size):
    """The baseline: a hand-written batched DELETE loop; (rows/s, longest batch s, batches)."""
    import psycopg2

    connection = psycopg2.connect(libpq_url(b.database_url))
    longest, total, batches = 0.0, 0, 0
    started = time.perf_counter()
    try:
        while True:
            began = time.perf_counter()
            with connection.cursor() as cursor:
                cursor.execute(
                    "DELETE FROM email WHERE id IN (SELECT id FROM email WHERE status IN "
                    "('sent', 'failed') AND updated_at < now() - make_interval(days => %s) "
                    "LIMIT %s)",
                    (days, batch_size),
                )
                deleted = cursor.rowcount
            connection.commit()
            longest = max(longest, time.perf_counter() - began)
            total, batches = total + deleted, batches + 1
            if deleted < batch_size:
                break
    finally:
        connection.close()
    return total / (time.perf_counter() - started), longest, batches, total


def run_purge(b, count, days, batch_size):
    """Run ``python -m mailer.queue.purge`` (scripts/purge): seconds, transaction ages, its log."""
    config_file = os.path.join(b.folder, "purge.cfg")
    with open(config_file, "w", encoding="utf-8") as handle:
        handle.write("# settings for the benchmark's purge run; DATABASE_URL comes from env\n")
    argv = [PYTHON, "-m", "mailer.queue.purge", "--config", config_file, "--days", str(days)]
    if batch_size:
        argv += ["--batch-size", str(batch_size)]
    watcher = TransactionWatcher(
        b.database_url, b.created_database or b.sql("SELECT current_database()")[0][0]
    )
    watcher.start()
    started = time.perf_counter()
    purge = b.start("purge", argv, b.env())
    try:
        b.finish(purge, b.timeout(120 + count / 500))
    finally:
        elapsed = time.perf_counter() - started
        watcher.stop_event.set()
        watcher.join(timeout=5)
    return elapsed, watcher.ages, purge.output()


def check_purged(b, days, keep):
    """Raise unless every old finished mail, and nothing else, is gone (attempts with it)."""
    left = old_finished(b, days)
    counts = b.status_counts()
    orphans = b.sql(
        "SELECT count(*) FROM delivery_attempt a WHERE NOT EXISTS "
        "(SELECT 1 FROM email e WHERE e.id = a.email_id)"
    )[0][0]
    if left or counts.get("sent", 0) != keep or counts.get("queued", 0) != keep or orphans:
        raise RuntimeError(
            f"purge left {left} old finished mails, {orphans} orphan attempts; "
            f"statuses now {counts}"
        )


def scenario_retention(b):
    """8. scripts/purge on N finished rows: rows/s and the longest batch transaction."""
    count, keep, days = b.sizes["retention"], b.sizes["retention_keep"], 30
    batch_size = b.args.purge_batch_size
    say(f"retention: baseline DELETE loop on {count:,} finished rows")
    fill_retention(b, count, keep)
    base_rate, base_longest, base_batches, _ = raw_purge(b, days, batch_size)
    say(f"retention: scripts/purge on {count:,} finished rows")
    fill_retention(b, count, keep)
    elapsed, ages, log = run_purge(b, count, days, batch_size)
    check_purged(b, days, keep)
    longest = max(ages.values(), default=0.0)
    # The rate over the purge's transactions (as PostgreSQL saw them), not the process start-up.
    span = (
        (
            max(start.timestamp() + age for (_, start), age in ages.items())
            - min(start.timestamp() for _, start in ages)
        )
        if ages
        else elapsed
    )
    rate = count / span
    own = re.search(r"in ([0-9.]+)s \(longest batch ([0-9.]+)s\)", log)
    own_note = (
        (
            f"; purge's own log: {float(own.group(1)):.2f}s, longest batch "
            f"{float(own.group(2)) * 1000:.0f} ms"
        )
        if own
        else ""
    )
    return [
        Row(
            f"purge {count:,} finished rows",
            rate,
            base_rate,
            ratio_of(rate, base_rate),
            "(report)",
            None,
            "rows/s",
            note=f"{span:.2f}s from its first transaction to its last ({elapsed:.1f}s with "
            f"process start-up); {len(ages)} transactions seen{own_note}; baseline = "
            f"hand-written DELETE ... LIMIT {batch_size} loop, {base_batches} transactions",
        ),
        Row(
            "purge: longest transaction",
            longest * 1000,
            base_longest * 1000,
            ratio_of(longest, base_longest),
            "(report)",
            None,
            "ms",
            note="seen from pg_stat_activity, sampled every ~3 ms",
        ),
    ]


SCENARIO_FUNCTIONS = {
    "dispatch": scenario_dispatch,
    "scaleout": scenario_scaleout,
    "processes": scenario_processes,
    "latency": scenario_latency,
    "ingest": scenario_ingest,
    "bulk": scenario_bulk,
    "templates": scenario_templates,
    "insert": scenario_insert,
    "million": scenario_million,
    "memory": scenario_memory,
    "retention": scenario_retention,
    "listing": scenario_listing,
    "providers": scenario_providers,
    "events": scenario_events,
    "webhooks": scenario_webhooks,
    "smtp": scenario_smtp,
    "soak": scenario_soak,
}
