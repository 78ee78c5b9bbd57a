"""Search and aggregation over the SQLite store.

Events come newest first by ``(time, id)``. Time bounds are known per block of ids;
blocks are visited from the highest upper bound down, and the search stops as soon as no
unvisited block can hold an event newer than the oldest one of the page: with events arriving
mostly in time order that is one or two blocks, and a late batch or a clock far in the future
only adds the blocks it touches. Within a block, the candidates are the events of the sealed
segment that every filtered field's postings hold (the postings of a field's values united,
the fields intersected, smallest first), or, in the unsealed tail, rows matching the filters;
SQLite keeps the newest of them (``ORDER BY t DESC, id DESC LIMIT``).
"""

from __future__ import annotations

import heapq
import math
import sqlite3
from array import array
from bisect import bisect_left
from collections.abc import Iterable

import orjson

from k3watch.store import postings
from k3watch.store.alerts_db import decode_cursor, encode_cursor
from k3watch.store.base import (
    SEARCH_FIELDS,
    AggregateQuery,
    Bucket,
    EventPage,
    EventQuery,
    StoredEvent,
)
from k3watch.store.catalog import SEEK_VALUES, BlockBounds, Catalog, Plan
from k3watch.store.sqlite_schema import FIELD_COLUMN, FIELD_NUMBER, KIND_FIELDS

_HOUR = 3600.0


class _Candidates:
    """Per sealed segment, the offsets of the events matching every indexed filter (sorted),
    computed once per segment and query by intersecting the postings, smallest first."""

    def __init__(self, db: sqlite3.Connection, plan: Plan) -> None:
        self.db = db
        self.conditions = plan.indexed
        self.sets = [set(c.ids) for c in self.conditions]
        self.cache: dict[int, list[int]] = {}
        self.dctx = postings.decompressor()

    def __bool__(self) -> bool:
        return bool(self.conditions)

    def of(self, seg: int) -> list[int]:
        found = self.cache.get(seg)
        if found is None:
            found = self.cache[seg] = self._compute(seg)
        return found

    def _postings(self, seg: int, number: int) -> list[array[int]]:
        condition, wanted = self.conditions[number], self.sets[number]
        field = condition.field
        if len(condition.ids) <= SEEK_VALUES:
            rows: Iterable[tuple[int, bytes]] = self.db.execute(
                "SELECT v, offsets FROM postings WHERE f = ? AND v IN (SELECT value FROM"
                " json_each(?)) AND seg = ?",
                (field, orjson.dumps(condition.ids).decode(), seg),
            )
        else:
            rows = (
                (v, b)
                for v, b in self.db.execute(
                    "SELECT v, offsets FROM postings WHERE seg = ? AND f = ?", (seg, field)
                )
                if v in wanted
            )
        return [postings.offsets(data, self.dctx) for _, data in rows]

    def _compute(self, seg: int) -> list[int]:
        lists = []
        for number in range(len(self.conditions)):
            found = self._postings(seg, number)
            if not found:
                return []
            lists.append(found)
        lists.sort(key=lambda arrays: sum(map(len, arrays)))
        result: set[int] = set().union(*lists[0])
        for arrays in lists[1:]:
            # few candidates left: look each up in every list (binary search) instead of
            # building a set of the lists' union (counting a lookup as 16 set insertions)
            if len(result) * len(arrays) * 16 < sum(map(len, arrays)):
                result = {o for o in result if any(_has(a, o) for a in arrays)}
            else:
                result.intersection_update(set().union(*arrays))
            if not result:
                return []
        return sorted(result)


def _has(members: array[int], offset: int) -> bool:
    at = bisect_left(members, offset)
    return at < len(members) and members[at] == offset


def _window(start: float | None, end: float | None) -> tuple[str, list[object]]:
    sql, params = "", list[object]()
    if start is not None:
        sql += " AND t >= ?"
        params.append(start)
    if end is not None:
        sql += " AND t < ?"
        params.append(end)
    return sql, params


