"""The soak's results written out: rows of the bench's table, ``soak.json`` (everything,
samples included), ``soak.md`` (a block ready for BENCHMARKS.md) and the plot (PNG, matplotlib's
Agg backend: no display needed)."""

import json
import os
import time

from devkit.bench.report import Row, fmt
from devkit.bench.soak.results import LAGS

WEBHOOK_TARGET = 0.95  # webhooks delivered per second against status changes per second
EVENTS_TARGET = 0.95  # events recorded per second against events posted per second
RSS_GROWTH = 1.10  # the end's RSS at most this times the RSS at a tenth of the run: flat ...
RSS_SLACK_MB = 5.0  # ... or at most this much more (caches warming up are no leak)
SERVICE = ("api", "worker", "smtp", "postgres", "postgres-server")  # the CPU of the service
# The memory that must stay flat: the service's processes, PostgreSQL's per backend.
FLAT = ("api", "worker-1", "worker-2", "smtp", "postgres per backend")
KINDS = {  # the service's first, then the harness's
    "api": "API (gunicorn)",
    "worker": "workers",
    "smtp": "SMTP door",
    "postgres": "PostgreSQL backends",
    "postgres-server": "PostgreSQL's own processes",
    "service total": "the service in all",
    "sandbox": "sandbox",
    "receiver": "webhook receiver",
    "bench": "bench clients and watch",
}
MB = 1024 * 1024


def cpu_per_mail(cpu, total):
    """CPU milliseconds per mail by process kind (in the order of ``KINDS``), with the
    service's total."""
    per = {kind: seconds * 1000 / total for kind, seconds in cpu.items()}
    per["service total"] = sum(per.get(kind, 0.0) for kind in SERVICE)
    return {kind: per[kind] for kind in KINDS if kind in per}


