"""Sigma correlations over a stream: thresholds, windows, ordering, groups, chaining, bounds.

Decisions these tests pin down (they follow the code):

- ``gt``/``gte`` are decided as events arrive, over a sliding window that is *inclusive*: events
  exactly ``timespan`` apart are in the same window. Events may arrive out of order (they are
  placed by their timestamp).
- Once a group fired, each further event of the same burst is a follow-up hit of count 1, so the
  counts of a burst add up to the number of events in it. A new alert (with the full count) is
  raised only after the condition stopped holding.
- ``lt``/``lte``/``eq``/``neq`` are decided when a window ends: windows open at a group's first
  event, last ``timespan`` (inclusive), and close once the event clock passed their end plus the
  out-of-order tolerance, or at ``Engine.flush()``.
- A missing group-by field is its own group (``None``), never mixed with real values.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from typing import Any

import pytest

from k3watch.alert import Alert
from k3watch.event import Event
from k3watch.rules.engine import Engine, EngineOptions
from k3watch.rules.model import RuleSet

Builder = Callable[..., dict[str, Any]]
Load = Callable[..., RuleSet]
Run = Callable[..., list[Alert]]

BASES = {
    "forbidden": "sel: {responseStatus.code: 403}\ncondition: sel",
    "secret_read": "sel: {verb: get, objectRef.resource: secrets}\ncondition: sel",
    "pod_exec": "sel: {verb: create, objectRef.subresource: exec}\ncondition: sel",
    "pod_delete": "sel: {verb: delete, objectRef.resource: pods}\ncondition: sel",
}


def rules(*correlations: str) -> str:
    """Every base rule, then ``correlations``, as one multi-document YAML text."""
    docs = []
    for number, (name, detection) in enumerate(BASES.items(), 1):
        body = textwrap.indent(detection, "    ")
        docs.append(
            f"title: {name}\nname: {name}\nid: 00000000-0000-4000-8000-{number:012d}\n"
            f"logsource: {{product: kubernetes, service: audit}}\ndetection:\n{body}\n"
        )
    docs.extend(textwrap.dedent(c).strip() + "\n" for c in correlations)
    return "---\n".join(docs)


def corr(
    name: str,
    kind: str,
    refs: str,
    *,
    condition: str = "{gte: 3}",
    timespan: str = "10s",
    group_by: str = "[user.username]",
    extra: str = "",
    number: int = 100,
) -> str:
    lines = [
        f"title: {name}",
        f"name: {name}",
        f"id: 00000000-0000-4000-8000-{number:012d}",
        "correlation:",
        f"    type: {kind}",
        f"    rules: {refs}",
        f"    group-by: {group_by}",
        f"    timespan: {timespan}",
    ]
    if condition:
        lines.append(f"    condition: {condition}")
    lines.extend("    " + line for line in textwrap.dedent(extra).strip().splitlines())
    return "\n".join(lines)


def forbidden(event: Builder, t: float, user: str = "alice", **kw: Any) -> dict[str, Any]:
    return event("list", "nodes", t=t, user=user, code=403, **kw)


def by_rule(alerts: list[Alert], name: str) -> list[Alert]:
    return [a for a in alerts if a.title == name]


# --- event_count ---------------------------------------------------------------------------------


@pytest.fixture
def burst(load: Load) -> RuleSet:
    return load(rules(corr("burst", "event_count", "[forbidden]", condition="{gte: 3}")))


def test_event_count_fires_at_exactly_the_threshold(
    burst: RuleSet, run: Run, event: Builder
) -> None:
    two = [forbidden(event, 0), forbidden(event, 1)]
    assert run(burst, two) == []
    (alert,) = run(burst, [*two, forbidden(event, 2)])
    assert alert.title == "burst"
    assert alert.count == 3
    assert alert.group == {"user.username": "alice"}
    assert len(alert.event_ids) == 3
    assert alert.rule_type == "event_count"


def test_gt_needs_one_more_than_the_threshold(load: Load, run: Run, event: Builder) -> None:
    ruleset = load(rules(corr("burst", "event_count", "[forbidden]", condition="{gt: 3}")))
    events = [forbidden(event, t) for t in range(3)]
    assert run(ruleset, events) == []
    (alert,) = run(ruleset, [*events, forbidden(event, 3)])
    assert alert.count == 4


@pytest.mark.parametrize(("condition", "needed"), [("{gte: 2.5}", 3), ("{gt: 2.5}", 3)])
def test_a_fractional_threshold_needs_the_next_whole_count(
    load: Load, run: Run, event: Builder, condition: str, needed: int
) -> None:
    ruleset = load(rules(corr("b", "event_count", "[forbidden]", condition=condition)))
    assert run(ruleset, [forbidden(event, t) for t in range(needed - 1)]) == []
    (alert,) = run(ruleset, [forbidden(event, t) for t in range(needed)])
    assert alert.count == needed


def test_events_exactly_a_timespan_apart_share_the_window(
    burst: RuleSet, run: Run, event: Builder
) -> None:
    inside = [forbidden(event, 0), forbidden(event, 5), forbidden(event, 10)]
    assert len(run(burst, inside)) == 1
    outside = [forbidden(event, 0), forbidden(event, 5), forbidden(event, 10.001)]
    assert run(burst, outside) == []


def test_out_of_order_events_are_placed_by_their_timestamp(
    burst: RuleSet, run: Run, event: Builder
) -> None:
    (alert,) = run(burst, [forbidden(event, 10), forbidden(event, 2), forbidden(event, 6)])
    assert alert.count == 3
    assert alert.first_seen is not None and alert.last_seen is not None
    assert alert.last_seen - alert.first_seen == pytest.approx(8)
    late = [forbidden(event, 20), forbidden(event, 2), forbidden(event, 6)]
    assert run(burst, late) == []


def test_follow_up_events_of_a_burst_add_one_each(burst: RuleSet, run: Run, event: Builder) -> None:
    alerts = run(burst, [forbidden(event, t) for t in range(6)])
    assert [a.count for a in alerts] == [3, 1, 1, 1]
    assert sum(a.count for a in alerts) == 6


def test_a_sliding_burst_never_counts_an_event_twice(
    burst: RuleSet, run: Run, event: Builder
) -> None:
    # The window slides past the first events while the condition keeps holding.
    times = [0, 1, 2, 3, 11.5, 12, 19]
    alerts = run(burst, [forbidden(event, t) for t in times])
    assert sum(a.count for a in alerts) == len(times)
    ids = [i for a in alerts for i in a.event_ids]
    assert len(ids) == len(set(ids)) == len(times)


def test_a_new_burst_after_a_quiet_period_fires_again(
    burst: RuleSet, run: Run, event: Builder
) -> None:
    times = [0, 1, 2, 100, 101, 102]
    alerts = run(burst, [forbidden(event, t) for t in times])
    assert [a.count for a in alerts] == [3, 3]


def test_a_late_event_older_than_the_window_does_not_refire(
    burst: RuleSet, run: Run, event: Builder
) -> None:
    events = [forbidden(event, t) for t in (10, 11, 12)] + [forbidden(event, -50)]
    assert [a.count for a in run(burst, events)] == [3]


def test_groups_do_not_mix(burst: RuleSet, run: Run, event: Builder) -> None:
    events = [forbidden(event, t, user) for t, user in enumerate(["a", "b", "a", "b", "c"])]
    assert run(burst, events) == []
    (alert,) = run(burst, [*events, forbidden(event, 5, "b")])
    assert alert.group == {"user.username": "b"}


def test_a_missing_group_field_is_a_group_of_its_own(
    burst: RuleSet, run: Run, event: Builder
) -> None:
    anonymous = []
    for t in range(3):
        raw = forbidden(event, t)
        del raw["user"]
        anonymous.append(raw)
    mixed = [anonymous[0], anonymous[1], forbidden(event, 5, "alice")]
    assert run(burst, mixed) == []
    (alert,) = run(burst, anonymous)
    assert alert.group == {"user.username": None}


def test_a_correlation_without_group_by_counts_every_event_together(
    load: Load, run: Run, event: Builder
) -> None:
    ruleset = load(rules(corr("any", "event_count", "[forbidden]", group_by="[]")))
    (alert,) = run(ruleset, [forbidden(event, t, user) for t, user in enumerate("abc")])
    assert alert.group == {}


def test_several_group_fields_form_one_key(load: Load, run: Run, event: Builder) -> None:
    ruleset = load(
        rules(corr("b", "event_count", "[forbidden]", group_by="[user.username, sourceIPs]"))
    )
    same = [forbidden(event, t, sourceIPs=["10.0.0.1"]) for t in range(3)]
    (alert,) = run(ruleset, same)
    assert alert.group == {"user.username": "alice", "sourceIPs": ["10.0.0.1"]}
    split = [forbidden(event, t, sourceIPs=[f"10.0.0.{t}"]) for t in range(3)]
    assert run(ruleset, split) == []


# --- value_count ---------------------------------------------------------------------------------


@pytest.fixture
def spread(load: Load) -> RuleSet:
    return load(
        rules(
            corr(
                "spread",
                "value_count",
                "[secret_read]",
                condition="{gte: 3, field: objectRef.namespace}",
                timespan="1m",
            )
        )
    )


def read(event: Builder, t: float, namespace: str, user: str = "alice") -> dict[str, Any]:
    return event("get", "secrets", t=t, namespace=namespace, user=user)


def test_value_count_counts_distinct_values(spread: RuleSet, run: Run, event: Builder) -> None:
    (alert,) = run(spread, [read(event, 0, "a"), read(event, 1, "b"), read(event, 2, "c")])
    assert alert.count == 3
    assert "3 distinct objectRef.namespace" in alert.summary


def test_a_repeated_value_does_not_count_twice(spread: RuleSet, run: Run, event: Builder) -> None:
    assert run(spread, [read(event, t, ns) for t, ns in enumerate("abab")]) == []
    alerts = run(spread, [read(event, t, ns) for t, ns in enumerate("abac")])
    assert [a.count for a in alerts] == [3]


def test_values_older_than_the_timespan_do_not_count(
    spread: RuleSet, run: Run, event: Builder
) -> None:
    events = [read(event, 0, "a"), read(event, 30, "b"), read(event, 61, "c")]
    assert run(spread, events) == []


def test_further_distinct_values_add_one_each(spread: RuleSet, run: Run, event: Builder) -> None:
    alerts = run(spread, [read(event, t, ns) for t, ns in enumerate("abcade")])
    assert [a.count for a in alerts] == [3, 1, 1]


# --- temporal --------------------------------------------------------------------------------


@pytest.fixture
def together(load: Load) -> RuleSet:
    return load(
        rules(corr("together", "temporal", "[secret_read, pod_exec]", condition="", timespan="1m"))
    )


def exec_(event: Builder, t: float, user: str = "alice") -> dict[str, Any]:
    return event("create", "pods", subresource="exec", t=t, user=user)


def test_temporal_fires_when_every_rule_matched_in_any_order(
    together: RuleSet, run: Run, event: Builder
) -> None:
    (alert,) = run(together, [exec_(event, 0), read(event, 30, "d")])
    assert alert.title == "together"
    assert alert.count == 2
    (alert,) = run(together, [read(event, 0, "d"), exec_(event, 30)])
    assert alert.title == "together"


def test_temporal_needs_every_rule_within_the_timespan(
    together: RuleSet, run: Run, event: Builder
) -> None:
    assert run(together, [exec_(event, 0), read(event, 61, "d")]) == []
    assert run(together, [exec_(event, 0), exec_(event, 30)]) == []
    assert run(together, [exec_(event, 0, "a"), read(event, 1, "d", user="b")]) == []


def test_temporal_ignores_a_late_event_far_before_the_other(
    together: RuleSet, run: Run, event: Builder
) -> None:
    assert run(together, [exec_(event, 100), read(event, 5, "d")]) == []


# --- temporal_ordered ------------------------------------------------------------------------


@pytest.fixture
def ordered(load: Load) -> RuleSet:
    return load(
        rules(
            corr(
                "ordered",
                "temporal_ordered",
                "[secret_read, pod_exec, pod_delete]",
                condition="",
                timespan="1m",
            )
        )
    )


def delete(event: Builder, t: float, user: str = "alice") -> dict[str, Any]:
    return event("delete", "pods", t=t, user=user)


def test_temporal_ordered_fires_on_the_right_order(
    ordered: RuleSet, run: Run, event: Builder
) -> None:
    (alert,) = run(ordered, [read(event, 0, "d"), exec_(event, 10), delete(event, 20)])
    assert alert.count == 3
    assert alert.first_seen is not None and alert.last_seen is not None
    assert alert.last_seen - alert.first_seen == pytest.approx(20)


def test_temporal_ordered_does_not_fire_on_the_wrong_order(
    ordered: RuleSet, run: Run, event: Builder
) -> None:
    assert run(ordered, [exec_(event, 0), read(event, 10, "d"), delete(event, 20)]) == []
    assert run(ordered, [read(event, 0, "d"), delete(event, 10), exec_(event, 20)]) == []


def test_temporal_ordered_needs_the_whole_sequence_within_the_timespan(
    ordered: RuleSet, run: Run, event: Builder
) -> None:
    assert run(ordered, [read(event, 0, "d"), exec_(event, 30), delete(event, 61)]) == []


def test_temporal_ordered_tolerates_slightly_out_of_order_timestamps(
    ordered: RuleSet, run: Run, event: Builder
) -> None:
    """Logged in order, but a step's timestamp is up to ``tolerance`` (5 s) before the last."""
    slightly = [read(event, 10, "d"), exec_(event, 6), delete(event, 20)]
    assert len(run(ordered, slightly)) == 1
    too_much = [read(event, 10, "d"), exec_(event, 4), delete(event, 20)]
    assert run(ordered, too_much) == []


