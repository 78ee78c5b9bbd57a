"""Alert suppression: one open alert per rule and group per window (event time)."""

from __future__ import annotations

from k3watch.alert import Alert, Severity
from k3watch.alerting.suppress import Suppressor


def alert(
    t: float | None,
    *,
    rule: str = "r1",
    user: str = "alice",
    ids: list[str] | None = None,
    count: int = 1,
) -> Alert:
    return Alert(
        rule_id=rule,
        title=f"rule {rule}",
        severity=Severity.HIGH,
        tags=(),
        group={"user.username": user},
        first_seen=t,
        last_seen=t,
        count=count,
        event_ids=ids if ids is not None else [f"e{t}"],
        summary="s",
    )


def test_a_repeat_within_the_window_merges_into_the_open_alert() -> None:
    suppressor = Suppressor(window=600)
    first = alert(0, ids=["a"])
    assert suppressor.add(first) == (first, [])
    assert suppressor.add(alert(100, ids=["b"], count=2)) == (None, [])
    assert suppressor.add(alert(599.9, ids=["a", "c"])) == (None, [])
    assert (first.count, first.first_seen, first.last_seen) == (4, 0, 599.9)
    assert first.event_ids == ["a", "b", "c"]
    assert len(suppressor) == 1
    assert suppressor.counters.get("suppressed") == 3


def test_merged_event_ids_are_capped() -> None:
    suppressor = Suppressor(window=600, max_event_ids=3)
    first = alert(0, ids=["e0"])
    suppressor.add(first)
    for t in range(1, 10):
        suppressor.add(alert(t))
    assert first.count == 10
    assert first.event_ids == ["e0", "e1", "e2"]


def test_a_different_group_or_rule_opens_its_own_alert() -> None:
    suppressor = Suppressor(window=600)
    opened = [suppressor.add(a)[0] for a in (alert(0), alert(1, user="bob"), alert(2, rule="r2"))]
    assert all(a is not None for a in opened)
    assert len(suppressor) == 3


def test_a_repeat_after_the_window_closes_the_old_alert_and_opens_a_new_one() -> None:
    suppressor = Suppressor(window=600)
    first = alert(0)
    suppressor.add(first)
    later = alert(600)
    assert suppressor.add(later) == (later, [first])
    assert len(suppressor) == 1


def test_expire_releases_alerts_whose_window_ended_by_event_time() -> None:
    suppressor = Suppressor(window=600)
    early, late = alert(0), alert(300, user="bob")
    suppressor.add(early)
    suppressor.add(late)
    assert suppressor.expire(599.9) == []
    assert suppressor.expire(600) == [early]
    assert suppressor.expire(899) == []
    assert suppressor.expire(10_000) == [late]
    assert len(suppressor) == 0
    assert suppressor.expire(None) == []


def test_drain_releases_every_open_alert_in_order_of_first_occurrence() -> None:
    suppressor = Suppressor(window=600)
    alerts = [alert(5, user="b"), alert(1, user="a"), alert(None, user="c")]
    for a in alerts:
        suppressor.add(a)
    assert suppressor.drain() == [alerts[2], alerts[1], alerts[0]]
    assert len(suppressor) == 0
    assert suppressor.expire(10_000) == []


def test_a_stale_deadline_never_closes_a_newer_alert() -> None:
    suppressor = Suppressor(window=600)
    first, second = alert(0), alert(700)
    suppressor.add(first)
    assert suppressor.add(second) == (second, [first])
    # The first alert's deadline (600) is still in the heap: it must not close the second.
    assert suppressor.expire(650) == []
    assert len(suppressor) == 1
    assert suppressor.add(alert(800)) == (None, [])
    assert second.count == 2
    assert suppressor.expire(1300) == [second]


def test_an_alert_without_a_time_merges_and_only_drains() -> None:
    suppressor = Suppressor(window=600)
    first = alert(None)
    suppressor.add(first)
    suppressor.add(alert(None))
    assert first.count == 2
    assert suppressor.expire(1e12) == []
    assert suppressor.drain() == [first]


def test_max_open_closes_the_earliest_alert() -> None:
    suppressor = Suppressor(window=600, max_open=2)
    a, b, c = alert(0, user="a"), alert(1, user="b"), alert(2, user="c")
    suppressor.add(a)
    suppressor.add(b)
    assert suppressor.add(c) == (c, [a])
    assert len(suppressor) == 2
    assert suppressor.counters.get("opened") == 3
    assert suppressor.counters.get("closed") == 1


def test_delivery_sends_the_first_alert_then_one_update_per_window_with_repeats() -> None:
    from k3watch.alerting.delivery import AlertContext, SuppressedDelivery

    delivery = SuppressedDelivery(Suppressor(window=600))
    context = AlertContext(cluster="c")
    first = alert(0, ids=["a"])
    assert delivery.add(first, context) == [(first, context)]
    assert delivery.add(alert(10, ids=["b"]), context) == []
    # Past the window: the old one closes with an update, and a new window opens at once.
    second = alert(700, ids=["c"])
    sent = delivery.add(second, context)
    assert [(a, c.update) for a, c in sent] == [(first, True), (second, False)]
    assert first.count == 2
    assert delivery.add(alert(710, ids=["d"]), context) == []
    # The new window's repeat is delivered when it ends too.
    updates = delivery.drain()
    assert [(a is second, a.count, c.update) for a, c in updates] == [(True, 2, True)]
