"""What readers share across threads: block time bounds of sealed segments, origins,
compression dictionaries, and the resolution of query filters into ids.

Caches are keyed by what makes them stale: sealed segments never change until retention runs,
and retention bumps ``meta.gen``.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import orjson

from k3watch.store.base import SEARCH_FIELDS, StoredEvent
from k3watch.store.codec import Decompressors, open_envelope
from k3watch.store.sqlite_schema import (
    FIELD_COLUMN,
    FIELD_NUMBER,
    KIND_FIELDS,
    MAX_STRING,
    ORIGIN_FIELDS,
    Layout,
    read_meta,
)

BlockBounds = tuple[int, float, float]
"""Block number, lowest and highest event time in it."""
SEEK_VALUES = 256
"""Up to this many values of a field, its postings are looked up one by one; more, the
segment's postings of the field are read and filtered."""
POSTINGS_VALUES = 20_000
ROW_VALUES = 64
"""Up to this many values of a field are bound as parameters of row checks."""
DENSE = 0.05
"""A text filter matching more than this share of events is checked on rows instead."""
_WORD = re.compile(r"\S+")


@dataclass(slots=True)
class Condition:
    """One field filter, as ids."""

    column: str
    ids: list[int]
    postings: bool = True
    """Evaluated with the segments' postings (else only by checking rows)."""
    table: str | None = None
    """A temporary table holding ``ids`` (many ids), for row checks."""

    @property
    def field(self) -> int:
        return FIELD_NUMBER[self.column]


@dataclass(slots=True)
class Plan:
    conditions: list[Condition] = field(default_factory=list)
    empty: bool = False
    """A filter value was never seen, or a text query matched nothing: no result."""

    @property
    def indexed(self) -> list[Condition]:
        """The conditions evaluated with postings."""
        return [c for c in self.conditions if c.postings]

    def row_sql(self, *, every: bool) -> tuple[str, list[object]]:
        """SQL conditions on ``events`` rows (all filters, or those without postings)."""
        parts: list[str] = []
        params: list[object] = []
        for condition in self.conditions:
            if every or not condition.postings:
                if condition.table is not None:
                    parts.append(f"{condition.column} IN (SELECT id FROM temp.{condition.table})")
                elif len(condition.ids) <= ROW_VALUES:
                    parts.append(f"{condition.column} IN ({','.join('?' * len(condition.ids))})")
                    params.extend(condition.ids)
                else:
                    parts.append(f"{condition.column} IN (SELECT value FROM json_each(?))")
                    params.append(orjson.dumps(condition.ids).decode())
        return "".join(f" AND {p}" for p in parts), params

    def materialize(self, db: sqlite3.Connection) -> None:
        """Put long id lists in temporary tables of the connection (filled once per query;
        ``IN`` then looks ids up by rowid instead of building an index per statement)."""
        for condition in self.conditions:
            if len(condition.ids) > ROW_VALUES:
                table = f"ids_{condition.column}"
                db.execute(f"CREATE TEMP TABLE IF NOT EXISTS {table} (id INTEGER PRIMARY KEY)")
                db.execute(f"DELETE FROM temp.{table}")
                db.execute(
                    f"INSERT INTO temp.{table} SELECT value FROM json_each(?)",
                    (orjson.dumps(condition.ids).decode(),),
                )
                condition.table = table


def fts_query(text: str) -> str | None:
    """An FTS5 query for the words of ``text`` (all must occur, the last one may be a prefix);
    None when it has no word. Every word is quoted, so nothing in it is FTS syntax."""
    words = [w for w in _WORD.findall(text) if any(ch.isalnum() for ch in w)]
    if not words:
        return None
    quoted = ['"' + w.replace('"', '""') + '"' for w in words]
    return " ".join(quoted) + "*"