def test_temporal_ordered_restarts_from_the_latest_first_step(
    ordered: RuleSet, run: Run, event: Builder
) -> None:
    events = [read(event, 0, "d"), read(event, 50, "d"), exec_(event, 70), delete(event, 100)]
    (alert,) = run(ordered, events)
    assert alert.first_seen is not None
    assert alert.first_seen == pytest.approx(events_time(events[1]))


def events_time(raw: dict[str, Any]) -> float:
    time = Event(raw).time
    assert time is not None
    return time


# --- falling conditions: decided when the window ends ---------------------------------------


@pytest.fixture
def quiet(load: Load) -> RuleSet:
    return load(
        rules(corr("quiet", "event_count", "[secret_read]", condition="{lt: 3}", timespan="1m"))
    )


def test_lt_is_decided_at_flush(quiet: RuleSet, run: Run, event: Builder) -> None:
    events = [read(event, 0, "d"), read(event, 10, "d")]
    assert run(quiet, events, flush=False) == []
    (alert,) = run(quiet, events)
    assert alert.count == 2
    assert alert.group == {"user.username": "alice"}


def test_lt_is_decided_when_event_time_passes_the_window_end(
    quiet: RuleSet, event: Builder
) -> None:
    engine = Engine(quiet)
    assert not engine.process(Event(read(event, 0, "d")))
    # Another group's activity moves the clock past 60 s + 5 s tolerance; expiry sweeps run
    # every 10 s of event time (EngineOptions.sweep_interval).
    assert not engine.process(Event(read(event, 64, "d", user="bob")))
    (alert,) = engine.process(Event(read(event, 74, "d", user="bob")))
    assert alert.group == {"user.username": "alice"}
    assert alert.count == 1
    assert [a.group for a in engine.flush()] == [{"user.username": "bob"}]