def memory(samples, names):
    """Each process's RSS over the run: at the start, at a tenth, at its peak and at the end
    (MB), and whether it stayed flat (the end at most RSS_GROWTH times the tenth's, or
    RSS_SLACK_MB more)."""
    found = {}
    for name in names:
        series = [s["rss_mb"].get(name) for s in samples if s["rss_mb"].get(name) is not None]
        if not series:
            continue
        warm = series[len(series) // 10]
        found[name] = {
            "start": series[0],
            "warm": warm,
            "peak": max(series),
            "end": series[-1],
            "flat": series[-1] <= max(warm * RSS_GROWTH, warm + RSS_SLACK_MB),
        }
    return found


def per_million(found, total):
    """Bytes per million mails from bytes for ``total`` mails."""
    return found * 1_000_000 / total if total else None


def rows(result):
    """The soak's rows of the bench's table."""
    total, stages, ratios = result["total"], result["stages"], result["ratios"]
    whole = stages["whole run"]
    out = [
        Row(
            f"soak: {total:,} mails, first submission to last webhook",
            whole["rate"],
            target="(report)",
            unit="mails/s",
            note=f"{fmt(whole['seconds'], 's')}; stages: "
            + ", ".join(
                f"{stage} {fmt(stages[stage]['rate'], '/s')}"
                for stage in ("accepted", "sent", "event recorded", "webhook delivered")
            ),
            details={"stages": stages},
        ),
        Row(
            "soak: webhooks delivered/s against status changes/s",
            ratios["webhooks"],
            target=f">= {WEBHOOK_TARGET}",
            met=None if ratios["webhooks"] is None else ratios["webhooks"] >= WEBHOOK_TARGET,
            note=f"{stages['webhook delivered']['count']:,} webhooks in "
            f"{fmt(stages['webhook delivered']['seconds'], 's')}; "
            f"{stages['status changes']['count']:,} status changes in "
            f"{fmt(stages['status changes']['seconds'], 's')}",
        ),
        Row(
            "soak: events recorded/s against events posted/s",
            ratios["events"],
            target=f">= {EVENTS_TARGET}",
            met=None if ratios["events"] is None else ratios["events"] >= EVENTS_TARGET,
            note=f"{stages['event recorded']['count']:,} recorded in "
            f"{fmt(stages['event recorded']['seconds'], 's')}; "
            f"{stages['events posted']['count']:,} posted by the sandbox, due over "
            f"{fmt(stages['events posted']['seconds'], 's')} (posts began "
            f"{fmt(result['sandbox']['events'].get('late_mean'), 's')} late on average, "
            f"{fmt(result['sandbox']['events'].get('late_max'), 's')} at most)",
        ),
    ]
    for name, found in result["growth"].items():
        out.append(
            Row(
                f"soak: lag behind sending, {name} (p50, last quarter)",
                found["late_s"],
                found["early_s"],
                None,
                "does not grow",
                None if found["grows"] is None else not found["grows"],
                "s",
                note="baseline = the second quarter of the sending time",
            )
        )
    for name, found in result["latencies"].items():
        out.append(
            Row(f"soak: {name}, p50", found["p50_ms"], unit="ms", target="(report)"),
        )
        out.append(
            Row(f"soak: {name}, p99", found["p99_ms"], unit="ms", target="(report)"),
        )
    for kind, ms in result["cpu_ms_per_mail"].items():
        out.append(
            Row(f"soak: CPU per mail, {KINDS.get(kind, kind)}", ms, unit="ms", target="(info)")
        )
    for name, found in result["memory"].items():
        out.append(
            Row(
                f"soak: RSS of {name}",
                found["end"],
                found["warm"],
                found["end"] / found["warm"] if found["warm"] else None,
                f"end <= {RSS_GROWTH}x a tenth in (or +{RSS_SLACK_MB:g} MB)",
                found["flat"] if name in FLAT else None,
                "MB",
                note=f"start {found['start']:.1f}, peak {found['peak']:.1f}",
            )
        )
    size = result["size"]
    for label, key in (("tables", "tables"), ("indexes", "indexes"), ("WAL", "wal")):
        out.append(
            Row(
                f"soak: PostgreSQL {label} per million mails",
                size["per_million"][key] / MB,
                target="(report)",
                unit="MB",
                note=(
                    f"the database after scripts/purge --days 0: "
                    f"{size['after_purge'][key] / MB:,.1f} MB (not per million), after VACUUM "
                    f"{size['after_vacuum'][key] / MB:,.1f} MB"
                    if key != "wal"
                    else f"the server's WAL, every database's (pg_current_wal_lsn): "
                    f"a quiet machine's is the soak's; the purge wrote "
                    f"{size['after_purge']['wal'] / MB:,.0f} MB more"
                ),
            )
        )
    end = result["end_state"]
    out.append(
        Row(
            "soak: end state",
            "ok" if end["ok"] else "NOT ok",
            target="every mail final, 0 lost, 0 sent twice, every webhook once, verified",
            met=end["ok"],
            note=end_state_note(end),
            details=end,
        )
    )
    return out


def end_state_note(end):
    """The end state in a sentence."""
    hooks = end["webhooks"]
    return (
        f"{end['final']:,}/{end['total']:,} final ({end['unexpected']} not as drawn), "
        f"{end['lost']} lost, {end['sent_twice']} taken twice by the provider "
        f"({end['sent_twice_by_attempts']} by the attempts); webhooks: {hooks['written']:,} "
        f"written, {hooks['received']:,} received, {hooks['duplicates']} duplicates, "
        f"{hooks['unverified']} unverified, {hooks['missing']} missing, "
        f"{hooks['mails_without_both']} mails without their two"
    )


def markdown(result, command):
    """A section ready for BENCHMARKS.md."""
    stages, size, end = result["stages"], result["size"], result["end_state"]
    lines = [
        f"## {time.strftime('%Y-%m-%d')}: the soak, {result['total']:,} mails (issue 26)",
        "",
        f"`{command}`; {result['machine']}.",
        "",
        "| figure | value | target |",
        "|---|---|---|",
        f"| first submission to last webhook | {fmt(stages['whole run']['rate'], 'mails/s')} "
        f"({fmt(stages['whole run']['seconds'], 's')}) | |",
        "| per stage: accepted / sent / event recorded / webhook delivered | "
        + " / ".join(
            fmt(stages[stage]["rate"])
            for stage in ("accepted", "sent", "event recorded", "webhook delivered")
        )
        + " per second | |",
        f"| webhooks delivered/s against status changes/s | {fmt(result['ratios']['webhooks'])} "
        f"| >= {WEBHOOK_TARGET} |",
        f"| events recorded/s against posted/s | {fmt(result['ratios']['events'])} "
        f"| >= {EVENTS_TARGET} |",
    ]
    for name, found in result["growth"].items():
        grows = {None: "-", True: "**grows**", False: "flat"}[found["grows"]]
        lines.append(
            f"| lag behind sending, {name}: p50, second quarter to last | "
            f"{fmt(found['early_s'], 's')} to {fmt(found['late_s'], 's')} ({grows}) | "
            "does not grow |"
        )
    for name, found in result["latencies"].items():
        lines.append(
            f"| {name}, p50 / p99 | {fmt(found['p50_ms'], 'ms')} / {fmt(found['p99_ms'], 'ms')} | |"
        )
    cpu = result["cpu_ms_per_mail"]
    lines.append(
        "| CPU per mail: "
        + " / ".join(KINDS.get(kind, kind) for kind in cpu)
        + " | "
        + " / ".join(fmt(ms, "ms") for ms in cpu.values())
        + " | |"
    )
    lines.append(
        "| RSS, a tenth in to the end (MB) | "
        + ", ".join(
            f"{name} {found['warm']:.1f} to {found['end']:.1f}"
            for name, found in result["memory"].items()
        )
        + f" | end <= {RSS_GROWTH}x (or +{RSS_SLACK_MB:g} MB): {', '.join(FLAT)} |"
    )
    per = size["per_million"]
    lines += [
        f"| PostgreSQL per million mails: tables / indexes / WAL (the server's) | "
        f"{per['tables'] / MB:,.0f} / {per['indexes'] / MB:,.0f} / {per['wal'] / MB:,.0f} MB | |",
        f"| the database after `scripts/purge --days 0`: tables / indexes; after VACUUM | "
        f"{size['after_purge']['tables'] / MB:,.1f} / "
        f"{size['after_purge']['indexes'] / MB:,.1f} MB; "
        f"{size['after_vacuum']['tables'] / MB:,.1f} / "
        f"{size['after_vacuum']['indexes'] / MB:,.1f} MB | |",
        f"| end state | {'ok' if end['ok'] else '**NOT ok**'}: {end_state_note(end)} | all |",
        "",
        f"The plot (`{result['plot_name']}`): each stage's mails over the run, each stage's lag "
        "behind sending (p50, and p99 dashed) by when the mails were sent, and every process's "
        "RSS.",
        "",
    ]
    return "\n".join(lines)


def write(result, samples, folder, command):
    """``soak.json`` (the result and every second's sample) and ``soak.md`` into ``folder``."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "soak.json"), "w", encoding="utf-8") as handle:
        json.dump({**result, "samples": samples}, handle, indent=1, default=str)
    with open(os.path.join(folder, "soak.md"), "w", encoding="utf-8") as handle:
        handle.write(markdown(result, command))


def plot(result, samples, path):
    """The PNG: mails by stage, lag behind sending, RSS; each against minutes since the start."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, (done, lag, rss) = pyplot.subplots(3, 1, figsize=(10, 11), sharex=True)
    over = result["over_time"]
    minutes = over["width"] / 60
    for stage, points in over["cumulative"].items():
        done.plot([b * minutes for b, _ in points], [n for _, n in points], label=stage)
    done.set_ylabel("mails")
    done.set_title(f"The soak: {result['total']:,} mails through the whole life")
    done.legend(loc="upper left")
    times = [row["t"] / 60 for row in over["lags"]]
    for number, name in enumerate(LAGS):
        for index, style in ((0, "-"), (1, "--")):  # p50, p99
            values = [max(row[name][index] or 0.0, 1e-3) for row in over["lags"]]
            label = name if index == 0 else None
            lag.plot(times, values, style, color=f"C{number}", label=label)
    lag.set_yscale("log")
    lag.set_ylabel("lag behind sending (s)")
    lag.legend(loc="upper left")
    for name in result["memory"]:
        series = [(s["t"] / 60, s["rss_mb"][name]) for s in samples if s["rss_mb"].get(name)]
        rss.plot([t for t, _ in series], [mb for _, mb in series], label=name)
    rss.set_ylabel("RSS (MB; PostgreSQL: private)")
    rss.set_xlabel("minutes since the first submission")
    rss.legend(loc="upper left", ncol=3)
    figure.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
