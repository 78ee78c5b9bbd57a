"""The write path: idempotent batches, dictionary encoding, compression, the hash chain, and
the segments' postings.

Only the writer inserts events, strings, origins and kinds, so it keeps their state in memory:
the next id, the chain head, caches of ids, the field columns of the segment being filled, and
the key hashes of the *tail* (events whose keys are not merged into ``keyidx`` yet; the
maintenance thread merges them). Nothing is indexed per row: a unique index on a random hash,
or on a high-cardinality field, touches one page per event, and each touched page costs a WAL
write at commit. A batch is prepared (dedup, field extraction, compression, digest) without
the store's lock, then inserted in one short transaction; per-event work is done column by
column with C-level builtins.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import time
from array import array
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from math import fsum, isfinite
from operator import itemgetter
from typing import Any, cast

import orjson

from k3watch.store import alerts_db, codec, postings
from k3watch.store.base import AlertRecord, Batch, IncomingEvent, WriteResult
from k3watch.store.chain import GENESIS, batch_digest, chain_hash, vocab_digest
from k3watch.store.codec import key_hash
from k3watch.store.maintenance import train_dictionary
from k3watch.store.sqlite_schema import FIELD_NUMBER, Layout, add_meta, read_meta, set_meta
from k3watch.store.vocab import Added, Vocabulary
from k3watch.telemetry import Counters

log = logging.getLogger(__name__)

MAX_TIME = 1e11
"""Event times beyond ±this (about the year 5000), and NaN, are stored as 0."""
_CHUNK = 1000

Lock = Callable[[], AbstractContextManager[object]]


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A batch ready to insert."""

    columns: list[list[Any]]
    frames: list[bytes]
    added: Added
    row: tuple[Any, ...]
    """The batch's ``batches`` row."""
    seen: list[tuple[int, int, float, float, int]]
    """``seen`` rows of the batch: field, value, first and last time, events."""
    activity: list[tuple[int, int, int]]
    """``activity`` rows of the batch: minute, origin, events."""