def test_lt_is_decided_when_the_clock_is_advanced(quiet: RuleSet, event: Builder) -> None:
    engine = Engine(quiet)
    engine.process(Event(read(event, 0, "d")))
    start = Event(read(event, 0, "d")).time
    assert start is not None
    assert not engine.advance(start + 30)
    assert len(engine.advance(start + 65)) == 1
    assert not engine.flush()


def test_lt_does_not_fire_for_a_group_that_reached_the_threshold(
    quiet: RuleSet, run: Run, event: Builder
) -> None:
    events = [read(event, t, "d") for t in (0, 10, 60)]
    assert run(quiet, events) == []


def test_a_falling_window_includes_an_event_exactly_at_its_end(
    quiet: RuleSet, run: Run, event: Builder
) -> None:
    assert run(quiet, [read(event, t, "d") for t in (0, 30, 60)]) == []
    alerts = run(quiet, [read(event, t, "d") for t in (0, 30, 60.5)])
    assert [a.count for a in alerts] == [2, 1]


def test_an_event_after_the_window_starts_a_new_one(
    quiet: RuleSet, run: Run, event: Builder
) -> None:
    events = [read(event, t, "d") for t in (0, 10, 20, 61)]
    alerts = run(quiet, events)
    assert [a.count for a in alerts] == [1]  # the first window had 3, the second has 1


