"""Alerts: what a rule produced, with the JSON contract other tools consume."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import orjson

from k3watch.event import Event, format_time


class Severity(IntEnum):
    """Sigma levels, ordered so they compare (``critical`` = act now)."""

    INFORMATIONAL = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(s.label for s in cls)
            raise ValueError(f"unknown severity {text!r} (one of {names})") from None

    @property
    def label(self) -> str:
        return self.name.lower()


def fingerprint(rule_id: str, group: dict[str, Any]) -> str:
    """Stable identity of "this rule for this group", used to de-duplicate alerts."""
    payload = orjson.dumps([rule_id, group], option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.sha256(payload).hexdigest()[:16]


@dataclass(slots=True)
class Alert:
    """One alert: a rule matched (an event, or a correlation of events) for a group.

    Alerts for the same rule and group within the suppression window are merged: ``count``
    grows, ``last_seen`` moves, ``event_ids`` keeps the first ids up to a cap.
    """

    rule_id: str
    title: str
    severity: Severity
    tags: tuple[str, ...]
    group: dict[str, Any]
    first_seen: float | None
    last_seen: float | None
    count: int
    event_ids: list[str]
    summary: str
    rule_type: str = "event"
    fingerprint: str = ""
    sample: Event | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.fingerprint:
            self.fingerprint = fingerprint(self.rule_id, self.group)

    def merge(self, other: Alert, max_event_ids: int) -> None:
        """Fold a later occurrence of the same rule and group into this alert."""
        self.count += other.count
        if other.first_seen is not None and (
            self.first_seen is None or other.first_seen < self.first_seen
        ):
            self.first_seen = other.first_seen
        if other.last_seen is not None and (
            self.last_seen is None or other.last_seen > self.last_seen
        ):
            self.last_seen = other.last_seen
        room = max_event_ids - len(self.event_ids)
        if room > 0:
            known = set(self.event_ids)
            for event_id in other.event_ids:
                if event_id not in known:
                    self.event_ids.append(event_id)
                    known.add(event_id)
                    room -= 1
                    if not room:
                        break

    @property
    def attack_ids(self) -> list[str]:
        """ATT&CK technique ids from the tags (``attack.t1609`` → ``T1609``)."""
        out = []
        for tag in self.tags:
            name = tag.split(".", 1)[1] if tag.startswith("attack.") else ""
            if name[:1] == "t" and name[1:2].isdigit():
                out.append(name.upper())
        return out

    def to_dict(self) -> dict[str, Any]:
        """The JSON alert contract (one object per line in ``--format json``)."""
        return {
            "rule_id": self.rule_id,
            "title": self.title,
            "severity": self.severity.label,
            "tags": list(self.tags),
            "attack": self.attack_ids,
            "rule_type": self.rule_type,
            "event_ids": list(self.event_ids),
            "group": self.group,
            "first_seen": format_time(self.first_seen),
            "last_seen": format_time(self.last_seen),
            "count": self.count,
            "summary": self.summary,
            "fingerprint": self.fingerprint,
        }
