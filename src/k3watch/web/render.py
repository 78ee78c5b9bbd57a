"""Pages from templates: the Jinja2 environment, its filters, and the response headers every
page gets (a strict Content-Security-Policy: nothing loads from elsewhere, inline style and
script only with the page's nonce)."""

from __future__ import annotations

import secrets
import time
from typing import Any
from urllib.parse import urlencode

import orjson
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from k3watch import __version__
from k3watch.review import render as review_render
from k3watch.web.session import Session

SEVERITIES = ("critical", "high", "medium", "low", "informational")


def _when(value: float | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """Epoch seconds as UTC text (the UI shows UTC everywhere, like the audit log)."""
    if value is None:
        return "—"
    return time.strftime(fmt, time.gmtime(value)) + " UTC"


def _ago(value: float | None) -> str:
    if value is None:
        return "never"
    seconds = time.time() - value
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if abs(seconds) >= size:
            amount = int(seconds // size)
            return f"{amount}{unit} ago" if amount >= 0 else f"in {-amount}{unit}"
    return "just now"


def _pretty(value: object) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()


def _query(base: dict[str, Any] | None = None, **changes: Any) -> str:
    """A query string from ``base`` with ``changes`` (None drops a parameter)."""
    merged = dict(base or {})
    merged.update(changes)
    pairs: list[tuple[str, str]] = []
    for key, value in merged.items():
        if value is None or value == "":
            continue
        values = value if isinstance(value, list | tuple) else [value]
        pairs.extend((key, str(v)) for v in values if v is not None and v != "")
    return urlencode(pairs)


def _trusted(text: str) -> Markup:
    """Markup k3watch made itself and escaped as it did: an SVG chart of
    :mod:`k3watch.web.charts`, a report body rendered from its own template."""
    return Markup(text)


ENV = Environment(
    loader=PackageLoader("k3watch.web", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=StrictUndefined,  # a name a template uses but the page did not give is a bug
)
ENV.filters.update(
    when=_when,
    ago=_ago,
    pretty=_pretty,
    trusted=_trusted,
    # The review report's (its templates are rendered here too, for the UI and for files).
    utc=review_render.when,
    num=review_render.number,
    pct=review_render.percent,
)
ENV.globals.update(query=_query, severities=SEVERITIES, version=__version__)


def page(
    template: str,
    session: Session | None,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    """Render ``template`` for ``session`` with the security headers of every page."""
    nonce = secrets.token_urlsafe(16)
    html = ENV.get_template(template).render(session=session, nonce=nonce, **context)
    response = HTMLResponse(html, status_code=status)
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'; "
        "img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    return response


def error_page(session: Session | None, status: int, heading: str, detail: str) -> HTMLResponse:
    """A page that says what went wrong (nothing changed, not found, not allowed)."""
    return page("error.html", session, status, heading=heading, detail=detail)