@pytest.mark.parametrize(
    ("condition", "count", "fires"),
    [("{lte: 2}", 2, True), ("{lte: 2}", 3, False), ("{eq: 2}", 2, True), ("{eq: 2}", 1, False),
     ("{neq: 2}", 1, True), ("{neq: 2}", 2, False)],
)  # fmt: skip
def test_falling_conditions_compare_the_window_total(
    load: Load, run: Run, event: Builder, condition: str, count: int, fires: bool
) -> None:
    ruleset = load(
        rules(corr("c", "event_count", "[secret_read]", condition=condition, timespan="1m"))
    )
    alerts = run(ruleset, [read(event, t, "d") for t in range(count)])
    assert len(alerts) == int(fires)


def test_value_count_lt_counts_distinct_values_at_window_end(
    load: Load, run: Run, event: Builder
) -> None:
    ruleset = load(
        rules(
            corr(
                "few",
                "value_count",
                "[secret_read]",
                condition="{lt: 2, field: objectRef.namespace}",
                timespan="1m",
            )
        )
    )
    (alert,) = run(ruleset, [read(event, t, "a") for t in range(3)])
    assert alert.count == 3
    assert "1 distinct objectRef.namespace" in alert.summary
    assert run(ruleset, [read(event, 0, "a"), read(event, 1, "b")]) == []


