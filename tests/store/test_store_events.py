"""SqliteStore: writing events, idempotence, reading them back, files."""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path

import orjson
import pytest
from tests.store.helpers import (
    T0,
    audit,
    batch,
    incoming,
    keys,
    open_store,
    wait_for_merge,
    write_many,
)

from k3watch.store import codec
from k3watch.store.base import EventQuery, IncomingEvent, field_values
from k3watch.store.codec import extract
from k3watch.store.sqlite import SqliteStore, StoreReadOnlyError


def test_events_come_back_exactly_as_written(tmp_path: Path) -> None:
    """raw, key, time, cluster, node, source and truncated are returned unchanged."""
    with open_store(tmp_path) as store:
        raws = [audit(i, T0 + i, user=f"user-{i % 3}") for i in range(150)]
        events = [incoming(r, T0 + i) for i, r in enumerate(raws)]
        events[5] = IncomingEvent(events[5].key, events[5].time, events[5].raw, None, True)
        result = store.write(batch("b1", events, cluster="c1", node="n1", source="audit"))
        assert result.stored == 150 and result.duplicates == 0 and all(result.new)
        for event in events:
            stored = store.get_event(event.key)
            assert stored is not None
            assert stored.raw == event.raw
            assert (stored.key, stored.time) == (event.key, event.time)
            assert (stored.cluster, stored.node, stored.source) == ("c1", "n1", "audit")
            assert stored.truncated == (event is events[5])


def test_body_given_is_stored_byte_for_byte(tmp_path: Path) -> None:
    """When the caller passes the JSON, that encoding (key order, spacing) is what is kept."""
    raw = audit(1, T0)
    body = b'{ "zzz": 1, ' + orjson.dumps(raw)[1:]
    raw = orjson.loads(body)
    with open_store(tmp_path) as store:
        store.write(batch("b1", [IncomingEvent("k-1", T0, raw, body)]))
        db = store._db()
        z, frame = db.execute("SELECT z, body FROM events").fetchone()
        data = store.catalog.decompressors.decompress(z >> 1, frame)
        assert data.endswith(body)
        stored = store.get_event("k-1")
        assert stored is not None and stored.raw == raw


def test_a_retried_batch_id_stores_nothing(tmp_path: Path) -> None:
    """Writing a batch id again returns all events as duplicates and no chain position."""
    with open_store(tmp_path) as store:
        events = [incoming(audit(i, T0 + i), T0 + i) for i in range(10)]
        first = store.write(batch("same", events))
        again = store.write(batch("same", events))
        assert first.stored == 10 and first.batch_seq == 1
        assert (again.stored, again.duplicates, again.batch_seq) == (0, 10, None)
        assert again.new == (False,) * 10
        assert store.stats().events == 10 and store.stats().batches == 1


def test_known_keys_in_a_new_batch_are_skipped(tmp_path: Path) -> None:
    """Events already stored under another batch id are duplicates; the new ones are stored."""
    with open_store(tmp_path) as store:
        old = [incoming(audit(i, T0 + i), T0 + i) for i in range(10)]
        store.write(batch("one", old))
        mixed = old[5:] + [incoming(audit(i, T0 + i), T0 + i) for i in range(10, 15)]
        result = store.write(batch("two", mixed))
        assert result.stored == 5 and result.duplicates == 5
        assert result.new == (False,) * 5 + (True,) * 5
        assert store.stats().events == 15


def test_duplicates_within_one_batch_are_stored_once(tmp_path: Path) -> None:
    """The first event of a key is stored; later ones in the same batch are duplicates."""
    with open_store(tmp_path) as store:
        a, b = incoming(audit(1, T0), T0), incoming(audit(2, T0 + 1), T0 + 1)
        result = store.write(batch("b", [a, b, a, a]))
        assert result.new == (True, True, False, False)
        assert (result.stored, result.duplicates) == (2, 2)
        page = store.search(EventQuery())
        assert sorted(keys(page.events)) == sorted([a.key, b.key])


def test_unseen_answers_per_key(tmp_path: Path) -> None:
    """unseen is False for stored keys, True for others, in the order asked."""
    with open_store(tmp_path) as store:
        events = [incoming(audit(i, T0 + i), T0 + i) for i in range(5)]
        store.write(batch("b", events))
        asked = [events[0].key, "nope", events[4].key, "nope-2"]
        assert store.unseen(asked) == [False, True, False, True]
        assert store.unseen([]) == []


