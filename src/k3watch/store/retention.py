"""Retention: delete whole batches by age (per source) and by total size, in short
transactions, keeping the batches' chain rows (``pruned = 1``) so that the chain still verifies.

Each step takes the store's write lock for one chunk of at most ``CHUNK_EVENTS`` events, so
ingest waits at most one chunk. After the deletions, the postings of sealed segments that lost
events are rebuilt, the time bounds of the blocks that lost events are recomputed, stale
entries of ``keyidx`` are dropped in hash slices, and free pages are returned to the file
system (``auto_vacuum = INCREMENTAL``) a few thousand at a time.
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import orjson

from k3watch.store import postings
from k3watch.store.base import RetentionPolicy, RetentionResult
from k3watch.store.sqlite_schema import (
    MINUTE_SQL,
    Layout,
    add_meta,
    read_meta,
    set_meta,
    used_bytes,
)

CHUNK_EVENTS = 4096
VACUUM_PAGES = 2048
KEEP_FREE = 0.05
KEY_SLICES = 64
COMPACT_FROM = 10_000
"""Stale ``keyidx`` entries are deleted once there are this many (or an eighth of the events)."""
_HOUR_SQL = "CAST(t / 3600.0 AS INTEGER) - (t / 3600.0 < CAST(t / 3600.0 AS INTEGER))"

Lock = Callable[[], AbstractContextManager[object]]


@dataclass(slots=True)
class _Pass:
    layout: Layout
    deleted: Callable[[], None]
    events: int = 0
    batches: int = 0
    blocks: set[int] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class _Candidate:
    seq: int
    first: int | None
    last: int | None
    events: int


def apply(
    db: sqlite3.Connection,
    lock: Lock,
    policy: RetentionPolicy,
    now: float,
    layout: Layout,
    deleted: Callable[[], None],
) -> RetentionResult:
    """Apply ``policy``; ``deleted`` is called after each transaction that deleted events."""
    done = _Pass(layout, deleted)
    _expire_ingest_errors(db, lock, policy, now)
    expired = _expired(db, policy, now)
    _delete(db, lock, expired, done)
    if policy.max_bytes is not None:
        _shrink(db, lock, policy.max_bytes, done)
    if done.batches:
        _repair(db, lock, done)
        _compact_keys(db, lock)
    _vacuum(db, lock)
    after = used_bytes(db)
    with lock():
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(
                "INSERT INTO retention_log (time, policy, events_deleted, batches_deleted,"
                " bytes_after) VALUES (?, ?, ?, ?, ?)",
                (
                    now,
                    orjson.dumps(
                        {"max_age": dict(policy.max_age), "max_bytes": policy.max_bytes}
                    ).decode(),
                    done.events,
                    done.batches,
                    after,
                ),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    return RetentionResult(done.events, done.batches, after)


def _expired(db: sqlite3.Connection, policy: RetentionPolicy, now: float) -> list[_Candidate]:
    if not policy.max_age:
        return []
    default = policy.max_age.get("*")
    out: list[_Candidate] = []
    for seq, source, first, last, events, max_t, received in db.execute(
        "SELECT seq, source, first_rowid, last_rowid, events, max_t, received FROM batches"
        " WHERE pruned = 0 ORDER BY seq"
    ):
        age = policy.max_age.get(source, default)
        newest = received if max_t is None else max_t
        if age is not None and newest < now - age:
            out.append(_Candidate(seq, first, last, events))
    return out


def _expire_ingest_errors(
    db: sqlite3.Connection, lock: Lock, policy: RetentionPolicy, now: float
) -> None:
    """Drop the ingest error counts of hours older than their source's maximum age. (``seen``
    is kept: a value first seen before retention removed its events is not new again.)"""
    if not policy.max_age:
        return
    default = policy.max_age.get("*")
    named = [(s, age) for s, age in policy.max_age.items() if s != "*"]
    with lock():
        db.execute("BEGIN IMMEDIATE")
        try:
            for source, age in named:
                db.execute(
                    "DELETE FROM ingest_errors WHERE source = ? AND hour < ?",
                    (source, math.floor((now - age) / 3600.0)),
                )
            if default is not None:
                marks = ",".join("?" * len(named))
                db.execute(
                    f"DELETE FROM ingest_errors WHERE source NOT IN ({marks}) AND hour < ?",
                    (*(s for s, _ in named), math.floor((now - default) / 3600.0)),
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise


def _shrink(db: sqlite3.Connection, lock: Lock, max_bytes: int, done: _Pass) -> None:
    """Delete the oldest batches until the file uses at most ``max_bytes``."""
    for _ in range(1000):
        used = used_bytes(db)
        if used <= max_bytes:
            return
        events = read_meta(db)["events"]
        if events <= 0:
            return
        per_event = used / events
        wanted = max(1, math.ceil((used - max_bytes) / per_event * 1.05))
        chosen: list[_Candidate] = []
        total = 0
        for seq, first, last, count in db.execute(
            "SELECT seq, first_rowid, last_rowid, events FROM batches WHERE pruned = 0 ORDER BY seq"
        ):
            chosen.append(_Candidate(seq, first, last, count))
            total += count
            if total >= wanted:
                break
        if not chosen:
            return
        _delete(db, lock, chosen, done)
        _repair(db, lock, done)
        _compact_keys(db, lock)
        _vacuum(db, lock)


def _delete(db: sqlite3.Connection, lock: Lock, batches: list[_Candidate], done: _Pass) -> None:
    chunk: list[_Candidate] = []
    size = 0
    for batch in batches:
        chunk.append(batch)
        size += batch.events
        if size >= CHUNK_EVENTS:
            _delete_chunk(db, lock, chunk, done)
            chunk, size = [], 0
    if chunk:
        _delete_chunk(db, lock, chunk, done)


def _delete_chunk(db: sqlite3.Connection, lock: Lock, chunk: list[_Candidate], done: _Pass) -> None:
    with lock():
        db.execute("BEGIN IMMEDIATE")
        try:
            deleted = 0
            for batch in chunk:
                if batch.first is None or batch.last is None:
                    continue
                bounds = (batch.first, batch.last)
                rollup = db.execute(
                    f"SELECT count(*), {_HOUR_SQL}, kind FROM events"
                    " WHERE id BETWEEN ? AND ? GROUP BY 2, 3",
                    bounds,
                ).fetchall()
                db.executemany("UPDATE rollup SET n = n - ? WHERE hour = ? AND kind = ?", rollup)
                activity = db.execute(
                    f"SELECT count(*), {MINUTE_SQL}, k.org FROM events e JOIN kinds k"
                    " ON k.id = e.kind WHERE e.id BETWEEN ? AND ? GROUP BY 2, 3",
                    bounds,
                ).fetchall()
                db.executemany(
                    "UPDATE activity SET n = n - ? WHERE minute = ? AND org = ?", activity
                )
                deleted += db.execute(
                    "DELETE FROM events WHERE id BETWEEN ? AND ?", bounds
                ).rowcount
                low, high = done.layout.block_of(batch.first), done.layout.block_of(batch.last)
                done.blocks.update(range(low, high + 1))
            db.execute("DELETE FROM rollup WHERE n <= 0")
            db.execute("DELETE FROM activity WHERE n <= 0")
            db.executemany("UPDATE batches SET pruned = 1 WHERE seq = ?", [(b.seq,) for b in chunk])
            add_meta(db, "events", -deleted)
            add_meta(db, "stale_keys", deleted)
            add_meta(db, "gen", 1)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    done.events += deleted
    done.batches += len(chunk)
    done.deleted()


def _repair(db: sqlite3.Connection, lock: Lock, done: _Pass) -> None:
    """Rebuild what deletions made stale: block bounds, postings of sealed segments (grouped
    outside the lock: nothing but retention changes a sealed segment)."""
    blocks = sorted(done.blocks)
    done.blocks.clear()
    for start in range(0, len(blocks), 64):
        with lock():
            db.execute("BEGIN IMMEDIATE")
            try:
                postings.block_bounds(db, blocks[start : start + 64], done.layout)
                add_meta(db, "gen", 1)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
    for seg in sorted({b >> done.layout.shift for b in blocks}):
        if seg >= read_meta(db)["sealed"]:
            continue  # the writer builds it when it is full, from the rows left
        builder = postings.SegmentBuilder(seg, done.layout)
        db.execute("BEGIN")
        try:
            builder.load(db)
        finally:
            db.execute("COMMIT")
        rows = builder.encode()
        with lock():
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("DELETE FROM postings WHERE seg = ?", (seg,))
                db.executemany(
                    "INSERT INTO postings (f, v, seg, n, offsets) VALUES (?, ?, ?, ?, ?)", rows
                )
                add_meta(db, "gen", 1)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise


def _compact_keys(db: sqlite3.Connection, lock: Lock) -> None:
    """Drop ``keyidx`` entries below the oldest stored event, one hash slice at a time."""
    meta = read_meta(db)
    if meta["stale_keys"] < max(COMPACT_FROM, meta["events"] // 8):
        return
    floor = db.execute("SELECT min(id) FROM events").fetchone()[0]
    if floor is None:
        floor = 1 << 62
    width = (1 << 64) // KEY_SLICES
    for k in range(KEY_SLICES):
        low = -(1 << 63) + k * width
        with lock():
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute(
                    "DELETE FROM keyidx WHERE h BETWEEN ? AND ? AND id < ?",
                    (low, low + width - 1, floor),
                )
                if k == KEY_SLICES - 1:
                    set_meta(db, stale_keys=0)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise


def _vacuum(db: sqlite3.Connection, lock: Lock) -> None:
    """Give free pages back to the file system, a few thousand per transaction, when they are
    more than ``KEEP_FREE`` of the file (fewer are left for new events to reuse)."""
    for _ in range(100_000):
        free = int(db.execute("PRAGMA freelist_count").fetchone()[0])
        pages = int(db.execute("PRAGMA page_count").fetchone()[0])
        if free == 0 or free <= KEEP_FREE * pages:
            return
        with lock():
            db.execute(f"PRAGMA incremental_vacuum({min(free, VACUUM_PAGES)})").fetchall()
        time.sleep(0)  # let the writer in between steps