# --- aliases, chaining, generate ------------------------------------------------------------------


def test_aliases_name_a_group_field_differently_per_rule(
    load: Load, run: Run, event: Builder
) -> None:
    ruleset = load(
        rules(
            corr(
                "impersonated",
                "temporal",
                "[secret_read, pod_exec]",
                condition="",
                timespan="1m",
                group_by="[actor]",
                extra="""
                    aliases:
                        actor:
                            secret_read: impersonatedUser.username
                            pod_exec: user.username
                """,
            )
        )
    )
    as_bob = read(event, 0, "d", user="admin") | {"impersonatedUser": {"username": "bob"}}
    (alert,) = run(ruleset, [as_bob, exec_(event, 10, user="bob")])
    assert alert.group == {"actor": "bob"}
    assert run(ruleset, [as_bob, exec_(event, 10, user="admin")]) == []


CHAIN = (
    corr("burst", "event_count", "[forbidden]", condition="{gte: 3}", timespan="1m"),
    corr(
        "burst_then_read",
        "temporal_ordered",
        "[burst, secret_read]",
        condition="",
        timespan="5m",
        number=101,
    ),
)


def test_temporal_ordered_over_an_event_count_correlation(
    load: Load, run: Run, event: Builder
) -> None:
    ruleset = load(rules(*CHAIN))
    events = [forbidden(event, t) for t in range(3)] + [read(event, 60, "d")]
    alerts = run(ruleset, events)
    assert [a.title for a in alerts] == ["burst_then_read"]
    assert alerts[0].count == 4  # the three forbidden requests and the read
    assert run(ruleset, [read(event, 0, "d")] + [forbidden(event, t) for t in (1, 2, 3)]) == []
    other_user = [forbidden(event, t) for t in range(3)] + [read(event, 60, "d", user="bob")]
    assert run(ruleset, other_user) == []


