"""SqliteStore: alerts (merge, triage, history, queries) and silences."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.store.helpers import T0, audit, batch, incoming, open_store

from k3watch.store import alerts_db
from k3watch.store.base import AlertChange, AlertQuery, AlertRecord, Matcher, Silence
from k3watch.store.sqlite import SqliteStore


def record(fingerprint: str = "fp-1", **changes: Any) -> AlertRecord:
    values: dict[str, Any] = {
        "fingerprint": fingerprint,
        "rule_id": "k3s-exec-into-pod",
        "title": "Exec into a pod",
        "severity": "high",
        "tags": ("attack.execution", "t1609"),
        "cluster": "prod",
        "group": {"user": "bob", "namespace": "shop"},
        "summary": "bob ran a shell in shop/web-1",
        "first_seen": T0,
        "last_seen": T0 + 10,
        "count": 2,
        "event_keys": ("e1", "e2"),
        "namespace": "shop",
        "user": "bob",
    }
    values.update(changes)
    return AlertRecord(**values)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    with open_store(tmp_path) as opened:
        yield opened


_number = iter(range(10**6))


def emit(store: SqliteStore, *records: AlertRecord) -> None:
    """Write the alerts with a batch of one new event, as the pipeline does."""
    n = next(_number)
    store.write(batch(f"alerts-{n}", [incoming(audit(n, T0 + n), T0 + n)]), records)


def only(store: SqliteStore) -> Any:
    page = store.alerts(AlertQuery())
    assert len(page.alerts) == 1
    alert = store.get_alert(page.alerts[0].id)
    assert alert is not None
    return alert


def test_a_new_alert_is_open_with_its_events_and_history(store: SqliteStore) -> None:
    emit(store, record())
    alert = only(store)
    assert (alert.status, alert.count, alert.rule_id, alert.severity) == (
        "open",
        2,
        "k3s-exec-into-pod",
        "high",
    )
    assert (alert.first_seen, alert.last_seen, alert.assignee) == (T0, T0 + 10, None)
    assert alert.tags == ("attack.execution", "t1609")
    assert alert.group == {"user": "bob", "namespace": "shop"}
    assert (alert.namespace, alert.user, alert.cluster) == ("shop", "bob", "prod")
    assert alert.event_keys == ("e1", "e2")
    assert [(h.actor, h.action) for h in alert.history] == [("k3watch", "occurred")]


def test_a_repeat_adds_to_the_open_alert(store: SqliteStore) -> None:
    """Same fingerprint: count adds up, seen times widen, keys are appended once, status stays."""
    emit(store, record())
    emit(
        store,
        record(
            first_seen=T0 - 5, last_seen=T0 + 3, count=3, event_keys=("e2", "e3"), summary="again"
        ),
    )
    alert = only(store)
    assert (alert.count, alert.first_seen, alert.last_seen) == (5, T0 - 5, T0 + 10)
    assert alert.event_keys == ("e1", "e2", "e3")
    assert alert.status == "open" and alert.summary == "again"
    assert [h.action for h in alert.history] == ["occurred"]


def test_a_repeat_keeps_an_acknowledged_alert_acknowledged(store: SqliteStore) -> None:
    emit(store, record())
    store.change_alert(only(store).id, AlertChange("ann", "ack"))
    emit(store, record(last_seen=T0 + 50))
    alert = only(store)
    assert (alert.status, alert.count, alert.last_seen) == ("acknowledged", 4, T0 + 50)


def test_a_resolved_alert_that_occurs_again_is_reopened(store: SqliteStore) -> None:
    emit(store, record())
    store.change_alert(only(store).id, AlertChange("ann", "resolve", "fixed the RBAC"))
    emit(store, record(last_seen=T0 + 100))
    alert = only(store)
    assert alert.status == "open"
    reopen = alert.history[-1]
    assert (reopen.actor, reopen.action, reopen.note) == ("k3watch", "reopen", "occurred again")
    assert [h.action for h in alert.history] == ["occurred", "resolve", "reopen"]


def test_a_false_positive_stays_one_and_keeps_counting(store: SqliteStore) -> None:
    emit(store, record())
    store.change_alert(only(store).id, AlertChange("ann", "false_positive", "CI does this"))
    emit(store, record(count=7))
    alert = only(store)
    assert (alert.status, alert.count) == ("false_positive", 9)


def test_event_keys_are_capped_per_alert(store: SqliteStore) -> None:
    emit(store, record(event_keys=tuple(f"k{i}" for i in range(80))))
    emit(store, record(event_keys=tuple(f"k{i}" for i in range(60, 160))))
    alert = only(store)
    assert alert.event_keys == tuple(f"k{i}" for i in range(alerts_db.MAX_EVENT_KEYS))


def test_alerts_of_a_retried_batch_are_not_merged_twice(store: SqliteStore) -> None:
    """The batch id makes the write idempotent, alerts included."""
    events = [incoming(audit(1, T0), T0)]
    store.write(batch("once", events), [record()])
    store.write(batch("once", events), [record()])
    assert only(store).count == 2


def test_alerts_are_stored_with_a_batch_of_duplicate_events(store: SqliteStore) -> None:
    """A batch whose events are all known still stores its alerts (and is chained)."""
    events = [incoming(audit(1, T0), T0)]
    store.write(batch("first", events))
    result = store.write(batch("second", events), [record()])
    assert result.stored == 0 and result.batch_seq == 2
    assert only(store).count == 2
    assert store.verify().problem is None


@pytest.mark.parametrize(
    ("action", "status"),
    [
        ("ack", "acknowledged"),
        ("resolve", "resolved"),
        ("false_positive", "false_positive"),
        ("reopen", "open"),
    ],
)
def test_status_changes(store: SqliteStore, action: str, status: str) -> None:
    emit(store, record())
    alert_id = only(store).id
    if action == "reopen":
        store.change_alert(alert_id, AlertChange("ann", "resolve"))
    changed = store.change_alert(alert_id, AlertChange("ann", action, "why", time=T0 + 99))  # type: ignore[arg-type]
    assert changed.status == status
    last = changed.history[-1]
    assert (last.actor, last.action, last.note, last.time) == ("ann", action, "why", T0 + 99)


def test_assign_sets_the_assignee_and_note_only_adds_history(store: SqliteStore) -> None:
    emit(store, record())
    alert_id = only(store).id
    assigned = store.change_alert(alert_id, AlertChange("ann", "assign", assignee="bea"))
    assert (assigned.assignee, assigned.status) == ("bea", "open")
    noted = store.change_alert(alert_id, AlertChange("bea", "note", "looking"))
    assert (noted.assignee, noted.status) == ("bea", "open")
    assert [h.action for h in noted.history] == ["occurred", "assign", "note"]
    assert noted.history[1].assignee == "bea"


def test_a_change_without_time_is_dated_now(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    emit(store, record())
    monkeypatch.setattr("k3watch.store.sqlite.time.time", lambda: 1_900_000_000.0)
    changed = store.change_alert(only(store).id, AlertChange("ann", "ack"))
    assert changed.history[-1].time == 1_900_000_000.0
    assert changed.updated == 1_900_000_000.0


def test_changing_an_unknown_alert_is_a_key_error(store: SqliteStore) -> None:
    with pytest.raises(KeyError):
        store.change_alert(12345, AlertChange("ann", "ack"))
    assert store.get_alert(12345) is None


def test_an_unknown_action_is_refused(store: SqliteStore) -> None:
    emit(store, record())
    with pytest.raises(ValueError):
        store.change_alert(only(store).id, AlertChange("ann", "delete"))  # type: ignore[arg-type]


def _many(store: SqliteStore) -> list[AlertRecord]:
    records = [
        record(
            f"fp-{i}",
            rule_id=f"rule-{i % 3}",
            severity=["low", "high", "critical"][i % 3],
            cluster=["prod", "staging"][i % 2],
            namespace=None if i % 5 == 0 else f"ns-{i % 4}",
            user=f"user-{i % 2}",
            last_seen=T0 + (i * 7) % 40,  # equal last_seen values happen
            count=i + 1,
        )
        for i in range(45)
    ]
    emit(store, *records)
    return records


def test_alerts_newest_first_across_pages(store: SqliteStore) -> None:
    """Pages follow last_seen then id, newest first, without duplicates or gaps."""
    records = _many(store)
    seen = []
    cursor = None
    while True:
        page = store.alerts(AlertQuery(limit=7, cursor=cursor))
        seen += page.alerts
        cursor = page.cursor
        if cursor is None:
            break
    assert len(seen) == len(records) == len({a.id for a in seen})
    order = [(a.last_seen, a.id) for a in seen]
    assert order == sorted(order, reverse=True)


def test_alert_filters_and_time_range(store: SqliteStore) -> None:
    records = _many(store)
    store.change_alert(1, AlertChange("ann", "assign", assignee="bea"))
    store.change_alert(2, AlertChange("ann", "ack"))
    cases: list[tuple[dict[str, list[str]], Any]] = [
        ({"severity": ["high"]}, lambda r: r.severity == "high"),
        (
            {"rule_id": ["rule-1", "rule-2"], "cluster": ["prod"]},
            lambda r: r.rule_id != "rule-0" and r.cluster == "prod",
        ),
        ({"namespace": ["ns-1"]}, lambda r: r.namespace == "ns-1"),
        ({"user": ["user-1"]}, lambda r: r.user == "user-1"),
    ]
    for filters, wanted in cases:
        got = {a.fingerprint for a in store.alerts(AlertQuery(filters=filters, limit=100)).alerts}
        assert got == {r.fingerprint for r in records if wanted(r)}
    assert [a.id for a in store.alerts(AlertQuery(filters={"assignee": ["bea"]})).alerts] == [1]
    assert [
        a.id for a in store.alerts(AlertQuery(filters={"status": ["acknowledged"]})).alerts
    ] == [2]
    ranged = store.alerts(AlertQuery(start=T0 + 10, end=T0 + 20, limit=100)).alerts
    assert {a.fingerprint for a in ranged} == {
        r.fingerprint for r in records if T0 + 10 <= r.last_seen < T0 + 20
    }
    with pytest.raises(ValueError):
        store.alerts(AlertQuery(filters={"colour": ["red"]}))


def test_alert_counts(store: SqliteStore) -> None:
    records = _many(store)
    store.change_alert(3, AlertChange("ann", "resolve"))
    assert store.alert_counts("severity") == {"low": 15, "high": 15, "critical": 15}
    assert store.alert_counts("status") == {"open": 44, "resolved": 1}
    assert store.alert_counts("cluster") == {"prod": 23, "staging": 22}
    recent = sum(1 for r in records if r.last_seen >= T0 + 30)
    assert sum(store.alert_counts("rule_id", start=T0 + 30).values()) == recent
    with pytest.raises(ValueError):
        store.alert_counts("user")


def test_rule_hits(store: SqliteStore) -> None:
    records = _many(store)
    store.change_alert(1, AlertChange("ann", "false_positive"))
    hits = {h.rule_id: h for h in store.rule_hits()}
    for rule in ("rule-0", "rule-1", "rule-2"):
        mine = [r for r in records if r.rule_id == rule]
        assert hits[rule].alerts == len(mine)
        assert hits[rule].occurrences == sum(r.count for r in mine)
        assert hits[rule].last_seen == max(r.last_seen for r in mine)
    assert hits["rule-0"].false_positives == 1 and hits["rule-1"].false_positives == 0  # id 1: fp-0
    assert sum(h.alerts for h in store.rule_hits(start=T0 + 39)) == sum(
        1 for r in records if r.last_seen >= T0 + 39
    )


# --- silences ---


def silence(silence_id: str, starts: float, ends: float, created: float = 0.0) -> Silence:
    return Silence(
        silence_id,
        (Matcher("rule_id", "k3s-.*", regex=True), Matcher("namespace", "ci", equal=False)),
        starts,
        ends,
        "ann",
        "maintenance window",
        created,
    )


def test_silences_are_stored_and_listed(store: SqliteStore) -> None:
    stored = store.add_silence(silence("s1", T0, T0 + 100, created=T0 - 10))
    assert stored == silence("s1", T0, T0 + 100, created=T0 - 10)
    store.add_silence(silence("s2", T0 + 50, T0 + 200, created=T0 - 5))
    store.add_silence(silence("s3", T0 - 100, T0 - 50, created=T0 - 1))
    assert [s.id for s in store.silences()] == ["s3", "s2", "s1"]
    assert [s.id for s in store.silences(active_at=T0 + 60)] == ["s2", "s1"]
    assert [s.id for s in store.silences(active_at=T0 + 100)] == ["s2"]  # ends is exclusive
    assert [s.id for s in store.silences(active_at=T0 + 50)] == ["s2", "s1"]  # starts inclusive
    assert store.silences()[0].matchers == silence("x", 0, 0).matchers


def test_a_silence_without_creation_time_is_dated_now(store: SqliteStore) -> None:
    stored = store.add_silence(silence("s1", T0, T0 + 100))
    assert stored.created > 1_700_000_000


def test_expiring_a_silence(store: SqliteStore) -> None:
    store.add_silence(silence("s1", T0, T0 + 100, created=T0))
    expired = store.expire_silence("s1", T0 + 40)
    assert expired.ends == T0 + 40
    assert store.silences(active_at=T0 + 50) == []
    assert store.expire_silence("s1", T0 + 90).ends == T0 + 40  # never extended
    with pytest.raises(KeyError):
        store.expire_silence("nope", T0)
