"""Run the test events embedded in rules (``k3watch.tests``); the test suite uses this too.

Each case runs through a fresh engine holding the *whole* rule set, so filters, pipelines and
correlation wiring are exercised exactly as in a scan; the case passes when the rule under test
matched (or stayed quiet) as the case says. Events may be partial: a missing ``auditID``,
``stage`` or timestamp is filled in (one second apart, from a fixed start). A component-log
record (``kind: k3watch.log/v1``) gets only its missing ``time`` and ``_key``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from k3watch.event import Event, format_time, parse_time
from k3watch.parse.logs import KIND as LOG_KIND
from k3watch.rules.engine import Engine
from k3watch.rules.model import CorrelationRule, Rule, RuleSet, RuleTest
from k3watch.telemetry import Counters

TEST_START = parse_time("2026-01-05T10:00:00Z") or 0.0
_TIME_FIELDS = ("requestReceivedTimestamp", "stageTimestamp", "timestamp")


@dataclass(slots=True)
class CaseResult:
    test: RuleTest
    passed: bool
    fired: int

    def __str__(self) -> str:
        expected = "fire" if self.test.must_fire else "stay quiet"
        outcome = f"fired {self.fired}x" if self.fired else "did not fire"
        return f"{self.test.location} {self.test.label}: expected to {expected}, {outcome}"


@dataclass(slots=True)
class RuleTestResult:
    rule: Rule
    cases: list[CaseResult] = field(default_factory=list)

    @property
    def failures(self) -> list[str]:
        out = [str(c) for c in self.cases if not c.passed]
        if not any(c.test.must_fire for c in self.cases):
            out.append("no 'match' test case: every rule needs an event that must fire")
        if not any(not c.test.must_fire for c in self.cases):
            out.append("no 'nomatch' test case: every rule needs a near miss that must not fire")
        return out

    @property
    def passed(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        good = sum(c.passed for c in self.cases)
        return f"{good}/{len(self.cases)} cases"

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule.id,
            "title": self.rule.info.title,
            "passed": self.passed,
            "cases": len(self.cases),
            "failures": self.failures,
        }


def run_rule_tests(ruleset: RuleSet) -> list[RuleTestResult]:
    """Run every embedded test of every rule in ``ruleset``."""
    return [run_tests_of(ruleset, rule) for rule in ruleset.all()]


def run_tests_of(ruleset: RuleSet, rule: Rule) -> RuleTestResult:
    result = RuleTestResult(rule)
    for test in rule.tests:
        fired = fire_count(ruleset, rule, test.events)
        result.cases.append(CaseResult(test, (fired > 0) == test.must_fire, fired))
    return result


def fire_count(ruleset: RuleSet, rule: Rule, events: tuple[dict[str, Any], ...]) -> int:
    """How often ``rule`` matched (or its correlation hit) on ``events``."""
    counters = Counters("rule_test")
    engine = Engine(ruleset, counters=counters)
    for index, raw in enumerate(complete_events(events)):
        engine.process(Event(raw, "<rule test>", index + 1))
    engine.flush()
    name = "correlation_hits" if isinstance(rule, CorrelationRule) else "rule_matches"
    return counters.get(name, reason=rule.id)


def complete_events(events: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    """Copies of test events with the fields a partial event leaves out filled in."""
    out = []
    for index, event in enumerate(events):
        raw = copy.deepcopy(event)
        if raw.get("kind") == LOG_KIND:
            raw.setdefault("time", format_time(TEST_START + index))
            raw.setdefault("_key", f"<rule test>@{index}")
            out.append(raw)
            continue
        raw.setdefault("kind", "Event")
        raw.setdefault("apiVersion", "audit.k8s.io/v1")
        raw.setdefault("auditID", f"00000000-0000-4000-8000-{index:012d}")
        raw.setdefault("stage", "ResponseComplete")
        if not any(name in raw for name in _TIME_FIELDS):
            raw["requestReceivedTimestamp"] = format_time(TEST_START + index)
        out.append(raw)
    return out
