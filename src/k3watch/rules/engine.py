"""The streaming rule engine: events in, raw alerts out.

For each event the engine looks up the rules that can possibly match it from a small index on
(resource, subresource, verb), so most rules are never called for most events; runs their
compiled predicates on the raw event; applies the first-seen filter; and feeds the matches to
the correlations that reference the rule. One request can be logged at several stages
(``ResponseStarted`` then ``ResponseComplete``): a rule counts it once.

Raw alerts (one per match or correlation hit) go to the alert pipeline, which de-duplicates.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from k3watch.alert import Alert
from k3watch.event import Event
from k3watch.rules.compile import Predicate
from k3watch.rules.correlation import CorrelationState, Hit, hashable
from k3watch.rules.fields import MISSING, compile_getter
from k3watch.rules.firstseen import BaselineStore, FirstSeenTracker
from k3watch.rules.index import NO_KEY, index_key, probe_event, residual_predicate
from k3watch.rules.ir import INDEX_FIELDS
from k3watch.rules.model import EventRule, RuleSet
from k3watch.telemetry import Counters

_NO_ALERTS: tuple[Alert, ...] = ()
MAX_INDEX_KEYS = 65_536  # distinct (resource, subresource, verb, code, user) combinations kept


@dataclass(frozen=True, slots=True)
class EngineOptions:
    """Tuning of the engine; the defaults suit a live cluster and offline scans alike."""

    # Stages that never reach the rules: every request that completes is logged again later.
    skip_stages: frozenset[str] = frozenset({"RequestReceived"})
    max_groups: int = 50_000  # per correlation
    max_event_ids: int = 100  # per alert / correlation hit
    tolerance: float = 5.0  # seconds of out-of-order event time accepted in sequences
    sweep_interval: float = 10.0  # seconds of event time between expiry sweeps
    dedup_requests: int = 100_000  # (auditID, rule) pairs remembered to count a request once


class Matcher:
    """The stateless half of the engine: which event rules an event matches.

    It holds only caches, so the server runs one per worker process, in parallel, and hands
    the matches to the one ``Engine`` that keeps the state (``Engine.matched``).
    """

    def __init__(self, ruleset: RuleSet, skip_stages: frozenset[str]) -> None:
        self._rules = list(ruleset.event_rules)
        self._skip_stages = skip_stages
        self._cache: dict[object, tuple[tuple[EventRule, Predicate], ...]] = {}

    def skips(self, raw: dict[str, Any]) -> bool:
        """Whether the event's stage never reaches the rules."""
        return raw.get("stage") in self._skip_stages

    def match(self, raw: dict[str, Any]) -> list[EventRule]:
        """The rules whose detection ``raw`` satisfies (first-seen and correlations aside)."""
        key = index_key(raw)
        try:
            candidates = self._cache[key]
        except KeyError:
            candidates = self._candidates(key)
        except TypeError:  # an unhashable (malformed) value: no index, full detections
            candidates = self._candidates(NO_KEY)
        if not candidates:
            return []
        return [rule for rule, predicate in candidates if predicate(raw)]

    def candidates_for(self, raw: dict[str, Any]) -> tuple[EventRule, ...]:
        """The rules the index selects for ``raw`` (for tests and diagnostics)."""
        key = index_key(raw)
        try:
            hash(key)
        except TypeError:
            key = NO_KEY
        return tuple(rule for rule, _ in self._candidates(key))

    def _candidates(self, key: object) -> tuple[tuple[EventRule, Predicate], ...]:
        """The rules to try for an index key, each with the predicate to run on the event.

        What the key fields decide is decided here, once for the key (see rules.index); the
        event then runs only the rest. Events the key cannot stand for (``NO_KEY``) run every
        rule's full detection.
        """
        if not isinstance(key, tuple):
            result = tuple((rule, rule.predicate) for rule in self._rules)
        else:
            probe = probe_event(key)
            chosen = []
            for rule in self._rules:
                predicate = residual_predicate(rule, probe)
                if predicate is not None:
                    chosen.append((rule, predicate))
            result = tuple(chosen)
        if len(self._cache) >= MAX_INDEX_KEYS:  # bounded even if a client invents values
            self._cache.clear()
        self._cache[key] = result
        return result


