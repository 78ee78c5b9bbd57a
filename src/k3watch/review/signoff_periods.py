"""The periods a review covers, aligned in UTC so that every server agrees on them.

=========  ============================================  =============
period     covers                                        label
=========  ============================================  =============
``1d``     one UTC day, from 00:00                       ``2024-05-13``
``7d``     one ISO week, from Monday 00:00               ``2024-W20``
``30d``    one calendar month, from the 1st 00:00        ``2024-05``
``90d``    one calendar quarter (Jan, Apr, Jul, Oct)     ``2024-Q2``
=========  ============================================  =============

A period is the half-open interval ``[start, end)`` in epoch seconds. ``30d`` and ``90d`` name
calendar months and quarters, not 30 or 90 days: an auditor asks for "the review of May".
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta


class Cadence(enum.Enum):
    """How often a schedule's review is due, and how its periods are aligned."""

    DAY = "1d"
    WEEK = "7d"
    MONTH = "30d"
    QUARTER = "90d"

    @classmethod
    def parse(cls, text: str) -> Cadence:
        """``1d``, ``7d`` (or ``1w``), ``30d`` or ``90d``; ValueError for anything else."""
        found = _ALIASES.get(text.strip().lower())
        if found is None:
            raise ValueError(
                f"period {text!r} is not one of 1d (a UTC day), 7d (an ISO week from Monday), "
                "30d (a calendar month) or 90d (a calendar quarter)"
            )
        return found

    @property
    def noun(self) -> str:
        return {"1d": "day", "7d": "week", "30d": "month", "90d": "quarter"}[self.value]


_ALIASES = {
    "1d": Cadence.DAY,
    "24h": Cadence.DAY,
    "7d": Cadence.WEEK,
    "1w": Cadence.WEEK,
    "30d": Cadence.MONTH,
    "90d": Cadence.QUARTER,
}


@dataclass(frozen=True, slots=True, order=True)
class Period:
    """One period of a cadence: ``[start, end)`` in epoch seconds, and its label."""

    start: float
    end: float
    label: str
    cadence: Cadence

    def contains(self, when: float) -> bool:
        return self.start <= when < self.end

    def next(self) -> Period:
        return period_of(self.cadence, self.end)

    def previous(self) -> Period:
        return period_of(self.cadence, self.start - 1)


def _epoch(day: date) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def period_of(cadence: Cadence, when: float) -> Period:
    """The period of ``cadence`` that contains the epoch time ``when``."""
    today = datetime.fromtimestamp(when, tz=UTC).date()
    if cadence is Cadence.DAY:
        first, last = today, today + timedelta(days=1)
        label = today.isoformat()
    elif cadence is Cadence.WEEK:
        first = today - timedelta(days=today.weekday())  # Monday
        last = first + timedelta(days=7)
        year, week, _ = today.isocalendar()
        label = f"{year}-W{week:02d}"
    elif cadence is Cadence.MONTH:
        first = today.replace(day=1)
        last = _add_months(first, 1)
        label = f"{today.year}-{today.month:02d}"
    else:
        quarter = (today.month - 1) // 3
        first = date(today.year, quarter * 3 + 1, 1)
        last = _add_months(first, 3)
        label = f"{today.year}-Q{quarter + 1}"
    return Period(_epoch(first), _epoch(last), label, cadence)


_LABELS = {
    Cadence.DAY: re.compile(r"(\d{4})-(\d{2})-(\d{2})"),
    Cadence.WEEK: re.compile(r"(\d{4})-W(\d{2})"),
    Cadence.MONTH: re.compile(r"(\d{4})-(\d{2})"),
    Cadence.QUARTER: re.compile(r"(\d{4})-Q([1-4])"),
}
_EXAMPLES = {
    Cadence.DAY: "2024-05-13",
    Cadence.WEEK: "2024-W20",
    Cadence.MONTH: "2024-05",
    Cadence.QUARTER: "2024-Q2",
}


def parse_period(cadence: Cadence, label: str) -> Period:
    """The period a label names (``2024-05-13``, ``2024-W20``, ``2024-05``, ``2024-Q2``)."""
    match = _LABELS[cadence].fullmatch(label.strip())
    problem = f"{label!r} is not a {cadence.noun} like {_EXAMPLES[cadence]}"
    if match is None:
        raise ValueError(problem)
    numbers = [int(part) for part in match.groups()]
    try:
        if cadence is Cadence.DAY:
            first = date(numbers[0], numbers[1], numbers[2])
        elif cadence is Cadence.WEEK:
            first = date.fromisocalendar(numbers[0], numbers[1], 1)
        elif cadence is Cadence.MONTH:
            first = date(numbers[0], numbers[1], 1)
        else:
            first = date(numbers[0], (numbers[1] - 1) * 3 + 1, 1)
    except ValueError:
        raise ValueError(problem) from None
    return period_of(cadence, _epoch(first))


def parse_instant(text: str) -> float | None:
    """A date (``2024-05-15``, midnight UTC), an RFC 3339 time or epoch seconds; None when it
    is none of them."""
    text = text.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return _epoch(date.fromisoformat(text))
        if re.fullmatch(r"\d+(\.\d+)?", text):
            return float(text)
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # UTC, like every period
    return when.timestamp()


def periods_between(cadence: Cadence, start: float, end: float) -> list[Period]:
    """The periods that end after ``start`` and at or before ``end``, oldest first."""
    out: list[Period] = []
    period = period_of(cadence, start)
    while period.end <= end:
        out.append(period)
        period = period.next()
    return out
