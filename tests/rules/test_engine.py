"""The engine's stream behaviour: request stages, alert content and the alert JSON contract."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson
import pytest

from k3watch.alert import Alert, Severity, fingerprint
from k3watch.event import Event
from k3watch.rules.engine import Engine, EngineOptions, render_summary
from k3watch.rules.model import RuleSet
from k3watch.rules.testing import fire_count

Builder = Callable[..., dict[str, Any]]
Load = Callable[..., RuleSet]
Run = Callable[..., list[Alert]]

SECRET_READ = """
title: Secret read
id: 00000000-0000-4000-8000-000000000001
status: test
level: high
tags: [attack.credential-access, attack.t1552.007]
logsource: {product: kubernetes, service: audit}
detection:
    sel:
        verb: get
        objectRef.resource: secrets
    condition: sel
"""
BURST = """
title: Secret read burst
id: 00000000-0000-4000-8000-000000000002
correlation:
    type: event_count
    rules: [00000000-0000-4000-8000-000000000001]
    group-by: [user.username]
    timespan: 1m
    condition: {gte: 2}
"""


@pytest.fixture
def secret_read(load: Load) -> RuleSet:
    return load(SECRET_READ)


# --- request stages ---------------------------------------------------------------------------


def test_a_request_logged_at_two_stages_alerts_once(secret_read: RuleSet, event: Builder) -> None:
    engine = Engine(secret_read)
    started = event("get", "secrets", stage="ResponseStarted", audit_id="req-1")
    complete = event("get", "secrets", stage="ResponseComplete", audit_id="req-1", t=0.5)
    assert len(engine.process(Event(started))) == 1
    assert not engine.process(Event(complete))
    assert engine.counters.get("duplicate_stage_matches") == 1
    other = event("get", "secrets", audit_id="req-2", t=1)
    assert len(engine.process(Event(other))) == 1


def test_a_request_logged_at_two_stages_counts_once_in_a_correlation(
    load: Load, run: Run, event: Builder
) -> None:
    ruleset = load(SECRET_READ + "---\n" + BURST)
    stages = [
        event("get", "secrets", stage=stage, audit_id="req-1", t=t)
        for t, stage in enumerate(["ResponseStarted", "ResponseComplete"])
    ]
    assert run(ruleset, stages) == []
    (alert,) = run(ruleset, [*stages, event("get", "secrets", audit_id="req-2", t=3)])
    assert alert.event_ids == ["req-1", "req-2"]


def test_each_rule_counts_a_request_for_itself(load: Load, run: Run, event: Builder) -> None:
    other = SECRET_READ.replace("000000000001", "000000000009").replace("Secret read", "Other")
    ruleset = load(SECRET_READ + "---\n" + other)
    alerts = run(ruleset, [event("get", "secrets", audit_id="req-1")])
    assert sorted(a.title for a in alerts) == ["Other", "Secret read"]


def test_request_received_events_are_skipped_by_default(
    secret_read: RuleSet, event: Builder
) -> None:
    received = event("get", "secrets", stage="RequestReceived")
    assert not Engine(secret_read).process(Event(received))
    options = EngineOptions(skip_stages=frozenset())
    assert len(Engine(secret_read, options).process(Event(received))) == 1


def test_events_without_an_audit_id_are_not_deduplicated(
    secret_read: RuleSet, run: Run, event: Builder
) -> None:
    raw = event("get", "secrets")
    del raw["auditID"]
    assert len(run(secret_read, [raw, dict(raw)])) == 2


# --- alert content ------------------------------------------------------------------------------


def test_an_event_alert_carries_the_rule_and_the_event(
    secret_read: RuleSet, run: Run, event: Builder, t0: float
) -> None:
    (alert,) = run(secret_read, [event("get", "secrets", user="bob", audit_id="req-7", t=5)])
    assert alert.rule_id == "00000000-0000-4000-8000-000000000001"
    assert alert.title == "Secret read"
    assert alert.severity is Severity.HIGH
    assert alert.tags == ("attack.credential-access", "attack.t1552.007")
    assert alert.attack_ids == ["T1552.007"]
    assert alert.group == {"user.username": "bob"}
    assert alert.first_seen == alert.last_seen == pytest.approx(t0 + 5)
    assert alert.count == 1
    assert alert.event_ids == ["req-7"]
    assert alert.summary == "bob read secrets default/web-0 from 10.0.0.7"
    assert alert.fingerprint == fingerprint(alert.rule_id, {"user.username": "bob"})


def test_k3watch_group_by_and_summary_shape_the_alert(load: Load, run: Run, event: Builder) -> None:
    ruleset = load(
        SECRET_READ
        + """
k3watch:
    group_by: [objectRef.namespace, objectRef.name]
    summary: >-
        {user.username} read {objectRef.namespace}/{objectRef.name}
        ({impersonatedUser.username})
