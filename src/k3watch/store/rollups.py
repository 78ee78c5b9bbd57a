"""Reading the review roll-ups of the SQLite store: values first seen, gaps in the activity of
an origin, rejected input, alerts per rule and status.

The writer keeps ``seen`` and ``activity`` per batch and the server's pipeline adds to
``ingest_errors`` (``sqlite_schema.REVIEW_SCHEMA``). A store written by an older version
opened read-only has none of them: the same answers are then computed from ``events`` (one
pass over them: slow on a large store, until the server opens it and adds the tables).
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence
from itertools import pairwise

from k3watch.store.base import (
    SEEN_FIELDS,
    ActivityGap,
    AlertTally,
    IngestErrors,
    SeenValue,
)
from k3watch.store.sqlite_schema import FIELD_NUMBER, MINUTE_SQL, has_review_tables
from k3watch.store.sqlite_schema import SEEN_FIELDS as SEEN_COLUMNS

_MINUTE = 60.0
_HOUR = 3600.0


def alert_tallies(db: sqlite3.Connection, start: float, end: float) -> list[AlertTally]:
    return [
        AlertTally(str(rule), str(title), str(severity), status, int(n), int(total))
        for rule, title, severity, status, n, total in db.execute(
            "SELECT rule_id, max(title), severity, status, count(*), sum(count) FROM alerts"
            " WHERE last_seen >= ? AND first_seen < ? GROUP BY rule_id, severity, status"
            " ORDER BY 5 DESC, 1, 3, 4",
            (start, end),
        )
    ]


def first_seen(
    db: sqlite3.Connection, field: str, start: float, end: float, limit: int
) -> tuple[list[SeenValue], int]:
    if field not in SEEN_FIELDS:
        raise ValueError(f"first and last times are kept for {', '.join(SEEN_FIELDS)}, not {field}")
    column = SEEN_COLUMNS[field]
    if has_review_tables(db):
        where = "FROM seen WHERE f = ? AND first >= ? AND first < ?"
        params: tuple[object, ...] = (FIELD_NUMBER[column], start, end)
        total = db.execute(f"SELECT count(*) {where}", params).fetchone()[0]
        rows = db.execute(
            f"SELECT v, first, last, n {where} ORDER BY first, v LIMIT ?", (*params, limit)
        ).fetchall()
    else:
        found = db.execute(
            f"SELECT {column}, min(t), max(t), count(*) FROM events WHERE {column} != 0"
            f" AND t != 0 GROUP BY {column} HAVING min(t) >= ? AND min(t) < ?",
            (start, end),
        ).fetchall()
        found.sort(key=lambda row: (row[1], row[0]))
        total, rows = len(found), found[:limit]
    names = _strings(db, [int(row[0]) for row in rows])
    values = [
        SeenValue(field, names.get(int(v), ""), float(first), float(last), int(n))
        for v, first, last, n in rows
    ]
    return values, int(total)


def activity_gaps(
    db: sqlite3.Connection, start: float, end: float, min_gap: float, lookback: float
) -> list[ActivityGap]:
    low = math.floor((start - max(0.0, lookback)) / _MINUTE)
    high = math.ceil(end / _MINUTE)
    if has_review_tables(db):
        rows = db.execute(
            "SELECT minute, org FROM activity WHERE minute >= ? AND minute < ? AND n > 0"
            " ORDER BY minute",
            (low, high),
        ).fetchall()
    else:
        rows = db.execute(
            f"SELECT DISTINCT {MINUTE_SQL} AS m, k.org FROM events e JOIN kinds k"
            " ON k.id = e.kind WHERE t >= ? AND t < ? ORDER BY m",
            (low * _MINUTE, high * _MINUTE),
        ).fetchall()
    minutes: dict[int, list[int]] = {}
    for minute, org in rows:
        minutes.setdefault(int(org), []).append(int(minute))
    origins = {
        int(i): (str(c), str(n), str(s))
        for i, c, n, s in db.execute("SELECT id, cluster, node, source FROM origins")
    }
    gaps: list[ActivityGap] = []
    for org, active in minutes.items():
        cluster, node, source = origins.get(org, ("", "", ""))
        spans = [((a + 1) * _MINUTE, b * _MINUTE) for a, b in pairwise(active)]
        for gap_start, gap_end in spans:
            if gap_end - gap_start >= min_gap and gap_end > start and gap_start < end:
                gaps.append(ActivityGap(cluster, node, source, gap_start, gap_end))
        tail = (active[-1] + 1) * _MINUTE
        if end - tail >= min_gap:
            gaps.append(ActivityGap(cluster, node, source, tail, end, ongoing=True))
    gaps.sort(key=lambda g: (g.cluster, g.node, g.source, g.start))
    return gaps


def add_ingest_errors(db: sqlite3.Connection, errors: Sequence[IngestErrors]) -> None:
    db.executemany(
        "INSERT INTO ingest_errors VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET"
        " n = n + excluded.n",
        [
            (math.floor(e.hour / _HOUR), e.cluster, e.node, e.source, e.reason, e.count)
            for e in errors
            if e.count > 0
        ],
    )


def ingest_errors(db: sqlite3.Connection, start: float, end: float) -> list[IngestErrors]:
    if not has_review_tables(db):
        return []
    return [
        IngestErrors(int(hour) * _HOUR, str(c), str(n), str(s), str(reason), int(count))
        for hour, c, n, s, reason, count in db.execute(
            "SELECT hour, cluster, node, source, reason, n FROM ingest_errors"
            " WHERE hour >= ? AND hour < ? ORDER BY hour, cluster, node, source, reason",
            (math.floor(start / _HOUR), math.ceil(end / _HOUR)),
        )
    ]


def _strings(db: sqlite3.Connection, ids: list[int]) -> dict[int, str]:
    out: dict[int, str] = {}
    for at in range(0, len(ids), 500):
        chunk = ids[at : at + 500]
        marks = ",".join("?" * len(chunk))
        out.update(
            (int(i), str(v))
            for i, v in db.execute(f"SELECT id, value FROM strings WHERE id IN ({marks})", chunk)
        )
    return out