def test_unseen_then_write_stores_the_new_events(tmp_path: Path) -> None:
    """The pipeline's order (unseen, then write with the same keys) stores exactly the new ones."""
    with open_store(tmp_path) as store:
        old = [incoming(audit(i, T0 + i), T0 + i) for i in range(4)]
        store.write(batch("a", old))
        events = old[:2] + [incoming(audit(i, T0 + i), T0 + i) for i in range(4, 8)]
        flags = store.unseen([e.key for e in events])
        result = store.write(batch("b", events))
        assert list(result.new) == flags == [False, False, True, True, True, True]


def test_keys_stay_known_after_they_are_merged_into_the_key_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keys moved from the in-memory tail to keyidx by the background merge are still known."""
    from k3watch.store import maintenance

    monkeypatch.setattr(maintenance, "MIN_MERGE", 40)
    with open_store(tmp_path) as store:
        events = write_many(store, ((audit(i, T0 + i), T0 + i) for i in range(300)), 20)
        assert wait_for_merge(store, 280) >= 280
        assert store.unseen([e.key for e in events[:50]]) == [False] * 50
        again = store.write(batch("again", [*events[:30], incoming(audit(999, T0), T0)]))
        assert (again.stored, again.duplicates) == (1, 30)
        assert store.get_event(events[3].key) is not None


def test_stored_state_survives_reopening(tmp_path: Path) -> None:
    """After close and open, keys are known, ids continue and the chain goes on."""
    store = open_store(tmp_path)
    events = write_many(store, ((audit(i, T0 + i), T0 + i) for i in range(100)), 30)
    store.close()
    store = open_store(tmp_path)
    try:
        assert store.unseen([events[0].key, "fresh"]) == [False, True]
        late = incoming(audit(500, T0 + 500), T0 + 500)
        result = store.write(batch("later", [late]))
        assert result.stored == 1 and result.batch_seq == 5
        assert keys(store.search(EventQuery(limit=1)).events) == [late.key]
        assert store.verify().problem is None
        assert store.stats().events == 101
    finally:
        store.close()


def test_a_compression_dictionary_is_trained_and_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After enough events a dictionary exists, later events use it, all events read back."""
    monkeypatch.setattr(codec, "FIRST_TRAINING", 200)
    with open_store(tmp_path) as store:
        events = write_many(store, ((audit(i, T0 + i), T0 + i) for i in range(400)), 50)
        db = store._db()
        assert db.execute("SELECT count(*) FROM dicts").fetchone()[0] == 1
        used = {z >> 1 for (z,) in db.execute("SELECT DISTINCT z FROM events")}
        assert used == {0, 1}
        for event in events[::37]:
            stored = store.get_event(event.key)
            assert stored is not None and stored.raw == event.raw
        assert store.verify().problem is None


@pytest.mark.parametrize(
    "raw",
    [
        {"message": "kernel: oom-killer invoked", "source": "kernel"},
        {"auditID": "x", "objectRef": None, "user": "not-a-dict", "sourceIPs": "10.0.0.1"},
        {"auditID": "y", "stage": 7, "responseStatus": {"code": "403"}, "verb": ["get"]},
        {"auditID": "z", "requestURI": "/api/" + "x" * 200_000, "user": {"username": 5}},
        {"auditID": "w", "annotations": ["a"], "objectRef": {"name": {"a": 1}}, "requestURI": None},
        {"auditID": "v", "responseStatus": {"code": 2**63}, "user": {"username": "é\u2028\x00"}},
        {},
    ],
)
def test_events_with_missing_or_odd_fields_are_stored(
    tmp_path: Path, raw: dict[str, object]
) -> None:
    """Whatever the fields hold, writing, searching and reading back do not raise."""
    with open_store(tmp_path) as store:
        event = IncomingEvent("odd-key", T0, raw, None)
        assert store.write(batch("b", [event])).stored == 1
        stored = store.get_event("odd-key")
        assert stored is not None and stored.raw == raw
        assert keys(store.search(EventQuery(text="oom")).events) in ([], ["odd-key"])
        store.search(EventQuery(filters={"user": ["5"], "code": ["403"]}))


def test_integers_beyond_64_bits_are_kept_as_numbers(tmp_path: Path) -> None:
    """A value JSON encoders refuse (an integer over 64 bits) is stored; it reads back as a
    float, the way the server's JSON parser reads such numbers."""
    with open_store(tmp_path) as store:
        store.write(batch("b", [IncomingEvent("big", T0, {"n": 10**30, "m": "x"}, None)]))
        stored = store.get_event("big")
        assert stored is not None and stored.raw == {"n": 1e30, "m": "x"}


