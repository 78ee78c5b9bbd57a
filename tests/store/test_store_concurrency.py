"""SqliteStore: readers in threads and in another process while the writer writes."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from tests.store.helpers import T0, audit, batch, incoming, open_store

from k3watch.store.base import AggregateQuery, AlertChange, AlertQuery, EventQuery, RetentionPolicy
from k3watch.store.sqlite import SqliteStore

ROOT = Path(__file__).resolve().parents[2]


def _write(store: SqliteStore, batches: int, start: int = 0, per: int = 25) -> None:
    for b in range(start, start + batches):
        events = [
            incoming(audit(b * per + i, T0 + b * per + i, user=f"u{i % 5}"), T0 + b * per + i)
            for i in range(per)
        ]
        store.write(batch(f"b{b}", events))


def test_readers_in_threads_while_writing(tmp_path: Path) -> None:
    """Searches, lookups, aggregations and stats from four threads never fail, and each sees
    a consistent, growing store."""
    with open_store(tmp_path) as store:
        _write(store, 4)
        stop = threading.Event()
        errors: list[BaseException] = []
        seen: dict[int, list[int]] = {}

        def reader(number: int) -> None:
            counts: list[int] = []
            try:
                while not stop.is_set():
                    page = store.search(EventQuery(filters={"user": ["u1", "u2"]}, limit=50))
                    assert all(e.raw["user"]["username"] in {"u1", "u2"} for e in page.events)
                    total = store.stats().events
                    counts.append(total)
                    buckets = store.aggregate(AggregateQuery(by="user"))
                    assert sum(b.count for b in buckets) >= total  # a later snapshot, not smaller
                    if page.events:
                        assert store.get_event(page.events[-1].key) is not None
            except BaseException as exc:
                errors.append(exc)
            seen[number] = counts

        threads = [threading.Thread(target=reader, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        _write(store, 30, start=4)
        stop.set()
        for thread in threads:
            thread.join()
        assert not errors
        for counts in seen.values():
            assert counts and counts == sorted(counts)
        assert store.stats().events == 34 * 25


def test_alert_changes_and_silences_from_threads_while_writing(tmp_path: Path) -> None:
    """Short write transactions from other threads interleave with ingest."""
    from tests.store.test_store_alerts import record

    from k3watch.store.base import Matcher, Silence

    with open_store(tmp_path) as store:
        store.write(batch("a", [incoming(audit(9999, T0), T0)]), [record()])
        alert_id = store.alerts(AlertQuery()).alerts[0].id
        errors: list[BaseException] = []

        def triage() -> None:
            try:
                for n in range(30):
                    store.change_alert(alert_id, AlertChange("ann", "note", f"n{n}"))
                    store.add_silence(Silence(f"s{n}", (Matcher("a", "b"),), T0, T0 + n, "ann", ""))
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=triage)
        thread.start()
        _write(store, 20)
        thread.join()
        assert not errors
        alert = store.get_alert(alert_id)
        assert alert is not None and len(alert.history) == 31
        assert len(store.silences()) == 30
        assert store.verify().problem is None


_READER = """
import json, sys
from pathlib import Path
from k3watch.store.base import EventQuery
from k3watch.store.sqlite import SqliteStore

store = SqliteStore.open_readonly(Path(sys.argv[1]))
out = []
for _ in range(int(sys.argv[2])):
    page = store.search(EventQuery(filters={"user": ["u3"]}, limit=10))
    out.append({"events": store.stats().events, "page": len(page.events)})
report = store.verify()
store.close()
print(json.dumps({"rounds": out, "problem": report.problem is not None, "batches": report.batches}))
"""


def test_open_readonly_from_another_process_while_writing(tmp_path: Path) -> None:
    """Another process (``k3watch verify`` while the server runs) reads and verifies a store
    the writer keeps writing to."""
    with open_store(tmp_path) as store:
        _write(store, 10)
        done = threading.Event()

        def keep_writing() -> None:
            n = 10
            while not done.is_set() and n < 200:
                _write(store, 1, start=n)
                n += 1

        thread = threading.Thread(target=keep_writing)
        thread.start()
        try:
            result = subprocess.run(
                [sys.executable, "-c", _READER, str(store.path), "20"],
                capture_output=True,
                text=True,
                timeout=120,
                cwd=ROOT,
                check=False,
            )
        finally:
            done.set()
            thread.join()
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert report["problem"] is False and report["batches"] >= 10
        counts = [r["events"] for r in report["rounds"]]
        assert counts == sorted(counts) and counts[0] >= 250
        assert all(r["page"] == 10 for r in report["rounds"])


def test_a_read_only_process_cannot_write(tmp_path: Path) -> None:
    """The read-only connection is refused writes by SQLite itself."""
    with open_store(tmp_path) as store:
        _write(store, 1)
    reader = SqliteStore.open_readonly(tmp_path / "store.sqlite")
    try:
        with pytest.raises(sqlite3.OperationalError):
            reader._db().execute("DELETE FROM events")
    finally:
        reader.close()


def test_a_closed_store_refuses_calls(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    _write(store, 1)
    store.close()
    store.close()  # twice is fine
    with pytest.raises(sqlite3.ProgrammingError):
        store.search(EventQuery())
    with pytest.raises(sqlite3.ProgrammingError):
        store.write(batch("x", [incoming(audit(1, T0), T0)]))


def test_retention_from_a_thread_while_readers_search(tmp_path: Path) -> None:
    with open_store(tmp_path) as store:
        _write(store, 20)
        errors: list[BaseException] = []
        stop = threading.Event()

        def reader() -> None:
            try:
                while not stop.is_set():
                    store.search(EventQuery(filters={"user": ["u1"]}, limit=20))
                    store.aggregate(AggregateQuery(bucket=60))
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=reader)
        thread.start()
        store.apply_retention(RetentionPolicy({"*": 100}), T0 + 20 * 25)
        stop.set()
        thread.join()
        assert not errors
        assert store.stats().events == 4 * 25
        assert store.verify().problem is None
