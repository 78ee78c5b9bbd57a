"""Alerts, their history and event keys, and silences, in the SQLite store.

An alert is identified by its fingerprint (rule + group). ``merge`` folds an engine record into
the stored alert: a new fingerprint opens an alert; a repeat adds its count and event keys and
widens first/last seen; a resolved alert that occurs again is reopened; an alert marked as a
false positive stays one. Every status change is kept in ``alert_history``.
"""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from k3watch.store.base import (
    ALERT_FILTERS,
    AlertChange,
    AlertPage,
    AlertQuery,
    AlertRecord,
    AlertStatus,
    Matcher,
    RuleHits,
    Silence,
    StoredAlert,
)

MAX_EVENT_KEYS = 100
"""Event keys kept per alert (the first ones)."""
SYSTEM_ACTOR = "k3watch"
COUNT_FIELDS = ("status", "severity", "rule_id", "cluster")
_COLUMNS = (
    "id, fingerprint, rule_id, title, severity, status, tags, cluster, namespace, user, grp,"
    " summary, first_seen, last_seen, count, assignee, silenced_by, created, updated"
)
_STATUS_OF: dict[str, AlertStatus] = {
    "ack": "acknowledged",
    "resolve": "resolved",
    "false_positive": "false_positive",
    "reopen": "open",
}
_ACTIONS = {"ack", "resolve", "false_positive", "reopen", "assign", "note", "occurred"}


def merge(db: sqlite3.Connection, records: Sequence[AlertRecord], now: float) -> None:
    """Store or merge ``records`` (inside the caller's transaction)."""
    for record in records:
        row = db.execute(
            "SELECT id, status, keys FROM alerts WHERE fingerprint = ?", (record.fingerprint,)
        ).fetchone()
        tags = orjson.dumps(list(record.tags)).decode()
        if row is None:
            cursor = db.execute(
                "INSERT INTO alerts (fingerprint, rule_id, title, severity, status, tags, cluster,"
                " namespace, user, grp, summary, first_seen, last_seen, count, assignee,"
                " silenced_by, created, updated) VALUES"
                " (?, ?, ?, ?, 'open', ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?)",
                (
                    record.fingerprint,
                    record.rule_id,
                    record.title,
                    record.severity,
                    tags,
                    record.cluster,
                    record.namespace,
                    record.user,
                    _json(record.group),
                    record.summary,
                    record.first_seen,
                    record.last_seen,
                    record.count,
                    record.silenced_by,
                    now,
                    now,
                ),
            )
            alert_id, keys = int(cursor.lastrowid or 0), 0
            _history(db, alert_id, AlertChange(SYSTEM_ACTOR, "occurred", time=now))
        else:
            alert_id, status, keys = int(row[0]), str(row[1]), int(row[2])
            if status == "resolved":
                status = "open"
                _history(
                    db,
                    alert_id,
                    AlertChange(SYSTEM_ACTOR, "reopen", "occurred again", time=now),
                )
            db.execute(
                "UPDATE alerts SET title = ?, severity = ?, tags = ?, summary = ?, status = ?,"
                " count = count + ?, first_seen = min(first_seen, ?),"
                " last_seen = max(last_seen, ?), silenced_by = ?, updated = ? WHERE id = ?",
                (
                    record.title,
                    record.severity,
                    tags,
                    record.summary,
                    status,
                    record.count,
                    record.first_seen,
                    record.last_seen,
                    record.silenced_by,
                    now,
                    alert_id,
                ),
            )
        room = MAX_EVENT_KEYS - keys
        if room > 0 and record.event_keys:
            added = 0
            for key in dict.fromkeys(record.event_keys):
                if added >= room:
                    break
                cursor = db.execute(
                    "INSERT OR IGNORE INTO alert_events (alert_id, key) VALUES (?, ?)",
                    (alert_id, key),
                )
                added += max(cursor.rowcount, 0)
            if added:
                db.execute("UPDATE alerts SET keys = keys + ? WHERE id = ?", (added, alert_id))


def change(db: sqlite3.Connection, alert_id: int, change: AlertChange, now: float) -> None:
    """Apply a person's change (inside the caller's transaction); KeyError when unknown."""
    if change.action not in _ACTIONS:
        raise ValueError(f"unknown alert action {change.action!r}")
    row = db.execute("SELECT status, assignee FROM alerts WHERE id = ?", (alert_id,)).fetchone()
    if row is None:
        raise KeyError(alert_id)
    status, assignee = row
    status = _STATUS_OF.get(change.action, status)
    if change.action == "assign":
        assignee = change.assignee
    when = change.time or now
    db.execute(
        "UPDATE alerts SET status = ?, assignee = ?, updated = ? WHERE id = ?",
        (status, assignee, when, alert_id),
    )
    _history(
        db,
        alert_id,
        AlertChange(change.actor, change.action, change.note, change.assignee, when),
    )


def _history(db: sqlite3.Connection, alert_id: int, change: AlertChange) -> None:
    db.execute(
        "INSERT INTO alert_history (alert_id, time, actor, action, note, assignee)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (alert_id, change.time, change.actor, change.action, change.note, change.assignee),
    )


def get(db: sqlite3.Connection, alert_id: int) -> StoredAlert | None:
    row = db.execute(f"SELECT {_COLUMNS} FROM alerts WHERE id = ?", (alert_id,)).fetchone()
    if row is None:
        return None
    keys = tuple(
        str(k)
        for (k,) in db.execute(
            "SELECT key FROM alert_events WHERE alert_id = ? ORDER BY id", (alert_id,)
        )
    )
    history = tuple(
        AlertChange(actor, action, note, assignee, time)
        for time, actor, action, note, assignee in db.execute(
            "SELECT time, actor, action, note, assignee FROM alert_history"
            " WHERE alert_id = ? ORDER BY id",
            (alert_id,),
        )
    )
    return _alert(row, keys, history)