def test_odd_times_are_stored_as_zero(tmp_path: Path) -> None:
    """NaN, infinite and absurd times do not break ordering or raise."""
    with open_store(tmp_path) as store:
        events = [
            IncomingEvent(f"k{i}", t, {"message": str(i)}, None)
            for i, t in enumerate([math.nan, math.inf, -math.inf, 1e300, T0])
        ]
        assert store.write(batch("b", events)).stored == 5
        times = {e.key: e.time for e in store.search(EventQuery()).events}
        assert times == {"k0": 0.0, "k1": 0.0, "k2": 0.0, "k3": 0.0, "k4": T0}


def test_extract_reads_what_field_values_reads() -> None:
    """The writer's fast field reader agrees with base.field_values on normal and odd events."""
    samples = [
        audit(1, T0),
        audit(2, T0, resource=None, namespace=None, uri=""),
        {"message": "m", "user": {"username": None}, "sourceIPs": []},
        {"requestURI": None, "message": "fallback", "responseStatus": {"code": True}},
        {"objectRef": {"resource": 1, "namespace": "ns", "name": None}, "stage": None},
    ]
    names = ("user", "verb", "resource", "namespace", "name", "source_ip", "decision", "stage")
    for raw in samples:
        values = field_values(raw)
        fast = extract(raw)
        assert fast[:8] == tuple(values[n] for n in names)
        assert fast[8] == values["text"]
        assert fast[9] == (values["code"] or 0)


def test_the_files_are_private(tmp_path: Path) -> None:
    """The database and its -wal and -shm files are created with mode 0600 whatever the umask."""
    old = os.umask(0)
    try:
        with open_store(tmp_path) as store:
            store.write(batch("b", [incoming(audit(1, T0), T0)]))
            for suffix in ("", "-wal", "-shm"):
                path = Path(f"{store.path}{suffix}")
                assert stat.S_IMODE(path.stat().st_mode) == 0o600, suffix
    finally:
        os.umask(old)


def test_an_existing_world_readable_file_is_made_private(tmp_path: Path) -> None:
    """Opening a store whose file is 0644 sets it to 0600."""
    path = tmp_path / "store.sqlite"
    SqliteStore(path).close()
    os.chmod(path, 0o644)
    SqliteStore(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_read_only_store_refuses_changes(tmp_path: Path) -> None:
    """open_readonly reads, and refuses write, alerts changes, silences and retention."""
    with open_store(tmp_path) as store:
        store.write(batch("b", [incoming(audit(1, T0), T0)]))
        reader = SqliteStore.open_readonly(store.path)
        try:
            assert len(reader.search(EventQuery()).events) == 1
            with pytest.raises(StoreReadOnlyError):
                reader.write(batch("c", [incoming(audit(2, T0), T0)]))
            with pytest.raises(StoreReadOnlyError):
                reader.unseen(["x"])
        finally:
            reader.close()


def test_open_readonly_of_a_missing_file_fails(tmp_path: Path) -> None:
    """A read-only open never creates a store."""
    with pytest.raises(FileNotFoundError):
        SqliteStore.open_readonly(tmp_path / "missing.sqlite")
    assert not (tmp_path / "missing.sqlite").exists()


def test_stats_count_events_batches_and_bounds(tmp_path: Path) -> None:
    """stats: events, batches, alerts, bytes, oldest and newest event time."""
    with open_store(tmp_path) as store:
        empty = store.stats()
        assert (empty.events, empty.batches, empty.oldest, empty.newest) == (0, 0, None, None)
        write_many(store, ((audit(i, T0 + 10 * i), T0 + 10 * i) for i in range(30)), 10)
        stats = store.stats()
        assert (stats.events, stats.batches, stats.alerts) == (30, 3, 0)
        assert (stats.oldest, stats.newest) == (T0, T0 + 290)
        assert stats.bytes > 0


def test_a_batch_larger_than_a_segment(tmp_path: Path) -> None:
    """One batch spanning several segments is stored, sealed and searchable like any other."""
    with open_store(tmp_path) as store:
        events = [incoming(audit(i, T0 + i, user=f"u{i % 3}"), T0 + i) for i in range(300)]
        assert store.write(batch("big", events)).stored == 300
        sealed = store._db().execute("SELECT value FROM meta WHERE key = 'sealed'").fetchone()[0]
        assert sealed == 300 // 64
        page = store.search(EventQuery(filters={"user": ["u1"]}, limit=1000))
        assert keys(page.events) == [
            e.key for e in reversed(events) if e.raw["user"]["username"] == "u1"
        ]
        assert store.verify().problem is None