class Engine:
    """Evaluates a ``RuleSet`` on a stream of events, in event-time order."""

    def __init__(
        self,
        ruleset: RuleSet,
        options: EngineOptions | None = None,
        *,
        counters: Counters | None = None,
        baseline: BaselineStore | None = None,
    ) -> None:
        self.ruleset = ruleset
        self.options = options or EngineOptions()
        self.counters = counters or Counters("engine")
        self.baseline = baseline or BaselineStore()
        self.clock: float | None = None
        self._rules = list(ruleset.event_rules)
        self._by_index = {rule.index: rule for rule in self._rules}
        self.matcher = Matcher(ruleset, self.options.skip_stages)
        # (auditID, rule) pairs already matched, oldest first (dicts keep insertion order).
        self._seen_requests: dict[tuple[str, int], None] = {}
        self._last_sweep = float("-inf")
        self._events = 0
        self._states = {
            id(c): CorrelationState(
                c,
                self.counters,
                max_groups=self.options.max_groups,
                max_event_ids=self.options.max_event_ids,
                tolerance=self.options.tolerance,
            )
            for c in ruleset.correlations
        }
        self._trackers = {
            id(r): FirstSeenTracker(r.id, r.first_seen, self.baseline)
            for r in self._rules
            if r.first_seen is not None
        }
        self._pending: list[Alert] = []
        self._skip_stages = self.options.skip_stages

    # --- the hot path ---

    def process(self, event: Event) -> Sequence[Alert]:
        """Evaluate one event; return the raw alerts it (or the clock it moved) produced."""
        raw = event.raw
        if raw.get("stage") in self._skip_stages:
            return _NO_ALERTS
        self._events += 1
        if not self._events & 1023 or self.clock is None:  # the first event starts the clock
            self._tick(event.time)
        return self.matched(event, self.matcher.match(raw))

    def matched(self, event: Event, rules: Sequence[EventRule]) -> Sequence[Alert]:
        """Feed an event with the rules it matched (``Matcher.match``, perhaps run in another
        process); return the raw alerts produced."""
        for rule in rules:
            self._matched(rule, event)
        if not self._pending:
            return _NO_ALERTS
        out, self._pending = self._pending, []
        return out

    def rule(self, index: int) -> EventRule:
        """The event rule with this ``EventRule.index``."""
        return self._by_index[index]

    def passed(self, count: int, first: float | None, last: float | None) -> Sequence[Alert]:
        """Account for ``count`` events, from ``first`` to ``last`` in event time, whose matches
        were fed separately: the first event ever starts the clock, the last moves it; return
        the alerts of the windows that closed."""
        if self.clock is None:
            self._tick(first)
        self._events += count
        self._tick(last)
        out, self._pending = self._pending, []
        return out

    def advance(self, clock: float) -> Sequence[Alert]:
        """Move the event clock (e.g. when a source is idle); return what expired into alerts."""
        self._tick(clock, force=True)
        out, self._pending = self._pending, []
        return out

    def flush(self) -> list[Alert]:
        """End of the stream: decide every open correlation window."""
        for state in self._states.values():
            for hit in state.drain():
                self._on_hit(hit)
        self.baseline.flush()
        out, self._pending = self._pending, []
        return out

    def state_sizes(self) -> dict[str, int]:
        """Open correlation groups per correlation rule id (memory held by windows)."""
        return {state.rule.id: len(state) for state in self._states.values()}

    def candidates_for(self, event: Event) -> tuple[EventRule, ...]:
        """The rules the index selects for ``event`` (for tests and diagnostics)."""
        return self.matcher.candidates_for(event.raw)

    # --- internals ---

    def _matched(self, rule: EventRule, event: Event) -> None:
        audit_id = event.raw.get("auditID")
        if audit_id.__class__ is str:
            seen = self._seen_requests
            mark = (audit_id, rule.index)
            if mark in seen:
                self.counters.inc("duplicate_stage_matches")
                return
            seen[mark] = None
            if len(seen) > self.options.dedup_requests:
                del seen[next(iter(seen))]
        time = event.time
        if time is not None:
            self._tick(time)
        elif self.clock is not None:
            time = self.clock
        raw = event.raw
        if rule.first_seen is not None:
            if time is None:
                self.counters.inc("matches_without_time", reason=rule.id)
                return
            values = tuple(hashable(get(raw)) for get in rule.first_seen_getters)
            if not self._trackers[id(rule)].check(values, time):
                return
        self.counters.inc("rule_matches", reason=rule.id)
        if rule.generate:
            self._pending.append(self._event_alert(rule, event, time))
        for correlation, step in rule.consumers:
            if time is None:
                self.counters.inc("matches_without_time", reason=correlation.id)
                continue
            key = tuple(hashable(get(raw)) for get in correlation.input_group_getters[step])
            value_get = correlation.input_value_getters[step]
            value = hashable(value_get(raw)) if value_get is not None else None
            state = self._states[id(correlation)]
            for hit in state.feed(step, time, [event.id], key, value, event):
                self._on_hit(hit)

    def _on_hit(self, hit: Hit) -> None:
        rule = hit.rule
        self.counters.inc("correlation_hits", reason=rule.id)
        if rule.generate:
            self._pending.append(self._hit_alert(hit))
        for parent, step in rule.consumers:
            group = hit.group
            key = tuple(hashable(get(group)) for get in parent.input_group_getters[step])
            value_get = parent.input_value_getters[step]
            value = hashable(value_get(group)) if value_get is not None else None
            state = self._states[id(parent)]
            for parent_hit in state.feed(
                step, hit.last_time, hit.event_ids, key, value, hit.sample
            ):
                self._on_hit(parent_hit)

    def _tick(self, time: float | None, force: bool = False) -> None:
        if time is None:
            return
        if self.clock is None:
            self.clock = time
            for tracker in self._trackers.values():
                tracker.start(time)
        elif time > self.clock:
            self.clock = time
        clock = self.clock
        if force or clock - self._last_sweep >= self.options.sweep_interval:
            self._last_sweep = clock
            for state in self._states.values():
                for hit in state.sweep(clock):
                    self._on_hit(hit)

    def _event_alert(self, rule: EventRule, event: Event, time: float | None) -> Alert:
        raw = event.raw
        group = {
            name: _plain(get(raw))
            for name, get in zip(rule.group_by, rule.group_getters, strict=True)
        }
        summary = render_summary(rule.summary, raw, {}) if rule.summary else event.describe()
        return Alert(
            rule_id=rule.id,
            title=rule.info.title,
            severity=rule.info.severity,
            tags=rule.info.tags,
            group=group,
            first_seen=time,
            last_seen=time,
            count=1,
            event_ids=[event.id],
            summary=summary,
            rule_type=rule.info.kind,
            sample=event,
        )

    def _hit_alert(self, hit: Hit) -> Alert:
        rule = hit.rule
        extra = {"count": hit.count, "detail": hit.detail, "timespan": _span_text(rule.timespan)}
        extra.update({f"group.{k}": v for k, v in hit.group.items()})
        if rule.summary:
            raw = hit.sample.raw if hit.sample is not None else {}
            summary = render_summary(rule.summary, raw, extra)
        else:
            who = ", ".join(f"{k}={_text(v)}" for k, v in hit.group.items()) or "all events"
            summary = f"{hit.detail} within {extra['timespan']} ({rule.condition_text()}) for {who}"
            if hit.sample is not None:
                summary += f"; first: {hit.sample.describe()}"
        return Alert(
            rule_id=rule.id,
            title=rule.info.title,
            severity=rule.info.severity,
            tags=rule.info.tags,
            group=hit.group,
            first_seen=hit.first_time,
            last_seen=hit.last_time,
            count=hit.count,
            event_ids=list(hit.event_ids),
            summary=summary,
            rule_type=rule.type,
            sample=hit.sample,
        )


def _text(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return "?" if value is None or value is MISSING else str(value)


def _plain(value: Any) -> Any:
    return None if value is MISSING else value


def _span_text(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")


def render_summary(template: str, raw: dict[str, Any], extra: dict[str, Any]) -> str:
    """Fill ``{field.path}`` (and ``{count}``, ``{group.<field>}``…) placeholders."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in extra:
            found: Any = extra[name]
        else:
            found = compile_getter(name)(raw)
        if found is MISSING or found is None:
            return "?"
        if isinstance(found, list):
            return ",".join(str(v) for v in found)
        return str(found)

    return _PLACEHOLDER.sub(value, template)


def index_stats(rules: Iterable[EventRule]) -> dict[str, int]:
    """How many rules each index field constrains (for ``rules list`` and the benchmark)."""
    counts = dict.fromkeys(INDEX_FIELDS, 0)
    unindexed = 0
    for rule in rules:
        if not rule.requires:
            unindexed += 1
        for name in rule.requires:
            counts[name] += 1
    counts["unindexed"] = unindexed
    return counts
