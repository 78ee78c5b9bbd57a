"""Alert suppression: one alert per rule and group within a window; repeats raise its count.

The window is fixed from the alert's first event (event time): activity that goes on for longer
than the window produces a new alert per window, so a responder is reminded, but never flooded.
"""

from __future__ import annotations

import heapq
import itertools

from k3watch.alert import Alert
from k3watch.telemetry import Counters


class Suppressor:
    """Merges alerts with the same fingerprint; releases each when its window has passed."""

    def __init__(
        self,
        window: float = 600.0,
        *,
        max_event_ids: int = 100,
        max_open: int = 100_000,
        counters: Counters | None = None,
    ) -> None:
        self.window = window
        self.max_event_ids = max_event_ids
        self.max_open = max_open
        self.counters = counters or Counters("alerts")
        # fingerprint → (open alert, sequence number of its deadline entry)
        self._open: dict[str, tuple[Alert, int]] = {}
        self._deadlines: list[tuple[float, int, str]] = []
        self._sequence = itertools.count()

    def __len__(self) -> int:
        return len(self._open)

    def add(self, alert: Alert) -> tuple[Alert | None, list[Alert]]:
        """Account ``alert``; return (the alert if it opened a new one, alerts it closed)."""
        closed: list[Alert] = []
        entry = self._open.get(alert.fingerprint)
        if entry is not None:
            current = entry[0]
            if self._within(current, alert):
                current.merge(alert, self.max_event_ids)
                self.counters.inc("suppressed", alert.count)
                return None, closed
            closed.append(self._close(alert.fingerprint))
        sequence = next(self._sequence)
        self._open[alert.fingerprint] = (alert, sequence)
        self.counters.inc("opened")
        deadline = alert.first_seen + self.window if alert.first_seen is not None else float("inf")
        heapq.heappush(self._deadlines, (deadline, sequence, alert.fingerprint))
        while len(self._open) > self.max_open:
            closed.extend(self._pop_earliest())
        return alert, closed

    def expire(self, now: float | None) -> list[Alert]:
        """Alerts whose window ended at or before ``now`` (event time)."""
        closed: list[Alert] = []
        if now is None:
            return closed
        while self._deadlines and self._deadlines[0][0] <= now:
            closed.extend(self._pop_earliest())
        return closed

    def drain(self) -> list[Alert]:
        """Every open alert, in order of first occurrence (end of stream)."""
        closed = sorted(
            (alert for alert, _ in self._open.values()),
            key=lambda a: (a.first_seen or 0.0, a.rule_id),
        )
        self._open.clear()
        self._deadlines.clear()
        return closed

    def _within(self, current: Alert, alert: Alert) -> bool:
        if current.first_seen is None or alert.first_seen is None:
            return True
        return alert.first_seen < current.first_seen + self.window

    def _pop_earliest(self) -> list[Alert]:
        _, sequence, key = heapq.heappop(self._deadlines)
        entry = self._open.get(key)
        if entry is None or entry[1] != sequence:
            return []  # stale: that alert was already closed and the key reused
        return [self._close(key)]

    def _close(self, key: str) -> Alert:
        alert, _ = self._open.pop(key)
        self.counters.inc("closed")
        return alert