def search(db: sqlite3.Connection, catalog: Catalog, q: EventQuery) -> EventPage:
    limit = max(1, q.limit)
    need = limit + 1
    cursor = decode_cursor(q.cursor) if q.cursor else None
    plan = catalog.plan(db, q.filters, q.text)
    if plan.empty:
        return EventPage([], None)
    plan.materialize(db)
    meta = catalog.snapshot(db)
    layout = catalog.layout
    sealed_blocks = meta["sealed"] << layout.shift
    candidates = _Candidates(db, plan)
    window, window_params = _window(q.start, q.end)
    if cursor is not None:
        window += " AND (t < ? OR (t = ? AND id < ?))"
        window_params += [cursor[0], cursor[0], cursor[1]]
    rows_sql, rows_params = plan.row_sql(every=False)
    every_sql, every_params = plan.row_sql(every=True)
    order = " ORDER BY t DESC, id DESC LIMIT ?"
    by_ids = (
        "SELECT t, id FROM events WHERE id IN (SELECT value FROM json_each(?))"
        + rows_sql
        + window
        + order
    )
    by_range_sealed = (
        "SELECT t, id FROM events WHERE id BETWEEN ? AND ?" + rows_sql + window + order
    )
    by_range_tail = "SELECT t, id FROM events WHERE id BETWEEN ? AND ?" + every_sql + window + order
    start = -math.inf if q.start is None else q.start
    end = math.inf if q.end is None else q.end
    blocks = [
        b
        for b in catalog.blocks(db, meta)
        if b[2] >= start
        and b[1] < end
        and (
            cursor is None
            or b[1] < cursor[0]
            or (b[1] == cursor[0] and layout.block_range(b[0])[0] < cursor[1])
        )
    ]
    blocks.sort(key=lambda b: (b[2], b[0]), reverse=True)
    best: list[tuple[float, int]] = []
    for block, _, high in blocks:
        if len(best) >= need:
            worst_t, worst_id = best[0]
            if high < worst_t:
                break
            if high == worst_t and layout.block_range(block)[1] <= worst_id:
                continue
        first, last = layout.block_range(block)
        if block >= sealed_blocks:
            found = db.execute(by_range_tail, (first, last, *every_params, *window_params, need))
        elif candidates:
            seg = block >> layout.shift
            offsets = candidates.of(seg)
            base = layout.segment_range(seg)[0]
            low = bisect_left(offsets, first - base)
            high_at = bisect_left(offsets, last + 1 - base, low)
            if low == high_at:
                continue
            ids = orjson.dumps([base + o for o in offsets[low:high_at]]).decode()
            found = db.execute(by_ids, (ids, *rows_params, *window_params, need))
        else:
            found = db.execute(by_range_sealed, (first, last, *rows_params, *window_params, need))
        for t, event_id in found:
            item = (t, event_id)
            if len(best) < need:
                heapq.heappush(best, item)
            elif item > best[0]:
                heapq.heapreplace(best, item)
    best.sort(reverse=True)
    page = best[:limit]
    events = fetch(db, catalog, [event_id for _, event_id in page])
    next_cursor = encode_cursor(*page[-1]) if len(best) > limit else None
    return EventPage(events, next_cursor)


def fetch(db: sqlite3.Connection, catalog: Catalog, ids: list[int]) -> list[StoredEvent]:
    """The events of ``ids``, in that order (deleted ones left out)."""
    if not ids:
        return []
    rows = {
        int(row[0]): row
        for row in db.execute(
            "SELECT id, t, kind, z, body FROM events WHERE id IN (SELECT value FROM json_each(?))",
            (orjson.dumps(ids).decode(),),
        )
    }
    out: list[StoredEvent] = []
    for event_id in ids:
        row = rows.get(event_id)
        if row is not None:
            out.append(catalog.event(db, row[1], row[2], row[3], row[4]))
    return out


# --- aggregation ---


