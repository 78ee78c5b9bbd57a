"""Work the writer leaves to a background thread: merging the tail's key hashes into
``keyidx``, checkpoints of the WAL, and training compression dictionaries.

Each is a few long SQLite (or zstd) calls, which run without the GIL, so on a machine with two
cores they cost the ingest thread little. (Python work in a second thread would slow the
writer down: it gives up the GIL at every row it inserts, and would wait to get it back.)

A merge round copies the keys of the events up to an id (``merge_hi``) into a private table
ordered by hash, then inserts them into ``keyidx`` in ``MERGE_SLICES`` slices, each in its own
short transaction: the writer never waits long for the lock, and each slice touches a fraction
of ``keyidx``'s pages once. Progress is kept in ``meta`` so that a round interrupted by a stop
resumes when the store is opened again.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from k3watch.store import codec
from k3watch.store.sqlite_schema import connect, read_meta, set_meta
from k3watch.telemetry import Counters

if TYPE_CHECKING:
    from k3watch.store.writer import Lock, Writer

log = logging.getLogger(__name__)

MERGE_SLICES = 64
CHECKPOINT_EVERY = 0.5
MIN_MERGE = 131_072
MAX_MERGE = 524_288
_SLICE = (1 << 64) // MERGE_SLICES


class Maintenance:
    """The background thread (started by the store, stopped by ``close``)."""

    def __init__(
        self, path: Path, cache_mb: int, lock: Lock, writer: Writer, counters: Counters
    ) -> None:
        self.path = path
        self.cache_mb = cache_mb
        self.lock = lock
        self.writer = writer
        self.counters = counters
        self._wake = threading.Condition()
        self._stopping = False
        self._round: tuple[int, int] | None = None
        self._checkpointed = 0.0
        self._thread = threading.Thread(target=self._run, name="k3watch-store", daemon=True)
        self.idle = threading.Event()
        self._thread.start()

    def poke(self) -> None:
        """Something was written: see whether work is due."""
        with self._wake:
            self._wake.notify()

    def close(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join()

    def _stopped(self) -> bool:
        return self._stopping

    def _run(self) -> None:
        db = connect(self.path, readonly=False, cache_mb=self.cache_mb)
        try:
            while True:
                with self._wake:
                    if self._stopped():
                        return
                    self.idle.set()
                    self._wake.wait(timeout=CHECKPOINT_EVERY)
                    self.idle.clear()
                if self._stopped():
                    return
                try:
                    while self._step(db) and not self._stopped():
                        time.sleep(0)  # let the writer take the lock between steps
                    self._checkpoint(db)
                except Exception:
                    log.exception("store maintenance failed (tried again later)")
                    self.counters.inc("failed", reason="maintenance")
                    self._round = None
                    time.sleep(1.0)
        finally:
            self.idle.set()
            db.close()

    def _step(self, db: sqlite3.Connection) -> bool:
        """Do one piece of due work; False when nothing is due."""
        writer = self.writer
        meta = read_meta(db)
        last_id = writer.next_id - 1
        if meta["merge_hi"]:
            self._merge_slice(db, meta["merged_id"], meta["merge_hi"], meta["merge_slice"])
            return True
        if (
            last_id >= writer.next_training
            and writer.new_compressor is None
            and writer.compressor.dict_id  # the writer trains the first one itself
        ):
            self._train(db, last_id)
            return True
        pending = last_id - meta["merged_id"]
        if pending >= max(MIN_MERGE, min(MAX_MERGE, writer.events // 16)):
            with self.lock():
                db.execute("BEGIN IMMEDIATE")
                try:
                    set_meta(db, merge_hi=last_id, merge_slice=0)
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
            return True
        return False

    def _checkpoint(self, db: sqlite3.Connection) -> None:
        """Copy the WAL into the database file, here rather than in the writer's commits
        (``wal_autocheckpoint`` is off on its connection). PASSIVE: it never blocks anyone."""
        now = time.monotonic()
        if now - self._checkpointed >= CHECKPOINT_EVERY:
            self._checkpointed = now
            db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def _merge_slice(self, db: sqlite3.Connection, merged: int, high: int, k: int) -> None:
        if self._round != (merged, high):
            # the round's keys sorted by hash, in a private table (no lock, no Python loop)
            db.execute("DROP TABLE IF EXISTS temp.merging")
            db.execute(
                "CREATE TEMP TABLE merging (h INTEGER PRIMARY KEY, id INTEGER NOT NULL)"
                " WITHOUT ROWID"
            )
            db.execute(
                "INSERT OR REPLACE INTO temp.merging SELECT h, id FROM events"
                " WHERE id > ? AND id <= ?",
                (merged, high),
            )
            self._round = (merged, high)
        low = -(1 << 63) + k * _SLICE
        top = low + _SLICE - 1 if k + 1 < MERGE_SLICES else (1 << 63) - 1
        last = k + 1 >= MERGE_SLICES
        with self.lock():
            db.execute("BEGIN IMMEDIATE")
            try:
                # Retention may have deleted events since the round began: their keys would be
                # entries below the oldest event, which nothing removes until the next compaction.
                db.execute(
                    "INSERT OR REPLACE INTO keyidx (h, id)"
                    " SELECT h, id FROM temp.merging WHERE h BETWEEN ? AND ?"
                    " AND id >= (SELECT coalesce(min(id), 0) FROM events)",
                    (low, top),
                )
                if last:
                    set_meta(db, merged_id=high, merge_hi=0, merge_slice=0)
                else:
                    set_meta(db, merge_slice=k + 1)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        if last:
            self._round = None
            db.execute("DROP TABLE IF EXISTS temp.merging")
            self.writer.merged_id = high  # the writer forgets these keys at its next write
            self.counters.inc("key_merges")

    def _train(self, db: sqlite3.Connection, last_id: int) -> None:
        compressor = train_dictionary(db, self.lock, last_id)
        self.writer.next_training = codec.next_training(last_id)
        if compressor is not None:
            self.writer.new_compressor = compressor
            self.counters.inc("dictionaries")


def train_dictionary(db: sqlite3.Connection, lock: Lock, last_id: int) -> codec.Compressor | None:
    """Train a compression dictionary on the newest events up to ``last_id`` and store it."""
    rows = db.execute(
        "SELECT z, body FROM events WHERE id <= ? ORDER BY id DESC LIMIT ?",
        (last_id, codec.TRAINING_SAMPLES),
    ).fetchall()
    decompressors = codec.Decompressors()
    for dict_id, data in db.execute("SELECT id, data FROM dicts"):
        decompressors.add(int(dict_id), bytes(data))
    samples = [decompressors.decompress(int(z) >> 1, bytes(body)) for z, body in rows]
    if len(samples) < 64:
        return None
    try:
        dictionary = codec.train(samples)
    except Exception as exc:  # zstd refuses samples it cannot learn from
        log.warning("no compression dictionary trained: %s", exc)
        return None
    with lock():
        db.execute("BEGIN IMMEDIATE")
        try:
            cursor = db.execute(
                "INSERT INTO dicts (data, sha, created, samples) VALUES (?, ?, ?, ?)",
                (dictionary, hashlib.sha256(dictionary).digest(), time.time(), last_id),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    return codec.Compressor(int(cursor.lastrowid or 0), dictionary)
