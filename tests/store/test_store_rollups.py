"""The review roll-ups of the SQLite store: values first seen, activity per minute and origin,
rejected input; right across duplicates and retention, and made for stores that predate them."""

from __future__ import annotations

import random
import sqlite3
from collections import Counter
from pathlib import Path

import pytest
from tests.store.helpers import T0, audit, batch, incoming, open_store

from k3watch.store.base import AggregateQuery, IngestErrors, RetentionPolicy
from k3watch.store.sqlite import SqliteStore
from k3watch.store.sqlite_schema import REVIEW_TABLES
from k3watch.store.writer import _review_rollups

DAY = 86400.0


def _write(store: SqliteStore, batch_id: str, items: list[tuple[int, float, dict[str, str]]],
           node: str = "server-1") -> None:  # fmt: skip
    events = [incoming(audit(n, t, **fields), t) for n, t, fields in items]
    store.write(batch(batch_id, events, node=node))


def _activity(path: Path) -> list[tuple[int, int, int]]:
    db = sqlite3.connect(path)
    try:
        return [tuple(row) for row in db.execute("SELECT * FROM activity ORDER BY 1, 2")]
    finally:
        db.close()


def test_first_seen_keeps_the_first_and_last_time_of_users_and_ips(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    _write(store, "a", [(1, T0 + 50, {"user": "alice"}), (2, T0 + 10, {"user": "alice"})])
    _write(store, "b", [(3, T0 + 500, {"user": "alice", "ip": "10.9.9.9"}),
                        (4, T0 + 5, {"user": "bob"})])  # fmt: skip
    users, total = store.first_seen("user", T0, T0 + DAY)
    assert total == 2
    assert [(v.value, v.first, v.last, v.events) for v in users] == [
        ("bob", T0 + 5, T0 + 5, 1),
        ("alice", T0 + 10, T0 + 500, 3),
    ]
    ips, _ = store.first_seen("source_ip", T0 + 100, T0 + DAY)
    assert [v.value for v in ips] == ["10.9.9.9"]  # 10.0.0.1 was first seen before
    assert store.first_seen("user", T0 + 6, T0 + DAY, limit=1) == (users[1:], 1)
    with pytest.raises(ValueError, match="user, source_ip"):
        store.first_seen("verb", T0, T0 + DAY)
    store.close()


def test_a_duplicate_batch_or_event_counts_once(tmp_path: Path) -> None:
    """A retried batch (same id) and a known event in a new batch change no roll-up."""
    store = open_store(tmp_path)
    items = [(1, T0 + 10, {"user": "alice"}), (2, T0 + 70, {"user": "alice"})]
    _write(store, "a", items)
    before = (store.first_seen("user", T0, T0 + DAY), _activity(store.path))
    _write(store, "a", items)  # retried
    _write(store, "b", items)  # the same events in another batch
    assert (store.first_seen("user", T0, T0 + DAY), _activity(store.path)) == before
    assert store.first_seen("user", T0, T0 + DAY)[0][0].events == 2
    assert [n for _, _, n in _activity(store.path)] == [1, 1]
    store.close()


def test_gaps_are_silences_of_an_origin_in_whole_minutes(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    # server-1: every 5 minutes for 2 hours, but not from minute 30 to 60
    items = [(k, T0 + k * 300.0, {}) for k in range(24) if not 6 < k < 12]
    _write(store, "s1", items)
    # server-2: every 5 minutes for the first hour only
    _write(store, "s2", [(100 + k, T0 + k * 300.0, {}) for k in range(12)], node="server-2")
    end = T0 + 2 * 3600
    gaps = store.activity_gaps(T0, end, min_gap=600)
    assert [(g.node, g.start - T0, g.end - T0, g.ongoing) for g in gaps] == [
        ("server-1", 30 * 60 + 60, 60 * 60, False),
        ("server-2", 55 * 60 + 60, 2 * 3600, True),
    ]
    # from minute 50 without looking back, server-1's silence until minute 60 is before its
    # first event in the window: no gap
    later = store.activity_gaps(T0 + 3000, end, min_gap=600, lookback=0)
    assert [(g.node, g.ongoing) for g in later] == [("server-2", True)]
    # looking back 20 minutes, it is one
    earlier = store.activity_gaps(T0 + 3000, end, min_gap=600, lookback=1200)
    assert [(g.node, g.start - T0) for g in earlier] == [("server-1", 1860), ("server-2", 3360)]
    assert store.activity_gaps(T0, end, min_gap=3 * 3600) == []
    store.close()


def test_retention_removes_what_it_deletes_from_activity_but_not_first_seen(
    tmp_path: Path,
) -> None:
    store = open_store(tmp_path)
    _write(store, "old", [(1, T0, {"user": "old-user"}), (2, T0 + 60, {"user": "alice"})])
    _write(store, "new", [(3, T0 + 10 * DAY, {"user": "alice"})])
    store.add_ingest_errors(
        [
            IngestErrors(T0, "prod", "server-1", "audit", "json", 2),
            IngestErrors(T0 + 10 * DAY, "prod", "server-1", "audit", "json", 1),
        ]
    )
    store.apply_retention(RetentionPolicy(max_age={"*": 5 * DAY}), now=T0 + 10 * DAY + 60)
    minutes = [m for m, _, _ in _activity(store.path)]
    assert minutes == [int((T0 + 10 * DAY) // 60)]
    users, _ = store.first_seen("user", T0 - DAY, T0 + 11 * DAY)
    assert {v.value: v.first for v in users} == {"old-user": T0, "alice": T0 + 60}
    assert [e.count for e in store.ingest_errors(T0 - DAY, T0 + 11 * DAY)] == [1]
    # the hourly rollup agrees with what is left
    assert sum(b.count for b in store.aggregate(AggregateQuery())) == 1
    store.close()


def test_ingest_errors_add_up_per_hour_origin_and_reason(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    errors = [
        IngestErrors(T0 + 10, "prod", "server-1", "audit", "json", 2),
        IngestErrors(T0 + 20, "prod", "server-1", "audit", "json", 3),
        IngestErrors(T0 + 30, "prod", "server-1", "audit", "http_413", 1),
        IngestErrors(T0 + 7200, "prod", "server-2", "audit", "json", 4),
    ]
    store.add_ingest_errors(errors)
    found = store.ingest_errors(T0, T0 + 3600)
    assert [(e.hour, e.reason, e.count) for e in found] == [
        (T0, "http_413", 1),
        (T0, "json", 5),
    ]
    assert len(store.ingest_errors(T0, T0 + DAY)) == 3
    store.close()


def test_aggregate_by_text_with_a_text_filter(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    uri = "/api/v1/namespaces/d/pods/web/exec?command=id"
    _write(store, "a", [(1, T0, {"uri": uri}), (2, T0 + 1, {"uri": uri}), (3, T0 + 2, {})])
    buckets = store.aggregate(AggregateQuery(by="text", text="exec"))
    assert [(b.value, b.count) for b in buckets] == [(uri, 2)]
    assert sum(b.count for b in store.aggregate(AggregateQuery(text="exec", by="user"))) == 2
    store.close()


def _drop_review_tables(path: Path) -> None:
    """Make the file look like one written before the review roll-ups existed."""
    db = sqlite3.connect(path)
    try:
        for table in REVIEW_TABLES:
            db.execute(f"DROP TABLE {table}")
        db.commit()
    finally:
        db.close()


def test_an_old_store_reads_and_gets_the_tables_when_opened_for_writing(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    items = [(k, T0 + k * 60.0, {"user": f"u{k % 3}", "ip": f"10.1.0.{k % 2}"})
             for k in range(200) if not 50 <= k < 80]  # fmt: skip
    for at in range(0, len(items), 40):
        _write(store, f"b{at}", items[at : at + 40])
    path = store.path
    want_users = store.first_seen("user", T0, T0 + DAY)
    want_ips = store.first_seen("source_ip", T0 + 1, T0 + DAY)
    want_gaps = store.activity_gaps(T0, T0 + DAY, 600)
    want_activity = _activity(path)
    store.close()
    _drop_review_tables(path)

    readonly = SqliteStore.open_readonly(path)  # computes from the events
    assert readonly.first_seen("user", T0, T0 + DAY) == want_users
    assert readonly.first_seen("source_ip", T0 + 1, T0 + DAY) == want_ips
    assert readonly.activity_gaps(T0, T0 + DAY, 600) == want_gaps
    assert readonly.ingest_errors(T0, T0 + DAY) == []
    readonly.close()

    store = open_store(tmp_path)  # adds the tables, filled from the events
    assert _activity(path) == want_activity
    assert store.first_seen("user", T0, T0 + DAY) == want_users
    _write(store, "later", [(500, T0 + 300 * 60.0, {"user": "u9"})])
    assert [v.value for v in store.first_seen("user", T0 + 299 * 60, T0 + DAY)[0]] == ["u9"]
    store.close()


@pytest.mark.parametrize("seed", range(6))
def test_batch_rollups_agree_with_counting_event_by_event(seed: int) -> None:
    """In order or not, with unknown (0) times, spread over minutes or over days."""
    rng = random.Random(seed)
    spread = (300.0, 3 * DAY)[seed % 2]
    times = [T0 + rng.random() * spread for _ in range(500)]
    if seed >= 2:
        times.sort()
    if seed >= 4:
        times[rng.randrange(500)] = 0.0
    users = [rng.choice([0, 1, 2, 3]) for _ in times]
    seen, activity = _review_rollups(7, [(1, users)], times)
    want_seen = {}
    for user, t in zip(users, times, strict=True):
        if user and t:
            first, last, _ = want_seen.get(user, (t, t, 0))
            want_seen[user] = (min(first, t), max(last, t), 0)
    counts = Counter(u for u in users if u)
    assert {(v, first, last, n) for _, v, first, last, n in seen} == {
        (v, first, last, counts[v]) for v, (first, last, _) in want_seen.items()
    }
    assert sorted(activity) == sorted(
        (minute, 7, n) for minute, n in Counter(int(t // 60.0) for t in times).items()
    )