def query(db: sqlite3.Connection, q: AlertQuery) -> AlertPage:
    where: list[str] = []
    params: list[Any] = []
    for name, values in q.filters.items():
        if name not in ALERT_FILTERS:
            raise ValueError(f"unknown alert filter {name!r}")
        if values:
            where.append(f"{name} IN ({','.join('?' * len(values))})")
            params.extend(values)
    if q.start is not None:
        where.append("last_seen >= ?")
        params.append(q.start)
    if q.end is not None:
        where.append("last_seen < ?")
        params.append(q.end)
    if q.cursor:
        last_seen, last_id = decode_cursor(q.cursor)
        where.append("(last_seen < ? OR (last_seen = ? AND id < ?))")
        params.extend((last_seen, last_seen, last_id))
    limit = max(1, q.limit)
    sql = f"SELECT {_COLUMNS} FROM alerts"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY last_seen DESC, id DESC LIMIT ?"
    rows = db.execute(sql, (*params, limit + 1)).fetchall()
    alerts = [_alert(row, (), ()) for row in rows[:limit]]
    cursor = None
    if len(rows) > limit:
        cursor = encode_cursor(alerts[-1].last_seen, alerts[-1].id)
    return AlertPage(alerts, cursor)


def counts(db: sqlite3.Connection, by: str, start: float | None) -> dict[str, int]:
    if by not in COUNT_FIELDS:
        raise ValueError(f"alerts cannot be counted by {by!r}")
    where, params = ("WHERE last_seen >= ?", (start,)) if start is not None else ("", ())
    return {
        str(value): int(n)
        for value, n in db.execute(
            f"SELECT {by}, count(*) FROM alerts {where} GROUP BY {by} ORDER BY 2 DESC, 1", params
        )
    }


def rule_hits(db: sqlite3.Connection, start: float | None) -> list[RuleHits]:
    where, params = ("WHERE last_seen >= ?", (start,)) if start is not None else ("", ())
    return [
        RuleHits(str(rule), int(n), int(total), last, int(fp))
        for rule, n, total, last, fp in db.execute(
            "SELECT rule_id, count(*), sum(count), max(last_seen),"
            f" sum(status = 'false_positive') FROM alerts {where}"
            " GROUP BY rule_id ORDER BY 3 DESC, 1",
            params,
        )
    ]


def _alert(
    row: Sequence[Any], keys: tuple[str, ...], history: tuple[AlertChange, ...]
) -> StoredAlert:
    return StoredAlert(
        id=int(row[0]),
        fingerprint=row[1],
        rule_id=row[2],
        title=row[3],
        severity=row[4],
        status=row[5],
        tags=tuple(orjson.loads(row[6])),
        cluster=row[7],
        namespace=row[8],
        user=row[9],
        group=orjson.loads(row[10]),
        summary=row[11],
        first_seen=row[12],
        last_seen=row[13],
        count=int(row[14]),
        assignee=row[15],
        silenced_by=row[16],
        created=row[17],
        updated=row[18],
        event_keys=keys,
        history=history,
    )


def _json(value: object) -> str:
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def encode_cursor(time: float, item: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([time, item])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, int]:
    """``(time, id)`` of an opaque cursor; ValueError when it is not one of ours."""
    try:
        data = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        time, item = orjson.loads(data)
        if not isinstance(item, int) or not isinstance(time, int | float):
            raise TypeError
        return float(time), item
    except (ValueError, TypeError) as exc:
        raise ValueError(f"invalid cursor {cursor!r}") from exc


# --- silences ---


def add_silence(db: sqlite3.Connection, silence: Silence, now: float) -> Silence:
    stored = Silence(
        silence.id,
        tuple(silence.matchers),
        silence.starts,
        silence.ends,
        silence.created_by,
        silence.comment,
        silence.created or now,
    )
    matchers = orjson.dumps(
        [
            {"name": m.name, "value": m.value, "regex": m.regex, "equal": m.equal}
            for m in stored.matchers
        ]
    ).decode()
    db.execute(
        "INSERT OR REPLACE INTO silences (id, matchers, starts, ends, created_by, comment,"
        " created) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            stored.id,
            matchers,
            stored.starts,
            stored.ends,
            stored.created_by,
            stored.comment,
            stored.created,
        ),
    )
    return stored


def silences(db: sqlite3.Connection, active_at: float | None) -> list[Silence]:
    sql = "SELECT id, matchers, starts, ends, created_by, comment, created FROM silences"
    params: tuple[float, ...] = ()
    if active_at is not None:
        sql += " WHERE starts <= ? AND ends > ?"
        params = (active_at, active_at)
    sql += " ORDER BY created DESC, starts DESC, id"
    return [_silence(row) for row in db.execute(sql, params)]


def get_silence(db: sqlite3.Connection, silence_id: str) -> Silence | None:
    row = db.execute(
        "SELECT id, matchers, starts, ends, created_by, comment, created FROM silences"
        " WHERE id = ?",
        (silence_id,),
    ).fetchone()
    return _silence(row) if row else None


def _silence(row: Sequence[Any]) -> Silence:
    matchers = tuple(
        Matcher(str(m["name"]), str(m["value"]), bool(m["regex"]), bool(m["equal"]))
        for m in orjson.loads(row[1])
    )
    return Silence(row[0], matchers, row[2], row[3], row[4], row[5], row[6])