def test_a_chained_parent_defined_before_its_child_still_sees_flushed_hits(
    load: Load, run: Run, event: Builder
) -> None:
    quiet = corr("quiet", "event_count", "[forbidden]", condition="{lt: 2}", timespan="1m")
    parent = corr(
        "read_then_quiet",
        "temporal_ordered",
        "[secret_read, quiet]",
        condition="",
        timespan="5m",
        number=101,
    )
    ruleset = load(rules(parent, quiet))
    alerts = run(ruleset, [read(event, 0, "d"), forbidden(event, 10)])
    assert [a.title for a in alerts] == ["read_then_quiet"]


def test_rules_referenced_by_a_correlation_do_not_alert_on_their_own(
    load: Load, run: Run, event: Builder
) -> None:
    ruleset = load(rules(*CHAIN))
    alerts = run(ruleset, [forbidden(event, 0), read(event, 1, "d"), exec_(event, 2)])
    assert [a.title for a in alerts] == ["pod_exec"]
    assert {r.info.name: r.generate for r in ruleset.all()} == {
        "forbidden": False,
        "secret_read": False,
        "pod_exec": True,
        "pod_delete": True,
        "burst": False,
        "burst_then_read": True,
    }


def test_generate_true_lets_referenced_rules_alert_too(
    load: Load, run: Run, event: Builder
) -> None:
    ruleset = load(rules(corr("burst", "event_count", "[forbidden]", extra="generate: true")))
    alerts = run(ruleset, [forbidden(event, t) for t in range(3)])
    assert [a.title for a in alerts] == ["forbidden", "forbidden", "forbidden", "burst"]


# --- bounded state ----------------------------------------------------------------------------


def test_max_groups_bounds_the_groups_of_a_correlation(burst: RuleSet, event: Builder) -> None:
    engine = Engine(burst, EngineOptions(max_groups=10))
    for t in range(200):
        engine.process(Event(forbidden(event, t / 100, f"user-{t}")))
        assert engine.state_sizes()["00000000-0000-4000-8000-000000000100"] <= 10
    assert engine.counters.get("correlation_groups_evicted", reason=burst.correlations[0].id) == 190


def test_the_least_recently_active_group_is_evicted_first(
    burst: RuleSet, run: Run, event: Builder
) -> None:
    users = ["keep", "old", "other", "keep", "new", "keep", "old", "old"]
    events = [forbidden(event, t / 10, user) for t, user in enumerate(users)]
    # "old" was evicted when "new" arrived (3 groups at most): its first event is forgotten.
    (alert,) = run(burst, events, options=EngineOptions(max_groups=3))
    assert alert.group == {"user.username": "keep"}
    assert len(run(burst, events, options=EngineOptions(max_groups=4))) == 2


def test_windows_expire_as_event_time_advances(burst: RuleSet, event: Builder) -> None:
    engine = Engine(burst)
    for t in range(50):
        engine.process(Event(forbidden(event, t / 10, f"user-{t}")))
    assert engine.state_sizes()["00000000-0000-4000-8000-000000000100"] == 50
    # Matches far later: idle groups are dropped (timespan 10 s + tolerance 5 s).
    engine.process(Event(forbidden(event, 100, "late")))
    assert engine.state_sizes()["00000000-0000-4000-8000-000000000100"] == 1


def test_closed_falling_windows_release_their_groups(quiet: RuleSet, event: Builder) -> None:
    engine = Engine(quiet)
    for t in range(20):
        engine.process(Event(read(event, t, "d", user=f"user-{t}")))
    assert engine.state_sizes()["00000000-0000-4000-8000-000000000100"] == 20
    alerts = engine.advance(Event(read(event, 200, "d")).time or 0.0)
    assert len(alerts) == 20
    assert engine.state_sizes()["00000000-0000-4000-8000-000000000100"] == 0


def test_max_event_ids_caps_the_ids_of_a_hit_not_its_count(
    load: Load, run: Run, event: Builder
) -> None:
    ruleset = load(rules(corr("five", "event_count", "[forbidden]", condition="{gte: 5}")))
    (alert,) = run(
        ruleset, [forbidden(event, t) for t in range(5)], options=EngineOptions(max_event_ids=3)
    )
    assert alert.count == 5
    assert len(alert.event_ids) == 3