def aggregate(db: sqlite3.Connection, catalog: Catalog, q: AggregateQuery) -> list[Bucket]:
    if q.bucket is not None and not q.bucket > 0:
        raise ValueError("bucket must be a positive number of seconds")
    if q.by is not None and q.by not in SEARCH_FIELDS and q.by != "text":
        raise ValueError(f"unknown aggregation field {q.by!r}")
    plan = catalog.plan(db, q.filters, q.text)
    if plan.empty:
        return []
    plan.materialize(db)
    column = None if q.by is None else "kind" if q.by in KIND_FIELDS else FIELD_COLUMN[q.by]
    counts: dict[tuple[int | None, int], int] = {}
    start = -math.inf if q.start is None else q.start
    end = math.inf if q.end is None else q.end
    rollup = _rollup_hours(plan, q, start, end)
    if rollup is None:
        _scan(db, catalog, plan, q.bucket, column, start, end, counts)
    else:
        low, high = rollup
        _from_rollup(db, plan, q.bucket, column, low, high, counts)
        if start < low * _HOUR:
            _scan(db, catalog, plan, q.bucket, column, start, low * _HOUR, counts)
        if high * _HOUR < end:
            _scan(db, catalog, plan, q.bucket, column, high * _HOUR, end, counts)
    return _buckets(db, catalog, q, column, counts)


def _rollup_hours(
    plan: Plan, q: AggregateQuery, start: float, end: float
) -> tuple[int, int] | None:
    """Whole hours the rollup table can answer, or None when it cannot."""
    if any(c.column != "kind" for c in plan.conditions):
        return None
    if q.by is not None and q.by not in KIND_FIELDS:
        return None
    if q.bucket is not None and (q.bucket % _HOUR or q.bucket < _HOUR):
        return None
    low = -(2**62) if start == -math.inf else math.ceil(start / _HOUR)
    high = 2**62 if end == math.inf else math.floor(end / _HOUR)
    return (low, high) if low < high else None


