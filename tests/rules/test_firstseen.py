"""First-seen (``k3watch.first_seen``): learn silently, then alert on value tuples never seen."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from k3watch.alert import Alert
from k3watch.event import Event
from k3watch.rules.engine import Engine
from k3watch.rules.firstseen import BaselineStore
from k3watch.rules.model import RuleSet

Builder = Callable[..., dict[str, Any]]
Load = Callable[..., RuleSet]
Run = Callable[..., list[Alert]]

RULE_ID = "00000000-0000-4000-8000-000000000001"
HOUR = 3600.0

NEW_AGENT = f"""
title: new client for a secret reader
id: {RULE_ID}
logsource: {{product: kubernetes, service: audit}}
detection:
    sel:
        verb: get
        objectRef.resource: secrets
    condition: sel
k3watch:
    first_seen:
        fields: [user.username, userAgent]
        learning: 1h
        forget: 1d
"""


@pytest.fixture
def ruleset(load: Load) -> RuleSet:
    ruleset = load(NEW_AGENT)
    (rule,) = ruleset.event_rules
    assert rule.info.kind == "first_seen"
    return ruleset


def read(event: Builder, t: float, agent: str, user: str = "alice") -> dict[str, Any]:
    return event("get", "secrets", t=t, user=user, userAgent=agent)


def agents(alerts: list[Alert]) -> list[str | None]:
    return [a.sample.user_agent if a.sample else None for a in alerts]


def test_nothing_alerts_during_the_learning_period(
    ruleset: RuleSet, run: Run, event: Builder
) -> None:
    events = [read(event, t * 60, agent) for t, agent in enumerate(["a", "b", "c", "d"])]
    assert run(ruleset, events) == []


def test_a_new_value_after_learning_alerts_and_a_known_one_does_not(
    ruleset: RuleSet, run: Run, event: Builder
) -> None:
    events = [
        read(event, 0, "kubectl"),
        read(event, HOUR + 1, "kubectl"),
        read(event, HOUR + 2, "curl"),
        read(event, HOUR + 3, "curl"),
        read(event, HOUR + 4, "kubectl", user="bob"),
    ]
    alerts = run(ruleset, events)
    assert [a.group["user.username"] for a in alerts] == ["alice", "bob"]
    assert agents(alerts) == ["curl", "kubectl"]
    assert all(a.rule_type == "first_seen" for a in alerts)


def test_learning_ends_exactly_one_learning_period_after_the_first_event(
    ruleset: RuleSet, run: Run, event: Builder
) -> None:
    assert run(ruleset, [read(event, 0, "a"), read(event, HOUR - 0.001, "b")]) == []
    assert len(run(ruleset, [read(event, 0, "a"), read(event, HOUR, "b")])) == 1


def test_learning_starts_with_the_first_event_even_one_no_rule_matches(
    ruleset: RuleSet, run: Run, event: Builder
) -> None:
    events = [event("list", "pods", t=0), read(event, HOUR + 1, "curl")]
    assert len(run(ruleset, events)) == 1


def test_a_value_unseen_for_longer_than_forget_is_new_again(
    ruleset: RuleSet, run: Run, event: Builder
) -> None:
    day = 24 * HOUR
    kept = [read(event, 0, "old"), read(event, day, "old"), read(event, 2 * day - 1, "old")]
    assert run(ruleset, kept) == []
    forgotten = [read(event, 0, "old"), read(event, 2 * HOUR, "x"), read(event, day + 10, "old")]
    assert agents(run(ruleset, forgotten)) == ["x", "old"]


def test_a_match_without_a_timestamp_is_counted_not_alerted(
    ruleset: RuleSet, event: Builder
) -> None:
    raw = read(event, 0, "a")
    for name in ("requestReceivedTimestamp", "stageTimestamp"):
        del raw[name]
    engine = Engine(ruleset)
    assert not engine.process(Event(raw))
    assert engine.counters.get("matches_without_time", reason=RULE_ID) == 1


# --- the persisted baseline ------------------------------------------------------------------


def test_a_second_engine_over_the_same_baseline_file_does_not_relearn(
    ruleset: RuleSet, run: Run, event: Builder, tmp_path: Path
) -> None:
    path = tmp_path / "state" / "baseline.db"
    store = BaselineStore(path)
    first = run(ruleset, [read(event, 0, "kubectl"), read(event, 60, "helm")], baseline=store)
    assert first == []
    store.close()

    store = BaselineStore(path)
    later = 5 * HOUR  # a restart: this engine's clock starts here
    alerts = run(
        ruleset,
        [read(event, later, "helm"), read(event, later + 1, "curl")],
        baseline=store,
    )
    store.close()
    assert agents(alerts) == ["curl"]


def test_a_restart_within_the_learning_period_keeps_learning(
    ruleset: RuleSet, run: Run, event: Builder, tmp_path: Path
) -> None:
    path = tmp_path / "baseline.db"
    store = BaselineStore(path)
    run(ruleset, [read(event, 0, "kubectl")], baseline=store)
    store.close()
    store = BaselineStore(path)
    alerts = run(
        ruleset, [read(event, HOUR / 2, "helm"), read(event, HOUR + 1, "curl")], baseline=store
    )
    store.close()
    assert agents(alerts) == ["curl"]


def test_the_memory_baseline_is_bounded(ruleset: RuleSet, event: Builder) -> None:
    store = BaselineStore(max_keys=5)
    engine = Engine(ruleset, baseline=store)
    for t in range(50):
        engine.process(Event(read(event, t, f"agent-{t}")))
        assert store.size(RULE_ID) <= 5


def test_values_evicted_from_memory_are_found_in_the_baseline_file(
    ruleset: RuleSet, run: Run, event: Builder, tmp_path: Path
) -> None:
    store = BaselineStore(tmp_path / "baseline.db", max_keys=2)
    learned = [read(event, t, agent) for t, agent in enumerate(["a", "b", "c", "d"])]
    alerts = run(ruleset, [*learned, read(event, HOUR + 1, "a")], baseline=store)
    store.close()
    assert alerts == []
