"""The results: one Row per figure, the table printed at the end and the JSON file."""

import json
import math
import sys
from dataclasses import asdict, dataclass, field


@dataclass
class Row:
    """One line of the results table."""

    scenario: str
    ours: float | str | None
    baseline: float | str | None = None
    ratio: float | None = None
    target: str = ""
    met: bool | None = None  # None: no target, not available, or error
    unit: str = ""
    note: str = ""
    details: dict = field(default_factory=dict)


def ratio_of(ours, baseline):
    """ours / baseline, or None when either is missing or the baseline is zero."""
    if not isinstance(ours, int | float) or not isinstance(baseline, int | float) or not baseline:
        return None
    return ours / baseline


def fmt(value, unit=""):
    """A figure for the table: numbers rounded to 3 significant digits, with the unit."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".strip()


def print_table(rows):
    """Print the results as a fixed-width table."""
    header = ("scenario", "ours", "baseline", "ratio", "target", "met?")
    lines = [
        (
            row.scenario,
            fmt(row.ours, row.unit),
            fmt(row.baseline, row.unit),
            "-" if row.ratio is None else f"{row.ratio:.2f}",
            row.target or "-",
            {True: "yes", False: "NO"}.get(row.met, "-"),
        )
        for row in rows
    ]
    widths = [max([len(header[i]), *(len(line[i]) for line in lines)]) for i in range(6)]
    print("\n" + "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for line in lines:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)))
    notes = [(row.scenario, row.note) for row in rows if row.note]
    if notes:
        print()
        for scenario, note in notes:
            print(f"  {scenario}: {note}")
    sys.stdout.flush()


def percentile(values, fraction):
    """The nearest-rank percentile of ``values`` (``fraction`` in 0..1), or None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1))
    return ordered[index]


def write_json(path, info, args, rows):
    """The results as JSON, with the machine's description and the command's choices."""
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(
            {
                "machine": info,
                "quick": args.quick,
                "scenarios": args.scenarios,
                "results": [asdict(row) for row in rows],
            },
            handle,
            indent=1,
            default=str,
        )