"""
    )
    (alert,) = run(ruleset, [event("get", "secrets", namespace="prod", name="db")])
    assert alert.group == {"objectRef.namespace": "prod", "objectRef.name": "db"}
    assert alert.summary == "alice read prod/db (?)"


def test_a_missing_group_field_is_null_in_the_alert_group(
    secret_read: RuleSet, run: Run, event: Builder
) -> None:
    raw = event("get", "secrets")
    del raw["user"]
    (alert,) = run(secret_read, [raw])
    assert alert.group == {"user.username": None}


def test_render_summary_fills_fields_extras_and_lists() -> None:
    raw = {"user": {"username": "eve"}, "sourceIPs": ["1.2.3.4", "5.6.7.8"]}
    text = render_summary("{user.username} x{count} from {sourceIPs} {nope}", raw, {"count": 4})
    assert text == "eve x4 from 1.2.3.4,5.6.7.8 ?"


def test_a_correlation_alert_summarises_the_hit(load: Load, run: Run, event: Builder) -> None:
    ruleset = load(SECRET_READ + "---\n" + BURST)
    events = [event("get", "secrets", t=t, audit_id=f"req-{t}") for t in range(2)]
    (alert,) = run(ruleset, events)
    assert alert.rule_type == "event_count"
    assert alert.summary.startswith(
        "2 events within 1m (≥ 2) for user.username=alice; first: alice"
    )
    assert alert.event_ids == ["req-0", "req-1"]


def test_fire_count_runs_partial_events_through_the_whole_rule_set(secret_read: RuleSet) -> None:
    (rule,) = secret_read.event_rules
    events = ({"verb": "get", "objectRef": {"resource": "secrets"}},) * 3
    assert fire_count(secret_read, rule, events) == 3
    assert fire_count(secret_read, rule, ({"verb": "list"},)) == 0


# --- the alert JSON contract ----------------------------------------------------------------------

CONTRACT: dict[str, type | tuple[type, ...]] = {
    "rule_id": str,
    "title": str,
    "severity": str,
    "tags": list,
    "event_ids": list,
    "group": dict,
    "first_seen": str,
    "last_seen": str,
    "count": int,
    "summary": str,
}


def check_contract(data: dict[str, Any]) -> None:
    for key, kind in CONTRACT.items():
        assert key in data, key
        assert isinstance(data[key], kind), (key, data[key])
    assert data["severity"] in {s.label for s in Severity}
    assert all(isinstance(tag, str) for tag in data["tags"])
    assert all(isinstance(i, str) for i in data["event_ids"])
    for key in ("first_seen", "last_seen"):
        assert data[key].endswith("Z")
        datetime.fromisoformat(data[key])
    assert orjson.loads(orjson.dumps(data)) == data


def test_event_alerts_follow_the_json_contract(
    secret_read: RuleSet, run: Run, event: Builder
) -> None:
    (alert,) = run(secret_read, [event("get", "secrets", audit_id="req-1")])
    data = alert.to_dict()
    check_contract(data)
    assert data["severity"] == "high"
    assert data["event_ids"] == ["req-1"]
    assert data["count"] == 1
    assert data["first_seen"] == "2026-01-05T10:00:00.000000Z"


def test_correlation_alerts_follow_the_json_contract(load: Load, run: Run, event: Builder) -> None:
    ruleset = load(SECRET_READ + "---\n" + BURST)
    (alert,) = run(ruleset, [event("get", "secrets", t=t) for t in (0, 30)])
    data = alert.to_dict()
    check_contract(data)
    assert data["count"] == 2
    assert data["last_seen"] == "2026-01-05T10:00:30.000000Z"


def test_an_alert_without_times_has_empty_time_strings() -> None:
    alert = Alert("r", "t", Severity.LOW, (), {}, None, None, 1, ["e"], "s")
    data = alert.to_dict()
    assert data["first_seen"] == data["last_seen"] == ""
    assert data["severity"] == "low"


# --- the stateless half elsewhere ---------------------------------------------------------------


def test_matching_apart_and_feeding_the_matches_gives_the_same_alerts() -> None:
    """The server matches in worker processes (``Matcher``) and feeds the matches, batch by
    batch, to the engine that keeps the state (``Engine.matched`` / ``passed``): the alerts are
    those of ``Engine.process`` on the same stream."""
    from k3watch.rules.engine import Matcher
    from k3watch.rules.loader import load_rules
    from k3watch.sample import generate_tagged_events

    ruleset = load_rules()
    stream = [Event(raw, "day", n) for n, (raw, _) in enumerate(generate_tagged_events(days=1.0))]

    whole = Engine(ruleset)
    expected = [a for e in stream for a in whole.process(e)]

    apart, matcher = Engine(ruleset), Matcher(ruleset, EngineOptions().skip_stages)
    got: list[Alert] = []
    for start in range(0, len(stream), 250):
        part = stream[start : start + 250]
        times = [e.time for e in part if e.time is not None]
        got.extend(apart.passed(0, times[0], None))
        for event in part:
            if not matcher.skips(event.raw):
                got.extend(apart.matched(event, matcher.match(event.raw)))
        got.extend(apart.passed(len(part), None, max(times)))

    def summary(alerts: list[Alert]) -> list[tuple[str, str, int]]:
        return sorted((a.rule_id, a.fingerprint, a.count) for a in alerts)

    assert len(expected) > 20
    assert summary(got) == summary(expected)
