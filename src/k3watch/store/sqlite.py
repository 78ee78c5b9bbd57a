"""The embedded SQLite store (``Store`` protocol): events, alerts, silences in one file.

```python
store = SqliteStore(data_dir / "k3watch.sqlite")
store.write(batch, alerts)                 # from the one ingest thread
store.search(EventQuery(text="exec"))      # from any thread
SqliteStore.open_readonly(path).verify()   # from another process, while the server runs
```

The file and its ``-wal``/``-shm`` companions are created with mode 0600. The database runs
in WAL mode with ``synchronous = NORMAL``: a power failure can lose the last transactions
(never corrupt the file); a crash of the process loses nothing that was committed.

``write`` and ``unseen`` use the writer's connection; every other method uses a connection of
the calling thread (readers never block the writer, nor each other). Other changes (alerts,
silences, retention) take the same in-process lock as ``write`` for one short transaction at a
time. Layout and measurements: ``docs/store.md``.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import cast

from k3watch.store import alerts_db, chain, codec, retention, rollups
from k3watch.store import query as queries
from k3watch.store.base import (
    ActivityGap,
    AggregateQuery,
    AlertChange,
    AlertPage,
    AlertQuery,
    AlertRecord,
    AlertTally,
    Batch,
    Bucket,
    ChainReport,
    Encoded,
    EventPage,
    EventQuery,
    IngestErrors,
    RetentionPolicy,
    RetentionResult,
    RuleHits,
    SeenValue,
    Silence,
    StoredAlert,
    StoredEvent,
    StoreStats,
    WriteResult,
)
from k3watch.store.catalog import Catalog
from k3watch.store.maintenance import Maintenance
from k3watch.store.sqlite_schema import (
    Layout,
    check_format,
    connect,
    create_private_file,
    initialize,
    read_layout,
    read_meta,
    used_bytes,
)
from k3watch.store.writer import Writer
from k3watch.telemetry import Counters

__all__ = ["SqliteStore", "StoreReadOnlyError"]

PAGE_SIZE = 4096


class StoreReadOnlyError(RuntimeError):
    """A change was asked of a store opened read-only."""


class SqliteStore:
    """Events, alerts and silences in one SQLite file (see the module docstring)."""

    def __init__(
        self,
        path: Path,
        *,
        counters: Counters | None = None,
        cache_mb: int = 64,
        _readonly: bool = False,
        _layout: Layout | None = None,
    ) -> None:
        self.path = Path(path)
        self.counters = counters if counters is not None else Counters("store")
        self.readonly = _readonly
        self._cache_mb = cache_mb
        self._lock = threading.Lock()  # one write transaction at a time in this process
        self._writing = threading.Lock()  # one caller of write() / unseen() at a time
        self._local = threading.local()
        self._connections: weakref.WeakValueDictionary[int, _Connection] = (
            weakref.WeakValueDictionary()
        )
        self._closed = False
        self._writer: Writer | None = None
        self._maintenance: Maintenance | None = None
        if _readonly:
            check_format(self._db())
            self.layout = read_layout(self._db())
            self.catalog = Catalog(self.layout)
            return
        create_private_file(self.path)
        db = connect(self.path, readonly=False, cache_mb=cache_mb)
        try:
            initialize(db, PAGE_SIZE, _layout or Layout())
            db.execute("PRAGMA wal_autocheckpoint = 0")  # the maintenance thread checkpoints
            self.layout = read_layout(db)
            self.catalog = Catalog(self.layout)
            self._writer = Writer(db, self.counters, self._hold, self.layout)
        except BaseException:
            db.close()
            raise
        self._maintenance = Maintenance(
            self.path, cache_mb, self._hold, self._writer, self.counters
        )
        create_private_file(self.path)  # -wal and -shm now exist

    @classmethod
    def open_readonly(cls, path: Path, *, cache_mb: int = 64) -> SqliteStore:
        """Open a store another process may be writing to, for reading (search, verify)."""
        if not Path(path).exists():
            raise FileNotFoundError(path)
        return cls(path, cache_mb=cache_mb, _readonly=True)

    # --- connections ---

    def _hold(self) -> threading.Lock:
        return self._lock

    def _db(self) -> sqlite3.Connection:
        """The calling thread's connection."""
        if self._closed:
            raise sqlite3.ProgrammingError("the store is closed")
        holder: _Connection | None = getattr(self._local, "db", None)
        if holder is None:
            db = connect(self.path, readonly=self.readonly, cache_mb=self._cache_mb)
            holder = self._local.db = _Connection(db)
            self._connections[id(holder)] = holder
        return holder.db

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every statement sees the same snapshot."""
        db = self._db()
        db.execute("BEGIN")
        try:
            yield db
        finally:
            db.execute("COMMIT")

    @contextmanager
    def _change(self) -> Iterator[sqlite3.Connection]:
        """A short write transaction on the calling thread's connection."""
        if self.readonly:
            raise StoreReadOnlyError(f"{self.path} is open read-only")
        db = self._db()
        with self._lock:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def _writer_or_fail(self) -> Writer:
        if self._writer is None:
            raise StoreReadOnlyError(f"{self.path} is open read-only")
        if self._closed:
            raise sqlite3.ProgrammingError("the store is closed")
        return self._writer

    # --- events ---

    def unseen(self, events: Sequence[str] | Encoded) -> list[bool]:
        writer = self._writer_or_fail()
        with self._writing:
            return writer.unseen(cast(Sequence[str] | codec.Rows, events))

    def encoder(self) -> codec.RowEncoder:
        return codec.RowEncoder(str(self.path), self._writer_or_fail().compressor.dict_id)

    def write(self, batch: Batch, alerts: Sequence[AlertRecord] = ()) -> WriteResult:
        writer = self._writer_or_fail()
        with self._writing:
            result = writer.write(batch, alerts, time.time())
        if self._maintenance is not None:
            self._maintenance.poke()
        self.counters.inc("stored", result.stored)
        self.counters.inc("duplicates", result.duplicates)
        return result

    def search(self, query: EventQuery) -> EventPage:
        with self._read() as db:
            return queries.search(db, self.catalog, query)

    def get_event(self, key: str) -> StoredEvent | None:
        h = codec.key_hash(key)
        with self._read() as db:
            row = db.execute("SELECT id FROM keyidx WHERE h = ?", (h,)).fetchone()
            ids = [int(row[0])] if row else []
            merged = read_meta(db)["merged_id"]
            ids += [
                int(i)
                for (i,) in db.execute("SELECT id FROM events WHERE id > ? AND h = ?", (merged, h))
            ]
            for event in queries.fetch(db, self.catalog, ids):
                if event.key == key:
                    return event
        return None

    def aggregate(self, query: AggregateQuery) -> list[Bucket]:
        with self._read() as db:
            return queries.aggregate(db, self.catalog, query)

    # --- alerts and silences ---

    def alerts(self, query: AlertQuery) -> AlertPage:
        with self._read() as db:
            return alerts_db.query(db, query)

    def get_alert(self, alert_id: int) -> StoredAlert | None:
        with self._read() as db:
            return alerts_db.get(db, alert_id)

    def change_alert(self, alert_id: int, change: AlertChange) -> StoredAlert:
        with self._change() as db:
            alerts_db.change(db, alert_id, change, time.time())
        alert = self.get_alert(alert_id)
        if alert is None:  # deleted meanwhile
            raise KeyError(alert_id)
        return alert

    def add_alerts(self, alerts: Sequence[AlertRecord]) -> None:
        with self._change() as db:
            alerts_db.merge(db, alerts, time.time())

    def alert_counts(self, by: str, start: float | None = None) -> dict[str, int]:
        with self._read() as db:
            return alerts_db.counts(db, by, start)

    def rule_hits(self, start: float | None = None) -> list[RuleHits]:
        with self._read() as db:
            return alerts_db.rule_hits(db, start)

    # --- review roll-ups ---

    def alert_tallies(self, start: float, end: float) -> list[AlertTally]:
        with self._read() as db:
            return rollups.alert_tallies(db, start, end)

    def first_seen(
        self, field: str, start: float, end: float, limit: int = 1000
    ) -> tuple[list[SeenValue], int]:
        with self._read() as db:
            return rollups.first_seen(db, field, start, end, limit)

    def activity_gaps(
        self, start: float, end: float, min_gap: float, lookback: float = 0.0
    ) -> list[ActivityGap]:
        with self._read() as db:
            return rollups.activity_gaps(db, start, end, min_gap, lookback)

    def add_ingest_errors(self, errors: Sequence[IngestErrors]) -> None:
        if errors:
            with self._change() as db:
                rollups.add_ingest_errors(db, errors)

    def ingest_errors(self, start: float, end: float) -> list[IngestErrors]:
        with self._read() as db:
            return rollups.ingest_errors(db, start, end)

    def add_silence(self, silence: Silence) -> Silence:
        with self._change() as db:
            return alerts_db.add_silence(db, silence, time.time())

    def silences(self, *, active_at: float | None = None) -> list[Silence]:
        with self._read() as db:
            return alerts_db.silences(db, active_at)

    def expire_silence(self, silence_id: str, at: float) -> Silence:
        with self._change() as db:
            found = alerts_db.get_silence(db, silence_id)
            if found is None:
                raise KeyError(silence_id)
            db.execute("UPDATE silences SET ends = min(ends, ?) WHERE id = ?", (at, silence_id))
            expired = alerts_db.get_silence(db, silence_id)
        assert expired is not None
        return expired

    # --- maintenance ---

    def apply_retention(self, policy: RetentionPolicy, now: float) -> RetentionResult:
        if self.readonly:
            raise StoreReadOnlyError(f"{self.path} is open read-only")
        writer = self._writer_or_fail()

        def deleted() -> None:
            writer.stale = True  # the writer rereads its state before it uses it again

        try:
            result = retention.apply(self._db(), self._hold, policy, now, self.layout, deleted)
        finally:
            deleted()
        self.counters.inc("retention_deleted", result.events_deleted)
        return result

    def verify(self) -> ChainReport:
        return chain.verify(self._db())

    def stats(self) -> StoreStats:
        with self._read() as db:
            meta = read_meta(db)
            alerts = db.execute("SELECT count(*) FROM alerts").fetchone()[0]
            oldest, newest = db.execute("SELECT min(min_t), max(max_t) FROM blocks").fetchone()
            batches = db.execute("SELECT count(*) FROM batches WHERE pruned = 0").fetchone()[0]
            size = used_bytes(db)
        return StoreStats(meta["events"], int(alerts), size, oldest, newest, int(batches))

    def checkpoint(self) -> None:
        """Copy the WAL into the file and truncate it (for measurements and backups)."""
        self._db().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    def close(self) -> None:
        if self._closed:
            return
        if self._maintenance is not None:
            self._maintenance.close()
        with self._writing, self._lock:
            self._closed = True
            if self._writer is not None:
                with suppress(sqlite3.Error):
                    self._writer.db.execute("PRAGMA optimize")
                self._writer.db.close()
            for holder in list(self._connections.values()):
                holder.db.close()
            self._connections.clear()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Connection:
    """A thread's connection, closed when the thread (and its ``threading.local``) ends."""

    __slots__ = ("__weakref__", "db")

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __del__(self) -> None:
        with suppress(sqlite3.Error):
            self.db.close()
