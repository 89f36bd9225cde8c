"""The dashboard's chart, drawn on the server as SVG: no chart library, nothing from a CDN.

``minute_chart(series)`` draws sent, failed and bounced mails per minute over the last hour
(``dashboard.series``) as three lines on one scale, with a legend and the largest value on the
axis. The admin serves it at ``/admin/dashboard/chart.svg`` and the page shows it as an image,
so it can run nothing; it uses presentation attributes only (no ``style``), which the admin's
Content-Security-Policy allows.
"""

from markupsafe import escape

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 28, 28  # margins, pixels
COLOURS = {"sent": "#2e7d32", "failed": "#c62828", "bounced": "#ef6c00"}


def minute_chart(series):
    """An SVG document of ``series`` (``{"minutes": [...], "sent": [...], ...}``)."""
    minutes = series["minutes"]
    peak = max([1, *(value for name in COLOURS for value in series[name])])
    parts = [_frame(peak, minutes)]
    for name, colour in COLOURS.items():
        parts.append(_line(series[name], peak, colour, name))
    parts.append(_legend(series))
    body = "\n".join(parts)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11">\n'
        f"<title>Mails per minute, last hour</title>\n{body}\n</svg>\n"
    )


def _x(index, count):
    """The x coordinate of minute ``index`` of ``count``."""
    span = WIDTH - LEFT - RIGHT
    return LEFT + (span * index / max(count - 1, 1))


def _y(value, peak):
    """The y coordinate of ``value`` on a scale from 0 to ``peak``."""
    span = HEIGHT - TOP - BOTTOM
    return TOP + span - span * value / peak


def _frame(peak, minutes):
    """The axes, the peak and zero on the y axis, the first and last minute on the x axis."""
    first = _clock(minutes[0]) if minutes else ""
    last = _clock(minutes[-1]) if minutes else ""
    bottom = HEIGHT - BOTTOM
    return (
        f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>'
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}" stroke="#999"/>'
        f'<line x1="{LEFT}" y1="{bottom}" x2="{WIDTH - RIGHT}" y2="{bottom}" stroke="#999"/>'
        f'<line x1="{LEFT}" y1="{TOP}" x2="{WIDTH - RIGHT}" y2="{TOP}" stroke="#eee"/>'
        f'<text x="{LEFT - 4}" y="{TOP + 4}" text-anchor="end">{peak}</text>'
        f'<text x="{LEFT - 4}" y="{bottom + 4}" text-anchor="end">0</text>'
        f'<text x="{LEFT}" y="{HEIGHT - 8}">{escape(first)} UTC</text>'
        f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 8}" text-anchor="end">{escape(last)} UTC</text>'
    )


def _line(values, peak, colour, name):
    """One series as a polyline."""
    points = " ".join(f"{_x(i, len(values)):.1f},{_y(v, peak):.1f}" for i, v in enumerate(values))
    return (
        f'<polyline data-series="{name}" fill="none" stroke="{colour}" stroke-width="2" '
        f'points="{points}"/>'
    )


def _legend(series):
    """Each series' colour, name and total over the hour."""
    items = []
    for position, (name, colour) in enumerate(COLOURS.items()):
        x = LEFT + 8 + position * 150
        items.append(
            f'<rect x="{x}" y="8" width="10" height="10" fill="{colour}"/>'
            f'<text x="{x + 14}" y="17">{name}: {sum(series[name])} in the hour</text>'
        )
    return "".join(items)


def _clock(moment):
    """``HH:MM`` of an ISO 8601 time."""
    return moment[11:16]
