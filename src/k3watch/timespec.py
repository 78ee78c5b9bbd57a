"""Times and lengths of time as people type them, read the same way by the API, the CLI and
the web UI: ``now``, epoch seconds, a date (``2026-11-27``, midnight UTC), RFC 3339, or a
duration ago (``15m``, ``24h``, ``7d``); and periods (``7d``)."""

from __future__ import annotations

import re

from k3watch.errors import UsageError
from k3watch.event import parse_time
from k3watch.rules.extension import parse_duration

LONGEST = 366 * 86400.0
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_instant(text: str | None, now: float, what: str = "time") -> float | None:
    """Epoch seconds for ``text`` (see the module); None when it is empty. UsageError, naming
    ``what``, when it is none of those forms."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    if text == "now":
        return now
    try:
        return float(text)
    except ValueError:
        pass
    when = parse_time(f"{text}T00:00:00Z" if _DATE.fullmatch(text) else text)
    if when is not None:
        return when
    try:
        return now - parse_duration(text.lstrip("-"))
    except ValueError:
        raise UsageError(
            f"{what} {text!r}: use RFC 3339, a date, epoch seconds, 'now' or a duration "
            "ago like 24h"
        ) from None


def parse_end(text: str | None, now: float, what: str = "end") -> float:
    """Like :func:`parse_instant`, but an empty ``text`` is ``now``."""
    when = parse_instant(text, now, what)
    return now if when is None else when


def parse_due(text: str | None, now: float, what: str = "due date") -> float | None:
    """A time ahead: a duration from ``now`` (``14d``), or a time as :func:`parse_instant`
    reads it; None when empty."""
    if text is None or not text.strip():
        return None
    try:
        return now + parse_duration(text.strip())
    except ValueError:
        return parse_instant(text, now, what)


def parse_period(text: str, what: str = "period") -> float:
    """A positive duration in seconds, at most a year."""
    try:
        seconds = parse_duration(text.strip(), what)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not 0 < seconds <= LONGEST:
        raise UsageError(f"{what} {text!r} must be longer than 0 and at most 366d")
    return seconds
