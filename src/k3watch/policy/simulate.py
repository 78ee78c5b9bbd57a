"""``k3watch policy simulate`` and ``policy volume``: a policy applied to real audit events.

Each event's request is run through the policy (``policy.evaluate``); the event is kept when
the deciding rule's level is not None and its stage is not omitted. Per policy rule: how many
events it keeps and drops, and an estimate of the bytes it keeps (the event as the API server
would write it at that level: without ``responseObject`` below RequestResponse, without
``requestObject`` at Metadata). The input should be logged at least as verbosely as the policy
asks: an event recorded at Metadata cannot show the body a Request rule would keep, which the
result counts as ``upgraded``.

Events are read with the same readers as ``k3watch scan`` (files, directories, ``-``, gzip).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from k3watch.errors import InputError, Location
from k3watch.event import Event
from k3watch.parse.audit import AuditParser
from k3watch.policy.evaluate import attributes_from_event, evaluate
from k3watch.policy.model import LEVEL_RANK, Policy
from k3watch.sources.files import open_input, resolve_inputs
from k3watch.telemetry import Counters

_BODY_FIELDS = {"Metadata": ("requestObject", "responseObject"), "Request": ("responseObject",)}


@dataclass(slots=True)
class RuleTally:
    """What one policy rule (``index`` ``None``: no rule matched) did to the events."""

    index: int | None
    level: str
    line: int | None
    kept: int = 0
    dropped: int = 0  # level None
    stage_omitted: int = 0  # matched a logging rule, but its stage is omitted
    kept_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.index,
            "level": self.level,
            "line": self.line,
            "kept": self.kept,
            "dropped": self.dropped,
            "stage_omitted": self.stage_omitted,
            "kept_bytes": self.kept_bytes,
        }


@dataclass(slots=True)
class Simulation:
    """A policy's effect on a set of events."""

    source: str
    rules: list[RuleTally]
    unmatched: RuleTally
    events: int = 0
    input_bytes: int = 0
    upgraded: int = 0  # kept at a higher level than the input recorded (body unknown)
    first: float | None = None
    last: float | None = None
    levels: dict[str, int] = field(default_factory=dict)

    @property
    def kept(self) -> int:
        return sum(t.kept for t in self.tallies)

    @property
    def kept_bytes(self) -> int:
        return sum(t.kept_bytes for t in self.tallies)

    @property
    def tallies(self) -> list[RuleTally]:
        return [*self.rules, self.unmatched]

    @property
    def hours(self) -> float | None:
        """The time the events span, in hours (``None`` for less than a second)."""
        if self.first is None or self.last is None or self.last - self.first < 1:
            return None
        return (self.last - self.first) / 3600

    def per_hour(self, count: int) -> float | None:
        hours = self.hours
        return count / hours if hours else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.source,
            "events": self.events,
            "kept": self.kept,
            "dropped": self.events - self.kept,
            "input_bytes": self.input_bytes,
            "kept_bytes": self.kept_bytes,
            "upgraded": self.upgraded,
            "hours": self.hours,
            "kept_per_hour": self.per_hour(self.kept),
            "kept_bytes_per_hour": self.per_hour(self.kept_bytes),
            "levels": dict(self.levels),
            "rules": [t.to_dict() for t in self.tallies],
        }


class Simulator:
    """Feeds events to one policy and keeps the tallies."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        rules = [RuleTally(r.index, r.level, r.line) for r in policy.rules]
        self.result = Simulation(policy.source, rules, RuleTally(None, "None", None))

    def add(self, event: Event, size: int | None = None) -> None:
        result = self.result
        result.events += 1
        if size is None:
            size = len(orjson.dumps(event.raw))
        result.input_bytes += size
        when = event.time
        if when is not None:
            result.first = when if result.first is None else min(result.first, when)
            result.last = when if result.last is None else max(result.last, when)
        decision = evaluate(self.policy, attributes_from_event(event))
        tally = result.unmatched if decision.rule is None else result.rules[decision.rule]
        if decision.level == "None":
            tally.dropped += 1
            return
        if not decision.logs_stage(event.stage):
            tally.stage_omitted += 1
            return
        tally.kept += 1
        tally.kept_bytes += _size_at(event.raw, decision.level, size)
        result.levels[decision.level] = result.levels.get(decision.level, 0) + 1
        recorded = LEVEL_RANK.get(event.level or "", 3)
        if decision.rank > recorded:
            result.upgraded += 1


def simulate(policy: Policy, events: Iterable[Event]) -> Simulation:
    """Apply ``policy`` to ``events``."""
    simulator = Simulator(policy)
    for event in events:
        simulator.add(event)
    return simulator.result


def simulate_files(
    policies: Sequence[Policy],
    paths: Sequence[str],
    on_error: Callable[[InputError], None],
) -> list[Simulation]:
    """Apply each of ``policies`` to the events in ``paths`` (read once)."""
    simulators = [Simulator(p) for p in policies]
    for event in read_events(paths, on_error):
        size = len(orjson.dumps(event.raw))
        for simulator in simulators:
            simulator.add(event, size)
    return [s.result for s in simulators]


def read_events(paths: Sequence[str], on_error: Callable[[InputError], None]) -> Iterable[Event]:
    """Events from files, directories and ``-``, as ``k3watch scan`` reads them."""
    counters = Counters("policy")
    parser = AuditParser(counters, on_error)
    for inp in resolve_inputs(paths, on_error, counters):
        try:
            stream = open_input(inp)
        except InputError as exc:
            on_error(exc)
            continue
        try:
            with stream:
                yield from parser.parse_stream(stream, inp.name)
        except (OSError, EOFError) as exc:
            on_error(
                InputError(
                    f"read error, rest of file skipped: {exc}",
                    Location(inp.name),
                    reason="read_error",
                )
            )


def _size_at(raw: dict[str, Any], level: str, size: int) -> int:
    """The event's size as written at ``level`` (bodies the level does not keep removed)."""
    drop = _BODY_FIELDS.get(level, ())
    if not any(name in raw for name in drop):
        return size
    trimmed = {k: v for k, v in raw.items() if k not in drop}
    trimmed["level"] = level
    return len(orjson.dumps(trimmed))