def _from_rollup(
    db: sqlite3.Connection,
    plan: Plan,
    bucket: float | None,
    column: str | None,
    low: int,
    high: int,
    counts: dict[tuple[int | None, int], int],
) -> None:
    conditions, params = plan.row_sql(every=True)
    group = column or "NULL"
    per = None if bucket is None else int(bucket // _HOUR)
    if per is None:  # no time buckets: let SQLite sum the hours
        rows = db.execute(
            f"SELECT NULL, {group}, sum(n) FROM rollup WHERE hour >= ? AND hour < ?"
            f"{conditions} GROUP BY {group}",
            (low, high, *params),
        )
    else:
        rows = db.execute(
            f"SELECT hour / ? - (hour < 0 AND hour % ? != 0), {group}, sum(n) FROM rollup"
            f" WHERE hour >= ? AND hour < ?{conditions} GROUP BY 1, {group}",
            (per, per, low, high, *params),
        )
    for key, value, n in rows:
        if column is not None and not value:
            continue
        k = (None if key is None else int(key), int(value or 0))
        counts[k] = counts.get(k, 0) + int(n)


def _scan(
    db: sqlite3.Connection,
    catalog: Catalog,
    plan: Plan,
    bucket: float | None,
    column: str | None,
    start: float,
    end: float,
    counts: dict[tuple[int | None, int], int],
) -> None:
    """Count events in [start, end) block by block (postings counts for whole segments)."""
    meta = catalog.snapshot(db)
    layout = catalog.layout
    sealed_blocks = meta["sealed"] << layout.shift
    candidates = _Candidates(db, plan)
    blocks = [b for b in catalog.blocks(db, meta) if b[2] >= start and b[1] < end]
    if bucket is None:
        key_sql = "NULL"
        params: list[object] = []
    else:
        key_sql = "CAST(t / ? AS INTEGER) - (t / ? < CAST(t / ? AS INTEGER))"
        params = [bucket, bucket, bucket]
    group = column or "NULL"
    window = " AND t >= ? AND t < ?"
    window_params: list[object] = [max(start, -1e300), min(end, 1e300)]
    rows_sql, rows_params = plan.row_sql(every=False)
    every_sql, every_params = plan.row_sql(every=True)
    head = f"SELECT {key_sql}, {group}, count(*) FROM events WHERE "
    tail = " GROUP BY 1, 2"
    by_segment: dict[int, list[BlockBounds]] = {}
    for b in blocks:
        by_segment.setdefault(b[0] >> layout.shift, []).append(b)
    for seg, members in sorted(by_segment.items()):
        first = layout.block_range(members[0][0])[0]
        last = layout.block_range(members[-1][0])[1]
        if members[0][0] >= sealed_blocks:
            results = db.execute(
                head + "id BETWEEN ? AND ?" + every_sql + window + tail,
                (*params, first, last, *every_params, *window_params),
            )
        else:
            whole = (
                len(members) == 1 << layout.shift
                and all(b[1] >= start and b[2] < end for b in members)
                and bucket is None
                and not rows_sql
            )
            if whole and _segment_counts(db, candidates, seg, column, counts):
                continue
            if candidates:
                offsets = candidates.of(seg)
                if not offsets:
                    continue
                base = layout.segment_range(seg)[0]
                ids = orjson.dumps([base + o for o in offsets])
                results = db.execute(
                    head + "id IN (SELECT value FROM json_each(?))" + rows_sql + window + tail,
                    (*params, ids.decode(), *rows_params, *window_params),
                )
            else:
                results = db.execute(
                    head + "id BETWEEN ? AND ?" + rows_sql + window + tail,
                    (*params, first, last, *rows_params, *window_params),
                )
        for key, value, n in results:
            if column is not None and not value:
                continue
            k = (None if key is None else int(key), int(value or 0))
            counts[k] = counts.get(k, 0) + int(n)


def _segment_counts(
    db: sqlite3.Connection,
    candidates: _Candidates,
    seg: int,
    column: str | None,
    counts: dict[tuple[int | None, int], int],
) -> bool:
    """Count a whole segment from its postings; False when that would cost too much."""
    filtered = set(candidates.of(seg)) if candidates else None
    if column is None:
        if filtered is None:
            total = db.execute(
                "SELECT sum(n) FROM postings WHERE seg = ? AND f = ?", (seg, FIELD_NUMBER["kind"])
            ).fetchone()[0]
        else:
            total = len(filtered)
        if total:
            counts[(None, 0)] = counts.get((None, 0), 0) + int(total)
        return True
    if filtered is not None and not filtered:
        return True
    rows = db.execute(
        "SELECT v, n, offsets FROM postings WHERE seg = ? AND f = ?", (seg, FIELD_NUMBER[column])
    ).fetchall()
    if filtered is not None and len(rows) > 64:
        return False
    for value, total, data in rows:
        n = total
        if filtered is not None:
            n = len(filtered.intersection(postings.offsets(data, candidates.dctx)))
        if n:
            key = (None, int(value))
            counts[key] = counts.get(key, 0) + int(n)
    return True


def _buckets(
    db: sqlite3.Connection,
    catalog: Catalog,
    q: AggregateQuery,
    column: str | None,
    counts: dict[tuple[int | None, int], int],
) -> list[Bucket]:
    merged: dict[tuple[int | None, str | None], int] = {}
    names = _names(db, catalog, q.by, column, {v for _, v in counts})
    for (key, value_id), n in counts.items():
        k = (key, names.get(value_id) if column is not None else None)
        merged[k] = merged.get(k, 0) + n
    if q.by is not None:
        totals: dict[str | None, int] = {}
        for (_, name), n in merged.items():
            totals[name] = totals.get(name, 0) + n
        top = sorted(totals.items(), key=lambda item: (-item[1], item[0] or ""))[: max(0, q.limit)]
        keep = {value for value, _ in top}
        merged = {k: n for k, n in merged.items() if k[1] in keep}
    buckets = [
        Bucket(None if key is None or q.bucket is None else float(key * q.bucket), value, n)
        for (key, value), n in merged.items()
    ]
    buckets.sort(key=lambda b: (b.start or 0.0, -b.count, b.value or ""))
    return buckets


def _names(
    db: sqlite3.Connection, catalog: Catalog, by: str | None, column: str | None, ids: set[int]
) -> dict[int, str]:
    if column is None or not ids:
        return {}
    if column == "kind":
        position = KIND_FIELDS.index(by or "cluster")
        named = {i: catalog.kind(db, i)[position] for i in ids}
        return {i: name for i, name in named.items() if name is not None}
    wanted = sorted(ids)
    out: dict[int, str] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        out.update(
            (int(i), str(v))
            for i, v in db.execute(
                f"SELECT id, value FROM strings WHERE id IN ({','.join('?' * len(chunk))})", chunk
            )
        )
    return out