class Writer:
    """Owns the write connection and the writer's state; used from one thread."""

    def __init__(
        self, db: sqlite3.Connection, counters: Counters, lock: Lock, layout: Layout
    ) -> None:
        self.db = db
        self.layout = layout
        self.counters = counters
        self.lock = lock
        self.vocab = Vocabulary(db)
        self.unseen_cache: dict[str, tuple[int, bool]] = {}
        self.builders: dict[int, postings.SegmentBuilder] = {}
        self.stale = False
        """Set by another thread (retention) when the writer must reread its state."""
        self.merged_id = 0
        """Keys of ids up to this are in ``keyidx`` (set by the maintenance thread)."""
        self.new_compressor: codec.Compressor | None = None
        """A compressor with a newer dictionary (set by the maintenance thread)."""
        self.dict_shas: dict[int, bytes] = {}
        self.load()

    # --- state ---

    def load(self) -> None:
        """(Re)read the writer's state from the file."""
        self.stale = False  # first: a retention pass running meanwhile sets it again
        db = self.db
        meta = read_meta(db)
        last_event = db.execute("SELECT max(id) FROM events").fetchone()[0] or 0
        last_batch = db.execute("SELECT max(last_rowid) FROM batches").fetchone()[0] or 0
        self.next_id = max(last_event, last_batch, meta["merged_id"], meta["merge_hi"]) + 1
        head = db.execute("SELECT seq, hash FROM batches ORDER BY seq DESC LIMIT 1").fetchone()
        self.seq, self.head = (int(head[0]), bytes(head[1])) if head else (0, GENESIS)
        self.vocab.load()
        row = db.execute("SELECT id, data, samples FROM dicts ORDER BY id DESC LIMIT 1").fetchone()
        if row is None:
            self.compressor = codec.Compressor(0, None)
            self.next_training = codec.FIRST_TRAINING
        else:
            self.compressor = codec.Compressor(int(row[0]), bytes(row[1]))
            self.next_training = codec.next_training(int(row[2]))
        self.new_compressor = None
        self.merged_id = meta["merged_id"]
        self.events = meta["events"]
        tail = db.execute(
            "SELECT h, id FROM events WHERE id > ? ORDER BY id", (self.merged_id,)
        ).fetchall()
        self.tail_h = array("q", map(itemgetter(0), tail))
        self.tail_ids = array("q", map(itemgetter(1), tail))
        self.tail = set(self.tail_h)
        self.pruned_to = self.merged_id
        self.unseen_cache = {}
        self.sealed = meta["sealed"]
        self.builders = {}
        last = self.next_id - 1
        for seg in range(self.sealed, self.layout.segment_of(last) + 1 if last else 0):
            self._builder(seg).load(db)

    def _builder(self, seg: int) -> postings.SegmentBuilder:
        builder = self.builders.get(seg)
        if builder is None:
            builder = self.builders[seg] = postings.SegmentBuilder(seg, self.layout)
        return builder

    def _refresh(self) -> None:
        """Pick up what other threads changed: retention, a merge, a new dictionary."""
        if self.stale:
            self.load()
        if self.new_compressor is not None:
            self.compressor, self.new_compressor = self.new_compressor, None
        if self.merged_id > self.pruned_to:
            # the maintenance thread merged keys up to merged_id: forget them here
            count = bisect_right(self.tail_ids, self.merged_id)
            self.tail.difference_update(self.tail_h[:count])
            del self.tail_h[:count]
            del self.tail_ids[:count]
            self.pruned_to = self.merged_id

    # --- idempotence ---

    def stored(self, hashes: Iterable[int]) -> set[int]:
        """Which of ``hashes`` belong to stored events."""
        wanted = set(hashes)
        found = wanted & self.tail
        rest = list(wanted - found)
        hits: dict[int, int] = {}
        if rest:
            rest.sort()  # neighbouring seeks share pages
            for h, event_id in self.db.execute(
                "SELECT k.h, k.id FROM json_each(?) j CROSS JOIN keyidx k ON k.h = j.value",
                (orjson.dumps(rest),),
            ):
                hits[int(event_id)] = int(h)
        if hits:
            # keyidx may still name events that retention deleted
            ids = list(hits)
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                for (event_id,) in self.db.execute(
                    f"SELECT id FROM events WHERE id IN ({marks})", chunk
                ):
                    found.add(hits[int(event_id)])
        return found

    def unseen(self, given: Sequence[str] | codec.Rows) -> list[bool]:
        self._refresh()
        keys: Sequence[str] = given.keys if isinstance(given, codec.Rows) else given
        hashes = given.hashes if isinstance(given, codec.Rows) else list(map(key_hash, keys))
        found = self.stored(hashes)
        flags = [h not in found for h in hashes]
        # write() usually follows with the same keys: it reuses these answers
        self.unseen_cache = dict(zip(keys, zip(hashes, flags, strict=True), strict=True))
        return flags

    def _hashes(self, keys: Sequence[str]) -> list[int]:
        cache = self.unseen_cache
        if cache and all(k in cache for k in keys):
            return [cache[k][0] for k in keys]
        return list(map(key_hash, keys))

    def _new(self, keys: Sequence[str], hashes: list[int]) -> list[bool]:
        """Whether each event is new: the first of its key, which is not stored yet."""
        cache = self.unseen_cache
        if cache and all(k in cache for k in keys):
            found = {h for h, fresh in cache.values() if not fresh}
        else:
            found = self.stored(hashes)
        if not found and len(set(hashes)) == len(hashes):
            return [True] * len(hashes)
        new: list[bool] = []
        taken: set[int] = set()
        for h in hashes:
            new.append(h not in found and h not in taken)
            taken.add(h)
        return new

    # --- writing ---

    def write(self, batch: Batch, alerts: Sequence[AlertRecord], now: float) -> WriteResult:
        """Store the batch's new events (``IncomingEvent``s, or ``Rows`` encoded elsewhere)."""
        db = self.db
        self._refresh()
        given = batch.events
        total = len(given)
        try:
            if db.execute("SELECT 1 FROM batches WHERE batch_id = ?", (batch.batch_id,)).fetchone():
                self.counters.inc("retried_batches")
                return WriteResult(0, total, (False,) * total, None)
            if isinstance(given, codec.Rows):
                new = self._new(given.keys, given.hashes)
                rows = given if all(new) else given.select(new)
            else:
                events = cast(Sequence[IncomingEvent], given)
                keys = [e.key for e in events]
                hashes = self._hashes(keys)
                new = self._new(keys, hashes)
                if not all(new):
                    events = [e for e, fresh in zip(events, new, strict=True) if fresh]
                    hashes = [h for h, fresh in zip(hashes, new, strict=True) if fresh]
                rows = codec.encode_rows(events, self.compressor, hashes)
            if not rows.keys and not alerts:
                return WriteResult(0, total, tuple(new), None)
            prepared = self._prepare(batch, rows, now)
            with self.lock():
                db.execute("BEGIN IMMEDIATE")
                try:
                    self._insert(prepared, alerts, now)
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
        except BaseException:
            self.load()
            raise
        finally:
            self.unseen_cache = {}
        self.seq, self.head = prepared.row[0], prepared.row[-1]
        columns = prepared.columns
        count = len(columns[0])
        self.next_id += count
        self.events += count
        if count:
            self.tail.update(rows.hashes)
            self.tail_h.extend(rows.hashes)
            self.tail_ids.extend(columns[0])
            self._gather(columns)
            self._seal_full()
            if self.compressor.dict_id == 0 and self.next_id > self.next_training:
                self._first_dictionary()
        return WriteResult(count, total - count, tuple(new), self.seq)

    def _dict_sha(self, dict_id: int) -> bytes:
        """sha256 of the dictionary ``dict_id`` (what the chain records of it)."""
        if dict_id == self.compressor.dict_id:
            return self.compressor.sha
        if not dict_id:
            return bytes(32)
        sha = self.dict_shas.get(dict_id)
        if sha is None:
            row = self.db.execute("SELECT sha FROM dicts WHERE id = ?", (dict_id,)).fetchone()
            if row is None:
                raise LookupError(f"events compressed with an unknown dictionary {dict_id}")
            sha = self.dict_shas[dict_id] = bytes(row[0])
        return sha

    def _prepare(self, batch: Batch, rows: codec.Rows, now: float) -> _Prepared:
        """Everything a batch needs, computed before taking the lock."""
        count = len(rows)
        frames = rows.frames
        added = Added()
        org = self.vocab.origin(batch.cluster, batch.node, batch.source, added)
        ids = self.vocab.columns(rows.fields, added)
        first = self.next_id
        columns: list[list[Any]] = [
            list(range(first, first + count)),
            rows.hashes,
            _times(rows.times),
            self.vocab.kinds_of(org, ids[1], ids[6], ids[9], ids[7], added),
            *(ids[k] for k in (0, 2, 3, 4, 5, 8)),
        ]
        z = rows.dict_id << 1
        truncated = rows.truncated
        columns.append([z | 1 if t else z for t in truncated] if any(truncated) else [z] * count)
        times = columns[2]
        first_id = first if count else None
        last_id = first + count - 1 if count else None
        digest = batch_digest(
            first_id,
            last_id,
            count,
            self._dict_sha(rows.dict_id) if count else bytes(32),
            columns,
            frames,
        )
        vocab = vocab_digest(added.strings, added.origins, added.kinds)
        seq = self.seq + 1
        link = chain_hash(self.head, seq, batch.batch_id, digest, vocab)
        row = (
            seq,
            batch.batch_id,
            batch.cluster,
            batch.node,
            batch.source,
            batch.received if -MAX_TIME < batch.received < MAX_TIME and batch.received else now,
            first_id,
            last_id,
            count,
            min(times) if count else None,
            max(times) if count else None,
            *self.vocab.high(),
            digest,
            vocab,
            self.head,
            link,
        )
        seen, activity = _review_rollups(
            org, ((FIELD_NUMBER["usr"], columns[4]), (FIELD_NUMBER["ip"], columns[8])), times
        )
        return _Prepared(columns, frames, added, row, seen, activity)

    def _insert(self, prepared: _Prepared, alerts: Sequence[AlertRecord], now: float) -> None:
        """Insert a prepared batch (inside the caller's transaction)."""
        db = self.db
        added = prepared.added
        if added.strings:
            db.executemany("INSERT INTO strings (id, value) VALUES (?, ?)", added.strings)
            db.executemany("INSERT INTO text_fts (rowid, value) VALUES (?, ?)", added.strings)
        if added.origins:
            db.executemany("INSERT INTO origins VALUES (?, ?, ?, ?)", added.origins)
        if added.kinds:
            db.executemany("INSERT INTO kinds VALUES (?, ?, ?, ?, ?, ?)", added.kinds)
        columns = prepared.columns
        if columns[0]:
            db.executemany(
                "INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                zip(*columns, prepared.frames, strict=True),
            )
            times = columns[2]
            db.executemany(
                "INSERT INTO blocks (b, min_t, max_t) VALUES (?, ?, ?) ON CONFLICT (b) DO UPDATE"
                " SET min_t = min(min_t, excluded.min_t), max_t = max(max_t, excluded.max_t)",
                _block_bounds(self.layout, columns[0][0], times),
            )
            hours = [int(t // 3600.0) for t in times]
            db.executemany(
                "INSERT INTO rollup VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET n = n + excluded.n",
                [(*key, n) for key, n in Counter(zip(hours, columns[3], strict=True)).items()],
            )
            if prepared.seen:
                db.executemany(
                    "INSERT INTO seen VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET"
                    " first = min(first, excluded.first), last = max(last, excluded.last),"
                    " n = n + excluded.n",
                    prepared.seen,
                )
            db.executemany(
                "INSERT INTO activity VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET"
                " n = n + excluded.n",
                prepared.activity,
            )
            add_meta(db, "events", len(times))
        db.execute(
            "INSERT INTO batches (seq, batch_id, cluster, node, source, received, first_rowid,"
            " last_rowid, events, min_t, max_t, strings_hi, origins_hi, kinds_hi, digest, vocab,"
            " prev, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            prepared.row,
        )
        if alerts:
            alerts_db.merge(db, alerts, now)

    def _gather(self, columns: list[list[Any]]) -> None:
        """Hand the written rows' field columns to the builders of their segments."""
        ids = columns[0]
        layout = self.layout
        if layout.segment_of(ids[0]) == layout.segment_of(ids[-1]):
            self._builder(layout.segment_of(ids[0])).add(ids[0], columns[3:10])
            return
        start = 0
        while start < len(ids):
            seg = layout.segment_of(ids[start])
            stop = min(len(ids), start + layout.segment_range(seg)[1] - ids[start] + 1)
            self._builder(seg).add(ids[start], [c[start:stop] for c in columns[3:10]])
            start = stop

    def _seal_full(self) -> None:
        """Write the postings of the segments that are full. The batch is committed: a failure
        here is logged and tried again after the next write."""
        if self.layout.segment_range(self.sealed)[1] >= self.next_id:
            return
        try:
            if self.stale:  # retention deleted events: gather the segments' columns again
                self.load()
            while self.layout.segment_range(self.sealed)[1] < self.next_id:
                self._seal(self.sealed)
        except Exception:
            log.exception("sealing segment %d failed (tried again later)", self.sealed)
            self.counters.inc("failed", reason="seal")
            self.stale = True

    def _seal(self, seg: int) -> None:
        db = self.db
        builder = self.builders.pop(seg, None)
        if builder is None:
            builder = postings.SegmentBuilder(seg, self.layout)
            builder.load(db)
        started = time.perf_counter()
        encoded = builder.encode()
        with self.lock():
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("DELETE FROM postings WHERE seg = ?", (seg,))
                db.executemany(
                    "INSERT INTO postings (f, v, seg, n, offsets) VALUES (?, ?, ?, ?, ?)", encoded
                )
                set_meta(db, sealed=seg + 1)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        self.sealed = seg + 1
        self.counters.inc("sealed_segments")
        log.debug("segment %d sealed in %.3f s", seg, time.perf_counter() - started)

    def _first_dictionary(self) -> None:
        """Train the first dictionary now (later ones are trained in the background): until
        it exists, events are compressed without one, about 5 times larger."""
        try:
            compressor = train_dictionary(self.db, self.lock, self.next_id - 1)
        except Exception:
            log.exception("training a compression dictionary failed")
            compressor = None
        self.next_training = codec.next_training(self.next_id - 1)
        if compressor is not None:
            self.compressor = compressor
            self.counters.inc("dictionaries")


def _review_rollups(
    org: int, fields: Sequence[tuple[int, list[int]]], times: list[float]
) -> tuple[list[tuple[int, int, float, float, int]], list[tuple[int, int, int]]]:
    """The batch's ``seen`` rows (per field and value present: first and last time, events;
    times of 0, unknown, left out) and ``activity`` rows (events per minute of the origin).
    Work per event is done by C builtins over the times in order: a tenth of a millisecond
    for a batch of a thousand."""
    ordered = sorted(times)
    in_order = ordered == times  # as events usually come
    order = None if in_order else sorted(range(len(times)), key=times.__getitem__)
    low, high = bisect_left(ordered, 0.0), bisect_right(ordered, 0.0)
    seen: list[tuple[int, int, float, float, int]] = []
    for field, values in fields:
        counts = Counter(values)
        counts.pop(0, None)
        if not counts:
            continue
        ranked = values if order is None else [values[i] for i in order]
        kept_values, kept_times = ranked, ordered
        if high > low:  # unknown times
            kept_values = ranked[:low] + ranked[high:]
            kept_times = ordered[:low] + ordered[high:]
        last = dict(zip(kept_values, kept_times, strict=True))
        first = dict(zip(reversed(kept_values), reversed(kept_times), strict=True))
        seen += [(field, v, first[v], last[v], n) for v, n in counts.items() if v in first]
    activity: list[tuple[int, int, int]] = []
    if not ordered:
        return seen, activity
    lowest, highest = math.floor(ordered[0] / 60.0), math.floor(ordered[-1] / 60.0)
    if highest - lowest > 1440:  # times spread over more than a day: count them one by one
        minutes = Counter([int(t // 60.0) for t in ordered])
        return seen, [(minute, org, n) for minute, n in minutes.items()]
    at = 0
    for minute in range(lowest, highest + 1):
        following = bisect_left(ordered, (minute + 1) * 60.0, at)
        if following > at:
            activity.append((minute, org, following - at))
        at = following
    return seen, activity


def _times(times: list[float]) -> list[float]:
    """Event times, with NaN, infinities and absurd values (beyond ``MAX_TIME``) as 0."""
    if times and min(times) > -MAX_TIME and max(times) < MAX_TIME and isfinite(fsum(times)):
        return times
    return [t if -MAX_TIME < t < MAX_TIME else 0.0 for t in times]


def _block_bounds(layout: Layout, first: int, times: list[float]) -> list[tuple[int, float, float]]:
    """(block, lowest time, highest time) of consecutive ids from ``first``."""
    out = []
    start = 0
    while start < len(times):
        event_id = first + start
        stop = min(len(times), start + layout.block - ((event_id - 1) % layout.block))
        part = times[start:stop]
        out.append((layout.block_of(event_id), min(part), max(part)))
        start = stop
    return out
