"""Review schedules: how often the security logs are reviewed, and what the reviewer checks.

```yaml
reviews:
  check_interval: 5m                # how often the server looks for overdue reviews
  schedules:                        # omitted: the shipped daily, weekly and monthly schedules
    - name: daily                   # a shipped name: the fields left out are the shipped ones
    - name: weekly
      checklist:                    # replaces the shipped weekly checklist
        - id: alerts
          text: Every open alert is triaged (acknowledged, resolved or a false positive).
          section: alerts
    - name: quarterly-access
      period: 90d
      grace: 14d
      severity: medium
      description: Quarterly access review for the auditors.
      checklist:
        - {id: admins, text: Every cluster-admin binding has an owner., section: rbac_changes}
```

The shipped schedules are YAML files in ``k3watch/review/checklists/`` (one per schedule).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from typing import Annotated, Literal

import msgspec
import yaml

from k3watch.alert import Severity
from k3watch.review.signoff_periods import Cadence, Period, period_of
from k3watch.rules.extension import parse_duration

ReportSection = Literal[
    "alerts",
    "new_identities",
    "rbac_changes",
    "exec_sessions",
    "secret_access",
    "denied_requests",
    "pipeline_health",
    "rule_health",
]
REPORT_SECTIONS: tuple[str, ...] = ReportSection.__args__  # type: ignore[attr-defined]
Name = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
CHECKLIST_PACKAGE = "k3watch.review"
CHECKLIST_DIRECTORY = "checklists"


class ChecklistItem(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One thing the reviewer checks and records as done, not applicable or issue found."""

    id: Name
    """Short identifier, unique in its checklist (lowercase letters, digits, ``_.-``)."""
    text: str
    """What to check, as the reviewer reads it."""
    section: str | None = None
    """The review report's section that shows what to look at: alerts, new_identities,
    rbac_changes, exec_sessions, secret_access, denied_requests, pipeline_health or
    rule_health."""

    def __post_init__(self) -> None:
        if self.section is not None and self.section not in REPORT_SECTIONS:
            raise ValueError(
                f"checklist item {self.id!r}: section {self.section!r} is not one of "
                f"{', '.join(REPORT_SECTIONS)}"
            )


class ScheduleConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A review schedule. For a shipped schedule's name (``daily``, ``weekly``, ``monthly``),
    the fields left out keep their shipped values; a new name needs a period and a
    checklist."""

    name: Name
    """Names the schedule in reviews, alerts and the API (``daily``)."""
    period: str | None = None
    """``1d`` (a UTC day), ``7d`` (an ISO week from Monday 00:00 UTC), ``30d`` (a calendar
    month) or ``90d`` (a calendar quarter)."""
    grace: str | None = None
    """How long after the period ends its review may still be signed before it is overdue
    (default 1d)."""
    severity: str | None = None
    """Severity of the alert raised when the review is overdue (default medium)."""
    description: str | None = None
    """What the review is for (shown in lists, exports and the overdue alert)."""
    checklist: tuple[ChecklistItem, ...] | None = None
    """The items the reviewer walks through; replaces the shipped checklist."""

    def __post_init__(self) -> None:
        where = f"schedule {self.name!r}"
        if self.period is not None:
            Cadence.parse(self.period)
        if self.grace is not None:
            parse_duration(self.grace, f"{where}: grace")
        if self.severity is not None:
            Severity.parse(self.severity)
        if self.checklist is not None:
            ids = [item.id for item in self.checklist]
            repeated = sorted({i for i in ids if ids.count(i) > 1})
            if repeated:
                raise ValueError(f"checklist item ids must be unique: {', '.join(repeated)}")
            if not ids:
                raise ValueError("a checklist needs at least one item")


class ReviewsConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Scheduled reviews of the security logs, signed off by a person (docs/review.md)."""

    schedules: tuple[ScheduleConfig, ...] | None = None
    """The schedules; when left out, the shipped ``daily`` (critical and high alerts),
    ``weekly`` (the full checklist) and ``monthly`` (RBAC and rule health) schedules."""
    check_interval: str = "5m"
    """How often the server looks for overdue reviews (and raises their alerts)."""
    overdue_alerts: bool = True
    """Raise an alert, delivered like the others, when a review is overdue."""

    def __post_init__(self) -> None:
        parse_duration(self.check_interval, "check_interval")
        if self.schedules is not None:
            names = [s.name for s in self.schedules]
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                raise ValueError(f"schedule names must be unique: {', '.join(repeated)}")
            shipped = shipped_schedules()
            for schedule in self.schedules:
                if schedule.name not in shipped and (
                    schedule.period is None or schedule.checklist is None
                ):
                    raise ValueError(
                        f"schedule {schedule.name!r} is not a shipped one "
                        f"({', '.join(shipped)}): give it a period and a checklist"
                    )

    def resolved(self) -> tuple[Schedule, ...]:
        """The schedules in effect, shipped values filled in."""
        shipped = shipped_schedules()
        chosen = self.schedules if self.schedules is not None else tuple(shipped.values())
        return tuple(_resolve(s, shipped.get(s.name)) for s in chosen)

    @property
    def interval(self) -> float:
        return parse_duration(self.check_interval, "reviews.check_interval")


@dataclass(frozen=True, slots=True)
class Schedule:
    """A schedule in effect: every value known."""

    name: str
    cadence: Cadence
    grace: float
    """Seconds after the end of a period before its unsigned review is overdue."""
    severity: Severity
    description: str
    checklist: tuple[ChecklistItem, ...]

    def period_of(self, when: float) -> Period:
        return period_of(self.cadence, when)

    def due(self, period: Period) -> float:
        """When the review of ``period`` becomes overdue."""
        return period.end + self.grace


def _resolve(given: ScheduleConfig, shipped: ScheduleConfig | None) -> Schedule:
    def pick(name: str) -> object:
        value = getattr(given, name)
        return getattr(shipped, name) if value is None and shipped is not None else value

    period = pick("period")
    checklist = pick("checklist")
    assert isinstance(period, str) and isinstance(checklist, tuple)  # checked by the config
    grace = pick("grace")
    severity = pick("severity")
    description = pick("description")
    return Schedule(
        name=given.name,
        cadence=Cadence.parse(period),
        grace=parse_duration(grace if isinstance(grace, str) else "1d", "grace"),
        severity=Severity.parse(severity if isinstance(severity, str) else "medium"),
        description=description if isinstance(description, str) else "",
        checklist=checklist,
    )


@functools.cache
def shipped_schedules() -> dict[str, ScheduleConfig]:
    """The schedules of ``k3watch/review/checklists/*.yml``, by name, in the order daily,
    weekly, monthly (then any other, by name)."""
    directory = resources.files(CHECKLIST_PACKAGE).joinpath(CHECKLIST_DIRECTORY)
    found: dict[str, ScheduleConfig] = {}
    for entry in sorted(directory.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".yml"):
            continue
        schedule = msgspec.convert(yaml.safe_load(entry.read_text("utf-8")), ScheduleConfig)
        if schedule.period is None or schedule.checklist is None:
            raise ValueError(f"shipped schedule {entry.name} needs a period and a checklist")
        found[schedule.name] = schedule
    order = {"daily": 0, "weekly": 1, "monthly": 2}
    return dict(sorted(found.items(), key=lambda kv: (order.get(kv[0], 3), kv[0])))
