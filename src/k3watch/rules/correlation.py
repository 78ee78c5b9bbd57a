"""Incremental evaluation of Sigma correlations over a stream of rule matches.

Event time drives every window, so replaying old logs gives the alerts a live run would. State
is bounded: windows expire as the event clock moves, each correlation keeps at most
``max_groups`` group keys (least recently active evicted first), and each group keeps only what
its condition needs (``gte 20`` needs the last 20 timestamps, not every event).

Conditions ``gt``/``gte`` are decided as events arrive, over a sliding window. ``lt``, ``lte``,
``eq`` and ``neq`` can only be decided when a window ends: those windows open at a group's first
event and close ``timespan`` later (a group never seen cannot be counted).
"""

from __future__ import annotations

import bisect
import math
from collections import OrderedDict, deque
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from k3watch.event import Event
from k3watch.rules.model import CorrelationRule
from k3watch.telemetry import Counters


@dataclass(slots=True)
class Hit:
    """A correlation that matched for one group."""

    rule: CorrelationRule
    group: dict[str, Any]
    first_time: float
    last_time: float
    count: int  # events (or distinct values) this hit adds to the alert
    event_ids: list[str]
    sample: Event | None
    detail: str


@dataclass(slots=True)
class _Occurrence:
    time: float
    ids: list[str]
    sample: Event | None


@dataclass(slots=True)
class _Group:
    key: tuple[Any, ...]
    last: float = 0.0
    # event_count (rising): occurrence times in order; value_count: value → occurrence
    times: deque[_Occurrence] = field(default_factory=deque)
    values: OrderedDict[Hashable, _Occurrence] = field(default_factory=OrderedDict)
    # falling conditions: a tumbling window
    start: float = 0.0
    total: int = 0
    ids: list[str] = field(default_factory=list)
    distinct: set[Hashable] = field(default_factory=set)
    sample: Event | None = None
    fired: bool = False
    # temporal / temporal_ordered: per step, the occurrence (temporal) or chain (ordered)
    steps: dict[int, _Chain] = field(default_factory=dict)


@dataclass(slots=True)
class _Chain:
    start: float
    last: float
    ids: list[str]
    sample: Event | None