class Catalog:
    """Thread-safe caches for readers."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self._lock = threading.Lock()
        self._gen = -1
        self._sealed = 0
        self._blocks: list[BlockBounds] = []
        self.kinds: dict[int, tuple[str | None, ...]] = {}
        self.decompressors = Decompressors()

    def snapshot(self, db: sqlite3.Connection) -> dict[str, int]:
        """Meta values of the reader's snapshot (call inside its read transaction)."""
        return read_meta(db)

    def blocks(self, db: sqlite3.Connection, meta: Mapping[str, int]) -> list[BlockBounds]:
        """Time bounds of every block (sealed ones cached, the tail's read now)."""
        sealed_blocks = meta["sealed"] << self.layout.shift
        with self._lock:
            if meta["gen"] != self._gen:
                self._gen, self._sealed, self._blocks = meta["gen"], 0, []
            if sealed_blocks > self._sealed:
                self._blocks.extend(
                    (int(b), lo, hi)
                    for b, lo, hi in db.execute(
                        "SELECT b, min_t, max_t FROM blocks WHERE b >= ? AND b < ? ORDER BY b",
                        (self._sealed, sealed_blocks),
                    )
                )
                self._sealed = sealed_blocks
            cached = self._blocks
            end = len(cached)
            if end and cached[-1][0] >= sealed_blocks:  # an older snapshot than the cache
                end = bisect_left(cached, (sealed_blocks,))
            known = cached[:end]
        tail = db.execute(
            "SELECT b, min_t, max_t FROM blocks WHERE b >= ? ORDER BY b", (sealed_blocks,)
        ).fetchall()
        return known + [(int(b), lo, hi) for b, lo, hi in tail]

    def kind(self, db: sqlite3.Connection, kind_id: int) -> tuple[str | None, ...]:
        """Values of ``KIND_FIELDS`` (cluster, node, source, verb, decision, code, stage)."""
        values = self.kinds.get(kind_id)
        if values is None:
            for row in db.execute(
                "SELECT k.id, o.cluster, o.node, o.source, v.value, d.value, k.code, s.value"
                " FROM kinds k JOIN origins o ON o.id = k.org"
                " LEFT JOIN strings v ON v.id = k.vb LEFT JOIN strings d ON d.id = k.dec"
                " LEFT JOIN strings s ON s.id = k.stg"
            ):
                code = str(row[6]) if row[6] else None
                self.kinds[int(row[0])] = (*row[1:6], code, row[7])
            values = self.kinds.get(kind_id, ("", "", "", None, None, None, None))
        return values

    def event(
        self, db: sqlite3.Connection, t: float, kind: int, z: int, body: bytes
    ) -> StoredEvent:
        """A stored event from its row's ``t, kind, z, body``."""
        dict_id = z >> 1
        if not self.decompressors.known(dict_id):
            data = db.execute("SELECT data FROM dicts WHERE id = ?", (dict_id,)).fetchone()
            self.decompressors.add(dict_id, bytes(data[0]))
        key, raw = open_envelope(self.decompressors.decompress(dict_id, body))
        cluster, node, source = self.kind(db, kind)[:3]
        return StoredEvent(key, t, cluster or "", node or "", source or "", raw, bool(z & 1))

    def plan(
        self, db: sqlite3.Connection, filters: Mapping[str, Sequence[str]], text: str | None
    ) -> Plan:
        """Filters and text as ids (in the caller's read transaction)."""
        plan = Plan()
        kind_filter: dict[str, Sequence[str]] = {}
        for name, values in filters.items():
            if name not in SEARCH_FIELDS:
                raise ValueError(f"unknown search field {name!r}")
            if not values:
                continue
            if name in KIND_FIELDS:
                kind_filter[name] = values
            else:
                ids = _string_ids(db, values)
                if not ids:
                    return Plan(empty=True)
                plan.conditions.append(Condition(FIELD_COLUMN[name], ids))
        if kind_filter:
            ids = _kind_ids(db, kind_filter)
            if not ids:
                return Plan(empty=True)
            plan.conditions.append(Condition("kind", ids))
        if text is not None and (query := fts_query(text)) is not None:
            ids = [
                int(i)
                for (i,) in db.execute(
                    "SELECT rowid FROM text_fts WHERE text_fts MATCH ? ORDER BY rowid", (query,)
                )
            ]
            if not ids:
                return Plan(empty=True)
            plan.conditions.append(Condition("txt", ids, _text_postings(db, ids)))
        plan.conditions.sort(key=lambda c: len(c.ids))
        return plan


_KIND_COLUMN = {"verb": "vb", "decision": "dec", "stage": "stg"}


def _kind_ids(db: sqlite3.Connection, filters: Mapping[str, Sequence[str]]) -> list[int]:
    """Kinds whose origin, verb, decision, code and stage are among the accepted values."""
    where: list[str] = []
    params: list[object] = []
    for name, values in filters.items():
        if name == "code":
            codes = sorted({int(v) for v in values if str(v).isdigit() and int(v) > 0})
            if not codes:
                return []
            where.append(f"k.code IN ({','.join('?' * len(codes))})")
            params.extend(codes)
            continue
        accepted = sorted({str(v)[:MAX_STRING] for v in values})
        marks = ",".join("?" * len(accepted))
        if name in ORIGIN_FIELDS:
            where.append(f"o.{name} IN ({marks})")
        else:
            where.append(
                f"k.{_KIND_COLUMN[name]} IN (SELECT id FROM strings WHERE value IN ({marks}))"
            )
        params.extend(accepted)
    return [
        int(i)
        for (i,) in db.execute(
            "SELECT k.id FROM kinds k JOIN origins o ON o.id = k.org WHERE "
            + " AND ".join(where)
            + " ORDER BY k.id",
            params,
        )
    ]


def _string_ids(db: sqlite3.Connection, values: Sequence[str]) -> list[int]:
    keys = sorted({str(v)[:MAX_STRING] for v in values})
    marks = ",".join("?" * len(keys))
    return sorted(
        int(i) for (i,) in db.execute(f"SELECT id FROM strings WHERE value IN ({marks})", keys)
    )


def _text_postings(db: sqlite3.Connection, ids: list[int]) -> bool:
    """Whether a text filter is better checked with postings than on rows."""
    if len(ids) <= SEEK_VALUES:
        return True
    if len(ids) > POSTINGS_VALUES:
        return False
    total = db.execute(
        "SELECT sum(n) FROM postings WHERE f = ? AND v IN (SELECT value FROM json_each(?))",
        (FIELD_NUMBER["txt"], orjson.dumps(ids).decode()),
    ).fetchone()[0]
    events = read_meta(db)["events"] or 1
    return (total or 0) / events < DENSE
