"""Render a review report: ``json`` (the report's data, ``model.Report``), ``md`` (Markdown
tables), ``html`` (one self-contained page: inline CSS and SVG charts, no external URL) and
``pdf`` (``review.pdf``). Every format is rendered from the same ``Report``.

The HTML page is ``web/templates/report.html``, which includes ``report_body.html``: a page of
the web UI can include the body alone (``render_body``) inside its own layout.
"""

from __future__ import annotations

import time
from typing import Literal

import jinja2
from markupsafe import Markup

from k3watch.review.charts import report_charts
from k3watch.review.model import Report, to_json

Format = Literal["json", "md", "html", "pdf"]
FORMATS: tuple[Format, ...] = ("json", "md", "html", "pdf")
MEDIA_TYPES = {
    "json": "application/json",
    "md": "text/markdown; charset=utf-8",
    "html": "text/html; charset=utf-8",
    "pdf": "application/pdf",
}
SUFFIXES = {"json": ".json", "md": ".md", "html": ".html", "pdf": ".pdf"}


def render(report: Report, fmt: str) -> bytes:
    """The report in ``fmt`` (one of ``FORMATS``)."""
    if fmt == "json":
        return to_json(report)
    if fmt == "md":
        from k3watch.review.markdown import markdown

        return markdown(report).encode()
    if fmt == "html":
        return render_page(report).encode()
    if fmt == "pdf":
        from k3watch.review.pdf import pdf

        return pdf(report)
    raise ValueError(f"unknown report format {fmt!r}: choose {', '.join(FORMATS)}")


SUMMARY_HEADINGS = [
    "Events",
    "Alerts",
    "Unresolved critical/high",
    "RBAC changes",
    "Denied",
    "Gaps",
]


def summary_figures(report: Report) -> list[str]:
    """The headline figures, in the order of ``SUMMARY_HEADINGS``."""
    return [
        number(report.events.total),
        number(report.alerts.total),
        number(report.alerts.unresolved_total),
        number(report.rbac_changes.total),
        number(report.denied.total),
        number(report.pipeline.gaps_total),
    ]


def when(epoch: float | None, precision: str = "minute") -> str:
    """Epoch seconds as UTC text: ``2026-03-04 06:47 UTC`` (``day``: ``2026-03-04``)."""
    if epoch is None:
        return ""
    moment = time.gmtime(epoch)
    if precision == "day":
        return time.strftime("%Y-%m-%d", moment)
    if precision == "second":
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", moment)
    return time.strftime("%Y-%m-%d %H:%M UTC", moment)


def number(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"


def percent(value: float) -> str:
    return f"{value * 100:.0f}%"


def environment() -> jinja2.Environment:
    """The templates' environment (the web UI's, whose ``utc``, ``num`` and ``pct`` filters
    are this module's ``when``, ``number`` and ``percent``)."""
    from k3watch.web.render import ENV  # the web UI's module imports this one

    return ENV


def _context(report: Report) -> dict[str, object]:
    charts = {name: Markup(svg) for name, svg in report_charts(report).items()}
    return {"report": report, "charts": charts}


def render_body(report: Report) -> str:
    """The report's sections as an HTML fragment (no ``<html>``, no style) for another page."""
    return environment().get_template("report_body.html").render(_context(report))


def render_page(report: Report) -> str:
    """The report as one self-contained HTML page."""
    return environment().get_template("report.html").render(_context(report))