class CorrelationState:
    """The running state of one correlation rule."""

    def __init__(
        self,
        rule: CorrelationRule,
        counters: Counters,
        *,
        max_groups: int = 50_000,
        max_event_ids: int = 100,
        tolerance: float = 5.0,
    ) -> None:
        self.rule = rule
        self.counters = counters
        self.max_groups = max_groups
        self.max_event_ids = max_event_ids
        self.tolerance = tolerance
        self.groups: OrderedDict[tuple[Any, ...], _Group] = OrderedDict()
        # How many occurrences a rising group must remember to decide its condition.
        # The smallest count that satisfies it (thresholds may be fractional: gte 2.5 needs 3).
        need = math.floor(rule.threshold) + 1 if rule.op == "gt" else math.ceil(rule.threshold)
        self._keep = max(need, 1)

    def __len__(self) -> int:
        return len(self.groups)

    def feed(
        self,
        step: int,
        time: float,
        ids: list[str],
        key: tuple[Any, ...],
        value: Any,
        sample: Event | None,
    ) -> list[Hit]:
        """Account one match of input ``step`` for group ``key``; return what fired."""
        group = self.groups.get(key)
        if group is None:
            group = _Group(key=key, last=time, start=time)
            self.groups[key] = group
            if len(self.groups) > self.max_groups:
                self.groups.popitem(last=False)
                self.counters.inc("correlation_groups_evicted", reason=self.rule.id)
        else:
            self.groups.move_to_end(key)
        group.last = max(group.last, time)
        kind = self.rule.type
        if not self.rule.rising and kind in ("event_count", "value_count"):
            return self._feed_window(group, time, ids, value, sample)
        if kind == "event_count":
            return self._feed_event_count(group, time, ids, sample)
        if kind == "value_count":
            return self._feed_value_count(group, time, ids, value, sample)
        if kind == "temporal":
            return self._feed_temporal(group, step, time, ids, sample)
        return self._feed_ordered(group, step, time, ids, sample)

    def sweep(self, clock: float) -> list[Hit]:
        """Expire groups idle for longer than the timespan; close windows that ended."""
        span = self.rule.timespan
        hits: list[Hit] = []
        falling = not self.rule.rising and self.rule.type in ("event_count", "value_count")
        while self.groups:
            key, group = next(iter(self.groups.items()))
            ended = (group.start if falling else group.last) + span + self.tolerance
            if ended > clock:
                break
            del self.groups[key]
            if falling:
                hit = self._close_window(group)
                if hit is not None:
                    hits.append(hit)
        if falling:
            # Groups still active may hold a window that ended too (activity moved them back).
            for group in list(self.groups.values()):
                if group.start + span + self.tolerance <= clock:
                    hit = self._close_window(group)
                    if hit is not None:
                        hits.append(hit)
        return hits

    def drain(self) -> list[Hit]:
        """End of stream: close every open window (falling conditions decide now)."""
        hits: list[Hit] = []
        if not self.rule.rising and self.rule.type in ("event_count", "value_count"):
            for group in self.groups.values():
                hit = self._close_window(group)
                if hit is not None:
                    hits.append(hit)
        self.groups.clear()
        return hits

    # --- event_count / value_count with gt/gte: sliding window ------------------------------

    def _feed_event_count(
        self, group: _Group, time: float, ids: list[str], sample: Event | None
    ) -> list[Hit]:
        span = self.rule.timespan
        if group.last - time > span:  # too late: outside the window of the newest event
            return []
        times = group.times
        occurrence = _Occurrence(time, ids, sample)
        if times and time < times[-1].time:
            position = bisect.bisect_right([o.time for o in times], time)
            times.insert(position, occurrence)
        else:
            times.append(occurrence)
        newest = times[-1].time
        # Sliding out old events does not end a burst (that would count its events twice):
        # only an arrival that leaves the condition unmet does.
        while times and newest - times[0].time > span:
            times.popleft()
        while len(times) > self._keep:
            times.popleft()
        count = len(times)
        if not self.rule.satisfied(count):
            group.fired = False
            return []
        if group.fired:  # already alerted for this window: this event adds to it
            return [self._hit(group, [occurrence], count=1, detail=f"{count}+ events")]
        group.fired = True
        return [self._hit(group, list(times), count=count, detail=f"{count} events")]

    def _feed_value_count(
        self, group: _Group, time: float, ids: list[str], value: Any, sample: Event | None
    ) -> list[Hit]:
        span = self.rule.timespan
        if value is None or group.last - time > span:  # no value, or too late for the window
            return []
        values = group.values
        is_new = value not in values
        values[value] = _Occurrence(time, ids, sample)
        values.move_to_end(value)
        while values:
            oldest = next(iter(values.values()))
            if time - oldest.time <= span:
                break
            values.popitem(last=False)
        while len(values) > self._keep:
            values.popitem(last=False)
        distinct = len(values)
        if not is_new or not self.rule.satisfied(distinct):
            if not self.rule.satisfied(distinct):
                group.fired = False
            return []
        field_name = self.rule.value_field or "value"
        if group.fired:
            return [self._hit(group, [values[value]], 1, f"{distinct}+ distinct {field_name}")]
        group.fired = True
        occurrences = list(values.values())
        return [self._hit(group, occurrences, distinct, f"{distinct} distinct {field_name}")]

    # --- falling conditions: tumbling windows decided at their end ---------------------------

    def _feed_window(
        self, group: _Group, time: float, ids: list[str], value: Any, sample: Event | None
    ) -> list[Hit]:
        hits: list[Hit] = []
        if group.total and time - group.start > self.rule.timespan:
            hit = self._close_window(group)
            if hit is not None:
                hits.append(hit)
        if not group.total:
            group.start = time
            group.sample = sample
        group.total += 1
        if value is not None and len(group.distinct) < 100_000:
            group.distinct.add(value)
        room = self.max_event_ids - len(group.ids)
        if room > 0:
            group.ids.extend(ids[:room])
        return hits

    def _close_window(self, group: _Group) -> Hit | None:
        if not group.total:
            return None
        kind = self.rule.type
        measured = group.total if kind == "event_count" else len(group.distinct)
        hit = None
        if self.rule.satisfied(measured):
            label = "events" if kind == "event_count" else f"distinct {self.rule.value_field}"
            hit = Hit(
                rule=self.rule,
                group=self._group_dict(group.key),
                first_time=group.start,
                last_time=max(group.last, group.start),
                count=group.total,
                event_ids=list(group.ids),
                sample=group.sample,
                detail=f"{measured} {label}",
            )
        group.total = 0
        group.ids = []
        group.distinct = set()
        group.sample = None
        return hit

    # --- temporal proximity ---

    def _feed_temporal(
        self, group: _Group, step: int, time: float, ids: list[str], sample: Event | None
    ) -> list[Hit]:
        steps = group.steps
        current = steps.get(step)
        if current is None or time >= current.last:  # keep the latest occurrence of each rule
            steps[step] = _Chain(time, time, ids, sample)
        span = self.rule.timespan
        # Measured from the newest occurrence, not this event: a late event must not pair with
        # occurrences far after it.
        newest = max(c.last for c in steps.values())
        for index in [i for i, c in steps.items() if newest - c.last > span]:
            del steps[index]
        if not self.rule.satisfied(len(steps)):
            return []
        chains = sorted(steps.values(), key=lambda c: c.start)
        steps.clear()
        return [
            self._hit_from_chains(group, chains, f"{len(chains)} of {len(self.rule.inputs)} rules")
        ]

    def _feed_ordered(
        self, group: _Group, step: int, time: float, ids: list[str], sample: Event | None
    ) -> list[Hit]:
        steps = group.steps
        span = self.rule.timespan
        if step == 0:
            steps[0] = _Chain(time, time, list(ids), sample)
        else:
            previous = steps.get(step - 1)
            if previous is None or time - previous.start > span:
                return []
            if time < previous.last - self.tolerance:  # happened before the previous step
                return []
            current = steps.get(step)
            if current is None or previous.start >= current.start:
                steps[step] = _Chain(previous.start, time, [*previous.ids, *ids], previous.sample)
        last = len(self.rule.inputs) - 1
        done = steps.get(last)
        if done is None:
            return []
        steps.clear()
        count = len(done.ids)
        return [
            Hit(
                rule=self.rule,
                group=self._group_dict(group.key),
                first_time=done.start,
                last_time=done.last,
                count=count,
                event_ids=done.ids[: self.max_event_ids],
                sample=done.sample,
                detail=f"{len(self.rule.inputs)} rules in order",
            )
        ]

    # --- helpers ---

    def _hit(self, group: _Group, occurrences: list[_Occurrence], count: int, detail: str) -> Hit:
        ids: list[str] = []
        for occurrence in occurrences:
            ids.extend(occurrence.ids)
            if len(ids) >= self.max_event_ids:
                break
        return Hit(
            rule=self.rule,
            group=self._group_dict(group.key),
            first_time=min(o.time for o in occurrences),
            last_time=max(o.time for o in occurrences),
            count=count,
            event_ids=ids[: self.max_event_ids],
            sample=occurrences[0].sample,
            detail=detail,
        )

    def _hit_from_chains(self, group: _Group, chains: list[_Chain], detail: str) -> Hit:
        ids = [i for c in chains for i in c.ids][: self.max_event_ids]
        return Hit(
            rule=self.rule,
            group=self._group_dict(group.key),
            first_time=chains[0].start,
            last_time=max(c.last for c in chains),
            count=len(chains),
            event_ids=ids,
            sample=chains[0].sample,
            detail=detail,
        )

    def _group_dict(self, key: tuple[Any, ...]) -> dict[str, Any]:
        return {name: _plain(value) for name, value in zip(self.rule.group_by, key, strict=True)}


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def hashable(value: Any) -> Hashable:
    """Group and distinct values as hashable keys (lists become tuples; missing is None)."""
    cls = value.__class__
    if cls is str or cls is int or cls is float or cls is bool or value is None:
        return value  # type: ignore[no-any-return]
    if cls is list:
        return tuple(hashable(v) for v in value)
    if cls is dict:
        return tuple(sorted((k, hashable(v)) for k, v in value.items()))
    return None
