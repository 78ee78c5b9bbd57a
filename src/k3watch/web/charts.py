"""Charts as SVG, drawn on the server: the UI, the HTML report and the PDF report use the same.

The SVG uses only presentation attributes (no CSS, no script), so that a PDF renderer reads
it as a browser does, and it works offline. Every mark carries its value in ``data-value``
and a ``<title>`` (a tooltip in a browser, the text a screen reader says).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from xml.sax.saxutils import escape, quoteattr

# Colour-blind-safe qualitative palette (Okabe and Ito).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442")
SEVERITY_COLOURS = {
    "critical": "#B2182B",
    "high": "#D55E00",
    "medium": "#E69F00",
    "low": "#0072B2",
    "informational": "#999999",
}
FONT = "Helvetica, Arial, sans-serif"
_TEXT = "#333333"
_GRID = "#DDDDDD"


def colour(index: int, name: str | None = None) -> str:
    """The colour of the ``index``-th series (a severity keeps its own colour)."""
    if name is not None and name in SEVERITY_COLOURS:
        return SEVERITY_COLOURS[name]
    return PALETTE[index % len(PALETTE)]


def bar_chart(
    bars: Sequence[tuple[str, float]],
    *,
    title: str,
    width: int = 560,
    unit: str = "",
    colours: Mapping[str, str] | None = None,
) -> str:
    """Horizontal bars, one per ``(label, value)``, in the given order (a value below 0, or
    not a number, is drawn as 0)."""
    bars = [(label, _positive(value)) for label, value in bars]
    row, top, label_width = 22, 28, min(220, max(60, 7 * max((len(b[0]) for b in bars), default=4)))
    height = top + row * max(1, len(bars)) + 8
    plot = width - label_width - 70
    most = max((value for _, value in bars), default=0) or 1
    parts = [_open(width, height, title), _heading(title)]
    if not bars:
        parts.append(_note(width, top + 14, "nothing in this period"))
    for i, (label, value) in enumerate(bars):
        y = top + i * row
        length = max(1.0, plot * value / most) if value else 0.0
        fill = (colours or {}).get(label) or colour(0, label)
        shown = _number(value) + unit
        parts.append(
            f'<text x="{label_width - 6}" y="{y + 15}" text-anchor="end" font-size="12" '
            f'fill="{_TEXT}" font-family="{FONT}">{escape(_cut(label, label_width // 7))}</text>'
        )
        parts.append(
            f'<rect x="{label_width}" y="{y + 3}" width="{length:.1f}" height="{row - 6}" '
            f'fill="{fill}" data-label={quoteattr(label)} data-value="{value:g}">'
            f"<title>{escape(label)}: {escape(shown)}</title></rect>"
        )
        parts.append(
            f'<text x="{label_width + length + 4:.1f}" y="{y + 15}" font-size="11" '
            f'fill="{_TEXT}" font-family="{FONT}">{escape(shown)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def time_chart(
    series: Mapping[str, Mapping[float, float]],
    *,
    title: str,
    start: float,
    end: float,
    bucket: float,
    width: int = 760,
    height: int = 220,
    unit: str = "",
) -> str:
    """Stacked columns over time: ``series`` name → {bucket start (epoch s) → value}.

    Buckets run from ``start`` (rounded down to ``bucket``) to ``end``; a missing bucket is 0,
    so a gap in the data shows as a gap in the chart. Series are stacked in the order given;
    values below 0 (or not numbers) count as 0.
    """
    if not bucket > 0:
        raise ValueError("bucket must be a positive number of seconds")
    series = {name: {s: _positive(v) for s, v in values.items()} for name, values in series.items()}
    first = math.floor(start / bucket) * bucket
    count = max(1, math.ceil((end - first) / bucket))
    starts = [first + i * bucket for i in range(count)]
    names = list(series)
    totals = [sum(series[n].get(s, 0) for n in names) for s in starts]
    most = _nice(max(totals, default=0))
    left, right, top, legend = 48, 8, 28, 18 * math.ceil(len(names) / 4) if names else 0
    bottom = 22 + legend
    plot_w, plot_h = width - left - right, height - top - bottom
    step = plot_w / count
    parts = [_open(width, height, title), _heading(title)]
    for k in range(5):  # grid lines and the value axis
        value = most * k / 4
        y = top + plot_h - plot_h * k / 4
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" '
            f'stroke="{_GRID}" stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="10" '
            f'fill="{_TEXT}" font-family="{FONT}">{escape(_number(value))}</text>'
        )
    for i, s in enumerate(starts):
        base = float(top + plot_h)
        x = left + i * step
        for index, name in enumerate(names):
            value = series[name].get(s, 0.0)
            if not value:
                continue
            h = plot_h * value / most
            base -= h
            parts.append(
                f'<rect x="{x + step * 0.1:.2f}" y="{base:.2f}" width="{max(step * 0.8, 0.5):.2f}" '
                f'height="{h:.2f}" fill="{colour(index, name)}" data-series={quoteattr(name)} '
                f'data-start="{s:.0f}" data-value="{value:g}"><title>{escape(name)} '
                f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(s))} UTC: "
                f"{escape(_number(value) + unit)}</title></rect>"
            )
    ticks = _ticks(count)
    for label_at in ticks:
        s = starts[label_at]
        parts.append(
            f'<text x="{left + (label_at + 0.5) * step:.1f}" y="{top + plot_h + 14}" '
            f'text-anchor="middle" font-size="10" fill="{_TEXT}" font-family="{FONT}">'
            f"{escape(_when(s, bucket * ticks.step))}</text>"
        )
    if not any(totals):
        parts.append(_note(width, top + plot_h / 2, "nothing in this period"))
    for index, name in enumerate(names):  # the legend, four to a row
        x = left + (index % 4) * (plot_w / 4)
        y = height - legend + 18 * (index // 4) + 4
        parts.append(
            f'<rect x="{x:.1f}" y="{y}" width="10" height="10" fill="{colour(index, name)}"/>'
            f'<text x="{x + 14:.1f}" y="{y + 9}" font-size="11" fill="{_TEXT}" '
            f'font-family="{FONT}">{escape(_cut(name, 24))}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _positive(value: float) -> float:
    return float(value) if value > 0 and math.isfinite(value) else 0.0


def _open(width: int, height: int, title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label={quoteattr(title)}>'
        f"<title>{escape(title)}</title>"
    )


def _heading(title: str) -> str:
    return (
        f'<text x="0" y="16" font-size="13" font-weight="bold" fill="{_TEXT}" '
        f'font-family="{FONT}">{escape(title)}</text>'
    )


def _note(width: int, y: float, text: str) -> str:
    return (
        f'<text x="{width / 2:.0f}" y="{y:.0f}" text-anchor="middle" font-size="12" '
        f'fill="#777777" font-family="{FONT}">{escape(text)}</text>'
    )


def _nice(value: float) -> float:
    """The smallest 1, 2 or 5 × 10^n at or above ``value`` (1 for nothing)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for factor in (1, 2, 5, 10):
        if value <= factor * power:
            return float(factor * power)
    return float(10 * power)


def _number(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M".replace(".0M", "M")
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:.1f}"


def _when(start: float, span: float) -> str:
    """A bucket's start as a label, naming the day when ``span`` (a bucket, or the distance
    between two labels) reaches a day or the bucket starts one."""
    moment = time.gmtime(start)
    midnight = moment.tm_hour == moment.tm_min == 0
    if span >= 86400:
        return time.strftime("%m-%d" if midnight else "%m-%d %H:%M", moment)
    return time.strftime("%m-%d %H:%M" if midnight else "%H:%M", moment)


def _ticks(count: int, most: int = 8) -> range:
    return range(0, count, max(1, math.ceil(count / most)))


def _cut(text: str, length: int) -> str:
    return text if len(text) <= length else text[: max(1, length - 1)] + "…"
