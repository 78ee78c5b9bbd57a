"""The outbox: persistent, bounded, retried with backoff, expired only after max_age.

Time is a fake clock and jitter a fixed number, so schedules are asserted exactly (attempt
counts and scheduled times), never measured.
"""

from __future__ import annotations

import logging
import sqlite3
import stat
import threading
from pathlib import Path

import pytest

from k3watch.alerting.outbox import Entry, Outbox, RetryPolicy
from k3watch.alerting.sinks.destination import DeliveryError

POLICY = RetryPolicy(retry_delay=1.0, max_delay=8.0, max_age=100.0, jitter=0.5)


class Clock:
    """A settable clock."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def outbox(path: Path, clock: Clock, *, rand: float = 0.0, **kwargs: object) -> Outbox:
    return Outbox(
        path / "outbox.sqlite",
        kwargs.pop("policy", POLICY),  # type: ignore[arg-type]
        clock=clock,
        rand=lambda: rand,
        **kwargs,  # type: ignore[arg-type]
    )


def down(reason: str = "connection", **kwargs: object) -> DeliveryError:
    return DeliveryError("hook", "receiver is down", reason=reason, **kwargs)  # type: ignore[arg-type]


def entry(key: str, destination: str = "hook", severity: int = 3) -> Entry:
    return Entry(destination, key, f'{{"key": "{key}"}}'.encode(), severity)


def test_the_file_is_private_and_in_wal_mode(tmp_path: Path) -> None:
    box = outbox(tmp_path, Clock())
    box.enqueue([entry("a")])
    assert stat.S_IMODE((tmp_path / "outbox.sqlite").stat().st_mode) == 0o600
    for extra in ("outbox.sqlite-wal", "outbox.sqlite-shm"):
        if (tmp_path / extra).exists():
            assert stat.S_IMODE((tmp_path / extra).stat().st_mode) == 0o600
    box.close()
    with sqlite3.connect(tmp_path / "outbox.sqlite") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_looser_existing_file_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    path.touch(mode=0o644)
    path.chmod(0o644)
    Outbox(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_same_alert_state_is_queued_once_per_destination(tmp_path: Path) -> None:
    box = outbox(tmp_path, Clock())
    assert box.enqueue([entry("a"), entry("a"), entry("a", "chat")]) == 2
    assert box.pending("hook") == 1 and box.pending("chat") == 1
    assert box.counters.get("duplicate") == 1


def test_due_items_come_oldest_first_and_in_batches(tmp_path: Path) -> None:
    clock = Clock()
    box = outbox(tmp_path, clock)
    for key in "abc":
        box.enqueue([entry(key)])
        clock.now += 1
    assert [i.key for i in box.due("hook", 2)] == ["a", "b"]
    assert box.due("chat", 10) == []


def test_delivered_items_leave_the_queue_and_count_as_sent(tmp_path: Path) -> None:
    box = outbox(tmp_path, Clock())
    box.enqueue([entry("a"), entry("b")])
    box.delivered(box.due("hook", 10))
    assert len(box) == 0
    assert box.counters_of("hook").get("sent") == 2


def test_retries_back_off_exponentially_up_to_the_maximum_delay(tmp_path: Path) -> None:
    clock = Clock()
    box = outbox(tmp_path, clock, rand=0.0)  # no jitter drawn: the full delay
    box.enqueue([entry("a")])
    waits = []
    for _ in range(6):
        (item,) = box.due("hook", 1, clock.now)
        box.failed([item], down(), clock.now)
        (after,) = box.items()
        waits.append(after.next_attempt - clock.now)
        clock.now = after.next_attempt
    assert waits == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert box.items()[0].attempts == 6
    assert box.counters_of("hook").get("failed", "connection") == 6


def test_jitter_shortens_each_delay_by_at_most_its_share() -> None:
    assert POLICY.delay(3, 0.0) == 4.0
    assert POLICY.delay(3, 0.999) == pytest.approx(2.002)
    assert all(4.0 * 0.5 <= POLICY.delay(3, r / 10) <= 4.0 for r in range(10))
    assert POLICY.delay(500, 0.0) == 8.0  # no overflow on long outages


def test_an_item_is_not_due_before_its_scheduled_retry(tmp_path: Path) -> None:
    clock = Clock()
    box = outbox(tmp_path, clock)
    box.enqueue([entry("a")])
    box.failed(box.due("hook", 1), down(), clock.now)
    assert box.due("hook", 1, clock.now + 0.999) == []
    assert len(box.due("hook", 1, clock.now + 1.0)) == 1
    assert box.next_attempt("hook") == clock.now + 1.0


def test_retry_after_from_the_receiver_is_honoured_within_the_maximum_delay(
    tmp_path: Path,
) -> None:
    clock = Clock()
    box = outbox(tmp_path, clock)
    box.enqueue([entry("a"), entry("b")])
    a, b = box.due("hook", 2)
    box.failed([a], down("http_429", retry_after=5.0), clock.now)
    box.failed([b], down("http_429", retry_after=3600.0), clock.now)
    assert [i.next_attempt - clock.now for i in box.items()] == [5.0, 8.0]


def test_the_last_attempt_is_at_max_age_and_its_failure_expires_the_alert(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    box = outbox(tmp_path, clock)
    created = clock.now
    box.enqueue([entry("a")])
    attempts = 0
    while box.pending():
        (item,) = box.due("hook", 1, clock.now)
        assert clock.now <= created + POLICY.max_age
        with caplog.at_level(logging.WARNING, logger="k3watch.alerting.outbox"):
            box.failed([item], down(), clock.now)
        attempts += 1
        if box.pending():
            clock.now = box.items()[0].next_attempt
    assert clock.now == created + POLICY.max_age  # the final attempt, exactly at the deadline
    assert attempts == 16  # at 0, 1, 3, 7, then every 8 s up to 95, and the last at 100
    assert box.counters_of("hook").get("dropped", "expired") == 1
    assert box.counters.get("dropped", "expired") == 1
    assert "alert a for destination hook dropped (expired) after 16 attempt(s)" in caplog.text


def test_a_permanent_rejection_drops_without_retrying(tmp_path: Path) -> None:
    box = outbox(tmp_path, Clock())
    box.enqueue([entry("a")])
    dropped = box.failed(box.due("hook", 1), down("http_400", permanent=True))
    assert [i.key for i in dropped] == ["a"]
    assert len(box) == 0
    assert box.counters_of("hook").get("dropped", "rejected") == 1


def test_a_new_outbox_on_the_same_file_has_the_pending_items_and_their_attempts(
    tmp_path: Path,
) -> None:
    clock = Clock()
    first = outbox(tmp_path, clock)
    first.enqueue([entry("a"), entry("b")])
    first.failed(first.due("hook", 1), down(), clock.now)
    first.close()
    second = outbox(tmp_path, clock)
    assert len(second) == 2
    assert [(i.key, i.attempts) for i in second.items()] == [("a", 1), ("b", 0)]
    clock.now += 1
    assert [i.key for i in second.due("hook", 10)] == ["a", "b"]


def test_overflow_drops_the_lowest_severity_oldest_alert_first(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    box = outbox(tmp_path, Clock(), max_items=3)
    box.enqueue([entry("high", severity=3), entry("low1", severity=1), entry("low2", severity=1)])
    with caplog.at_level(logging.WARNING, logger="k3watch.alerting.outbox"):
        assert box.enqueue([entry("critical", severity=4)]) == 1
    assert [i.key for i in box.items()] == ["high", "low2", "critical"]
    # A newcomer less important than everything queued is the one refused.
    assert box.enqueue([entry("info", severity=0)]) == 0
    assert [i.key for i in box.items()] == ["high", "low2", "critical"]
    assert box.counters.get("dropped", "overflow") == 2
    assert "outbox full (3 alerts)" in caplog.text


def test_a_duplicate_of_a_queued_alert_makes_no_room_when_the_queue_is_full(
    tmp_path: Path,
) -> None:
    box = outbox(tmp_path, Clock(), max_items=2)
    box.enqueue([entry("a", severity=0), entry("b", severity=4)])
    assert box.enqueue([entry("b", severity=4)]) == 0
    assert [i.key for i in box.items()] == ["a", "b"]
    assert box.counters.get("dropped", "overflow") == 0


def test_overflow_can_refuse_new_alerts_instead(tmp_path: Path) -> None:
    box = outbox(tmp_path, Clock(), max_items=2, overflow="reject_new")
    assert box.enqueue([entry("a", severity=0), entry("b", severity=0), entry("c", severity=4)])
    assert [i.key for i in box.items()] == ["a", "b"]
    assert box.counters_of("hook").get("dropped", "overflow") == 1


def test_alerts_of_a_destination_no_longer_configured_expire_after_max_age(
    tmp_path: Path,
) -> None:
    clock = Clock()
    box = outbox(tmp_path, clock)
    box.enqueue([entry("a", "removed"), entry("b", "hook")])
    assert box.expire_unserved(["hook"], clock.now + 99) == 0
    assert box.expire_unserved(["hook"], clock.now + 100) == 1
    assert [i.destination for i in box.items()] == ["hook"]
    assert box.counters.get("dropped", "expired") == 1


def test_concurrent_enqueues_from_many_threads_are_all_kept(tmp_path: Path) -> None:
    box = outbox(tmp_path, Clock())

    def produce(worker: int) -> None:
        for n in range(50):
            box.enqueue([entry(f"{worker}-{n}")])

    threads = [threading.Thread(target=produce, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(box) == 200 == box.pending("hook") == box.counters.get("queued")
