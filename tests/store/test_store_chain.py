"""SqliteStore: the hash chain (verify, tampering found through a separate connection) and
retention (by age, by size) keeping the chain verifiable."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.store.helpers import T0, audit, batch, incoming, keys, open_store, wait_for_merge

from k3watch.store.base import AggregateQuery, Batch, EventQuery, RetentionPolicy
from k3watch.store.sqlite import SqliteStore

HOUR = 3600.0
COPY = "h + 1, t, kind, usr, res, ns, nm, ip, txt, z, body"


def fill(
    store: SqliteStore,
    batches: int = 6,
    size: int = 20,
    source: str = "audit",
    start: int = 0,
    hour: int = 0,
) -> list[list[str]]:
    """Write ``batches`` batches, an hour apart from ``hour``; return the keys of each."""
    out = []
    for b in range(batches):
        n0 = start + b * size
        t0 = T0 + (hour + b) * HOUR
        events = [incoming(audit(n0 + i, t0 + i, user=f"u{i % 4}"), t0 + i) for i in range(size)]
        store.write(batch(f"{source}-{start + b}", events, source=source))
        out.append([e.key for e in events])
    return out


@pytest.fixture
def path(tmp_path: Path) -> Iterator[Path]:
    """A closed store of 6 batches of 20 events (seq 1..6, ids 1..120)."""
    with open_store(tmp_path) as store:
        fill(store)
    yield tmp_path / "store.sqlite"


def tamper(path: Path, *statements: str) -> None:
    db = sqlite3.connect(path)
    try:
        for statement in statements:
            db.execute(statement)
        db.commit()
    finally:
        db.close()


def verify(path: Path) -> tuple[int, str] | None:
    store = SqliteStore.open_readonly(path)
    try:
        report = store.verify()
    finally:
        store.close()
    return None if report.problem is None else (report.problem.seq, report.problem.problem)


def test_an_untouched_chain_verifies(path: Path) -> None:
    store = SqliteStore.open_readonly(path)
    try:
        report = store.verify()
        head = (
            store._db().execute("SELECT hash FROM batches ORDER BY seq DESC LIMIT 1").fetchone()[0]
        )
    finally:
        store.close()
    assert report.problem is None
    assert (report.batches, report.events, report.pruned) == (6, 120, 0)
    assert report.head == head.hex()


@pytest.mark.parametrize(
    ("statements", "found"),
    [
        (["UPDATE events SET usr = usr + 1 WHERE id = 45"], (3, "altered")),
        (["UPDATE events SET t = t + 1 WHERE id = 1"], (1, "altered")),
        (
            ["UPDATE events SET body = substr(body, 1, length(body) - 1) || x'00' WHERE id = 70"],
            (4, "altered"),
        ),
        (["UPDATE events SET kind = 'text' WHERE id = 101"], (6, "altered")),
        (["DELETE FROM events WHERE id = 22"], (2, "altered")),
        (["DELETE FROM batches WHERE seq = 4"], (4, "removed")),
        (["DELETE FROM batches WHERE seq IN (2, 3)"], (2, "removed")),
        (
            [
                "CREATE TEMP TABLE swap AS SELECT seq, hash FROM batches WHERE seq IN (2, 5)",
                "UPDATE batches SET hash = (SELECT hash FROM swap WHERE swap.seq = 7 - batches.seq)"
                " WHERE seq IN (2, 5)",
            ],
            (2, "reordered"),
        ),
        (["UPDATE batches SET prev = zeroblob(32) WHERE seq = 3"], (3, "reordered")),
        (["UPDATE batches SET batch_id = 'other' WHERE seq = 5"], (5, "reordered")),
        (
            [f"INSERT INTO events SELECT id + 1000, {COPY} FROM events WHERE id = 5"],
            (6, "inserted"),
        ),
        (["UPDATE batches SET last_rowid = 39, events = 19 WHERE seq = 2"], (2, "altered")),
        (["UPDATE strings SET value = 'mallory' WHERE value = 'u1'"], (1, "altered")),
        (["UPDATE origins SET cluster = 'elsewhere'"], (1, "altered")),
    ],
)
def test_tampering_is_found_at_the_right_batch(
    path: Path, statements: list[str], found: tuple[int, str]
) -> None:
    tamper(path, *statements)
    assert verify(path) == found


def test_an_event_slipped_between_batches_is_inserted(tmp_path: Path) -> None:
    """Rows not covered by any batch (in a gap between two batches) are reported."""
    with open_store(tmp_path) as store:
        fill(store, 2)
        store._writer.next_id += 5  # leave a gap of ids, as a deleted batch would
        fill(store, 1, start=100)
    tamper(
        tmp_path / "store.sqlite",
        f"INSERT INTO events SELECT 42, {COPY} FROM events WHERE id = 1",
    )
    assert verify(tmp_path / "store.sqlite") == (3, "inserted")


def test_a_changed_dictionary_alters_the_batches_that_used_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from k3watch.store import codec

    monkeypatch.setattr(codec, "FIRST_TRAINING", 100)
    with open_store(tmp_path) as store:
        fill(store, 10)
        used = store._db().execute("SELECT min(id) FROM events WHERE z >= 2").fetchone()[0]
    tamper(
        tmp_path / "store.sqlite",
        "UPDATE dicts SET data = substr(data, 1, length(data) - 1) || x'01'",
    )
    seq = (used - 1) // 20 + 1
    assert verify(tmp_path / "store.sqlite") == (seq, "altered")


def test_dropping_the_last_batches_changes_the_head(path: Path) -> None:
    """Removing batches at the end leaves a valid shorter chain: only the head hash, recorded
    elsewhere, tells."""
    before = SqliteStore.open_readonly(path)
    head = before.verify().head
    before.close()
    tamper(path, "DELETE FROM batches WHERE seq = 6", "DELETE FROM events WHERE id > 100")
    after = SqliteStore.open_readonly(path)
    try:
        report = after.verify()
    finally:
        after.close()
    assert report.problem is None and report.batches == 5
    assert report.head != head


# --- retention ---


def test_retention_by_age_deletes_old_batches_and_the_chain_still_verifies(tmp_path: Path) -> None:
    with open_store(tmp_path) as store:
        audit_keys = fill(store, 6)
        journal_keys = fill(store, 6, source="journald", start=500)
        now = T0 + 6 * HOUR
        result = store.apply_retention(RetentionPolicy({"audit": 3.5 * HOUR, "*": 1.5 * HOUR}), now)
        # audit keeps batches newer than now - 3.5 h: hours 3, 4, 5; journald: hours 5 only
        assert (result.batches_deleted, result.events_deleted) == (3 + 5, 8 * 20)
        remaining = set(keys(store.search(EventQuery(limit=1000)).events))
        assert remaining == {k for b in audit_keys[3:] + journal_keys[5:] for k in b}
        report = store.verify()
        assert report.problem is None and report.pruned == 8 and report.events == 80
        assert store.stats().events == 80 and store.stats().batches == 4
        log = (
            store._db()
            .execute("SELECT events_deleted, batches_deleted FROM retention_log")
            .fetchall()
        )
        assert log == [(160, 8)]


def test_retention_keeps_search_and_aggregates_right(tmp_path: Path) -> None:
    """Postings of sealed segments that lost events are rebuilt; counts follow the deletions."""
    with open_store(tmp_path) as store:
        fill(store, 8)
        fill(store, 8, source="journald", start=500)
        store.apply_retention(RetentionPolicy({"journald": 4.5 * HOUR}), T0 + 8 * HOUR)
        events = store.search(EventQuery(limit=1000)).events
        by_user = {b.value: b.count for b in store.aggregate(AggregateQuery(by="user"))}
        assert sum(by_user.values()) == len(events) == 8 * 20 + 4 * 20
        per_user = {u: sum(1 for e in events if e.raw["user"]["username"] == u) for u in by_user}
        assert by_user == per_user
        hourly = store.aggregate(AggregateQuery(bucket=HOUR, filters={"source": ["journald"]}))
        assert [b.count for b in hourly] == [20] * 4
        for user in ("u0", "u3"):
            found = store.search(
                EventQuery(filters={"user": [user], "source": ["journald"]}, limit=1000)
            )
            assert len(found.events) == 4 * 5


def test_retention_by_size_deletes_the_oldest_until_under(tmp_path: Path) -> None:
    with open_store(tmp_path) as store:
        batches = fill(store, 40, size=50)
        store.checkpoint()
        before = store.stats().bytes
        result = store.apply_retention(RetentionPolicy(max_bytes=before // 2), T0)
        assert result.bytes_after <= before // 2
        assert 0 < result.batches_deleted < 40
        remaining = set(keys(store.search(EventQuery(limit=5000)).events))
        kept = [b for b in batches if b[0] in remaining]
        assert kept == batches[result.batches_deleted :]  # the oldest went first
        assert store.verify().problem is None


def test_deleted_events_can_be_stored_again(tmp_path: Path) -> None:
    """After retention, a key of a deleted event is unseen; the kept ones are still known."""
    with open_store(tmp_path) as store:
        batches = fill(store, 4)
        store.apply_retention(RetentionPolicy({"*": 1.5 * HOUR}), T0 + 4 * HOUR)
        assert store.unseen([batches[0][0], batches[3][0]]) == [True, False]
        again = [incoming(audit(0, T0), T0)]
        assert store.write(batch("again", again)).stored == 1
        assert store.verify().problem is None


def test_retention_with_nothing_to_delete(tmp_path: Path) -> None:
    with open_store(tmp_path) as store:
        fill(store, 2)
        result = store.apply_retention(
            RetentionPolicy({"*": 10 * HOUR}, max_bytes=10**12), T0 + 2 * HOUR
        )
        assert (result.events_deleted, result.batches_deleted) == (0, 0)
        assert store.stats().events == 40


def _writes_during(store: SqliteStore, action: Callable[[], object]) -> None:
    import threading

    errors: list[BaseException] = []

    def writer() -> None:
        try:
            fill(store, 5, start=5000, hour=10)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    action()
    thread.join()
    assert not errors


def test_retention_runs_while_events_are_written(tmp_path: Path) -> None:
    """Retention from another thread interleaves with ingest; both finish, the chain holds."""
    with open_store(tmp_path) as store:
        fill(store, 10)
        _writes_during(
            store, lambda: store.apply_retention(RetentionPolicy({"*": 4.5 * HOUR}), T0 + 10 * HOUR)
        )
        assert store.verify().problem is None
        assert store.stats().events == 4 * 20 + 5 * 20  # hours 6-9 kept, and the new ones


def test_retention_drops_stale_key_entries_and_returns_space(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keys of deleted events leave keyidx; the kept ones stay known; free pages beyond the
    reserve go back to the file system."""
    from k3watch.store import maintenance, retention

    monkeypatch.setattr(maintenance, "MIN_MERGE", 50)
    monkeypatch.setattr(retention, "COMPACT_FROM", 10)
    with open_store(tmp_path) as store:
        batches = fill(store, 30, size=40)
        db = store._db()
        assert wait_for_merge(store, 1100) >= 1100
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        store.apply_retention(RetentionPolicy({"*": 5.5 * HOUR}), T0 + 30 * HOUR)
        floor = db.execute("SELECT min(id) FROM events").fetchone()[0]
        assert db.execute("SELECT count(*) FROM keyidx WHERE id < ?", (floor,)).fetchone()[0] == 0
        assert store.unseen([batches[0][0], batches[-1][0]]) == [True, False]
        assert db.execute("PRAGMA page_count").fetchone()[0] < pages
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
        assert free <= retention.KEEP_FREE * db.execute("PRAGMA page_count").fetchone()[0]
        assert store.verify().problem is None


def test_rows_encoded_elsewhere_with_an_older_dictionary_verify_and_read_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An encoder can lag the writer by a dictionary (a worker encoded the batch while a new
    one was trained): the rows keep the dictionary they were compressed with, and the chain
    records that dictionary."""
    from k3watch.store import codec

    monkeypatch.setattr(codec, "FIRST_TRAINING", 100)
    with open_store(tmp_path) as store:
        before = store.encoder()
        fill(store, 8)
        after = store.encoder()
        assert (before.dict_id, after.dict_id) == (0, 1)
        for name, encoder, n in (("old", before, 900), ("new", after, 950)):
            events = [incoming(audit(n + i, T0 + i), T0 + i) for i in range(20)]
            rows = encoder.encode(events)
            assert store.unseen(rows) == [True] * 20
            result = store.write(Batch(name, "prod", "server-1", "audit", rows, T0))
            assert (result.stored, result.duplicates) == (20, 0)
            assert store.get_event(events[3].key) is not None
        again = store.write(Batch("again", "prod", "server-1", "audit", after.encode(events)))
        assert (again.stored, again.duplicates) == (0, 20)
    assert verify(tmp_path / "store.sqlite") is None
