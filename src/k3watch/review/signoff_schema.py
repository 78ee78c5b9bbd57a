"""The tables of ``reviews.sqlite``, the triggers that keep signed reviews immutable, and
reading a review back from its rows.

A review's checklist is copied into ``review_items`` when it is opened, so that a later change
of the configured checklist never changes a review. ``review_history`` keeps every change made
while the review was open. Signing off sets ``state = 'signed'`` and the chain columns
(``seq``, ``prev``, ``hash``) in the same transaction as the last history row; from then on the
triggers refuse any UPDATE or DELETE of the review, its items, findings and history (and any
INSERT of new ones), and ``chain_head`` may only move forward by one.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

from k3watch.review.signoff_model import Change, Finding, ItemRecord, Review, SignOff

SCHEMA = """
CREATE TABLE IF NOT EXISTS reviews (
    id INTEGER PRIMARY KEY,
    schedule TEXT NOT NULL,
    period TEXT NOT NULL,
    period_start REAL NOT NULL,
    period_end REAL NOT NULL,
    description TEXT NOT NULL,
    opened_by TEXT NOT NULL,
    opened_at REAL NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('open', 'signed')),
    signed_by TEXT,
    signed_at REAL,
    statement TEXT,
    seq INTEGER UNIQUE,
    prev TEXT,
    hash TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS reviews_one_open
    ON reviews (schedule, period_start) WHERE state = 'open';
CREATE INDEX IF NOT EXISTS reviews_by_period ON reviews (schedule, period_start);
CREATE TABLE IF NOT EXISTS review_items (
    review_id INTEGER NOT NULL REFERENCES reviews (id),
    position INTEGER NOT NULL,
    item TEXT NOT NULL,
    text TEXT NOT NULL,
    section TEXT,
    state TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'done', 'not_applicable', 'issue')),
    note TEXT NOT NULL DEFAULT '',
    actor TEXT,
    at REAL,
    PRIMARY KEY (review_id, item)
);
CREATE TABLE IF NOT EXISTS review_findings (
    id INTEGER PRIMARY KEY,
    review_id INTEGER NOT NULL REFERENCES reviews (id),
    text TEXT NOT NULL,
    severity TEXT NOT NULL,
    alert_ids TEXT NOT NULL,
    event_keys TEXT NOT NULL,
    owner TEXT,
    due REAL,
    item TEXT,
    actor TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS review_findings_by_review ON review_findings (review_id);
CREATE TABLE IF NOT EXISTS review_history (
    id INTEGER PRIMARY KEY,
    review_id INTEGER NOT NULL REFERENCES reviews (id),
    at REAL NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS review_history_by_review ON review_history (review_id);
CREATE TABLE IF NOT EXISTS chain_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL
);
INSERT OR IGNORE INTO chain_head (id, seq, hash) VALUES (1, 0, '{genesis}');
CREATE TABLE IF NOT EXISTS schedules (
    name TEXT PRIMARY KEY,
    tracked_since REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS overdue (
    schedule TEXT NOT NULL,
    period_start REAL NOT NULL,
    period TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    raised REAL NOT NULL,
    resolved REAL,
    PRIMARY KEY (schedule, period_start)
);
"""

_SIGNED = "(SELECT state FROM reviews WHERE id = {row}.review_id) = 'signed'"
_REFUSE = "BEGIN SELECT RAISE(ABORT, 'signed reviews are immutable'); END;"
TRIGGERS: dict[str, str] = {
    "reviews_signed_update": "BEFORE UPDATE ON reviews WHEN OLD.state = 'signed'",
    "reviews_signed_delete": "BEFORE DELETE ON reviews WHEN OLD.state = 'signed'",
    "chain_head_forward": "BEFORE UPDATE ON chain_head WHEN NEW.seq != OLD.seq + 1",
    "chain_head_delete": "BEFORE DELETE ON chain_head",
}
for _table in ("review_items", "review_findings", "review_history"):
    TRIGGERS[f"{_table}_signed_insert"] = (
        f"BEFORE INSERT ON {_table} WHEN {_SIGNED.format(row='NEW')}"
    )
    TRIGGERS[f"{_table}_signed_update"] = (
        f"BEFORE UPDATE ON {_table} WHEN {_SIGNED.format(row='OLD')}"
    )
    TRIGGERS[f"{_table}_signed_delete"] = (
        f"BEFORE DELETE ON {_table} WHEN {_SIGNED.format(row='OLD')}"
    )

GENESIS = "0" * 64


def create(db: sqlite3.Connection) -> None:
    """Create the tables and triggers that are missing."""
    script = SCHEMA.format(genesis=GENESIS)
    for name, when in TRIGGERS.items():
        script += f"CREATE TRIGGER IF NOT EXISTS {name} {when} {_REFUSE}\n"
    db.executescript(script)


def missing_triggers(db: sqlite3.Connection) -> list[str]:
    present = {
        str(name) for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
    }
    return [name for name in TRIGGERS if name not in present]


REVIEW_COLUMNS = (
    "id, schedule, period, period_start, period_end, description, opened_by, opened_at, state,"
    " signed_by, signed_at, statement, seq, prev, hash"
)


def read_review(db: sqlite3.Connection, review_id: int) -> Review | None:
    """The review with its items, findings and history (inside the caller's transaction)."""
    row = db.execute(f"SELECT {REVIEW_COLUMNS} FROM reviews WHERE id = ?", (review_id,)).fetchone()
    return None if row is None else review_of(db, row)


def read_reviews(
    db: sqlite3.Connection, where: str = "", params: tuple[Any, ...] = ()
) -> list[Review]:
    sql = f"SELECT {REVIEW_COLUMNS} FROM reviews {where}"
    return [review_of(db, row) for row in db.execute(sql, params).fetchall()]


def review_of(db: sqlite3.Connection, row: tuple[Any, ...]) -> Review:
    (ident, schedule, period, start, end, description, opened_by, opened_at, state) = row[:9]
    signed_by, signed_at, statement, seq, prev, digest = row[9:]
    items = tuple(
        ItemRecord(str(i), str(t), s, st, str(n), a, w)
        for i, t, s, st, n, a, w in db.execute(
            "SELECT item, text, section, state, note, actor, at FROM review_items"
            " WHERE review_id = ? ORDER BY position",
            (ident,),
        )
    )
    findings = tuple(
        Finding(
            id=int(f_id),
            text=str(text),
            severity=str(severity),
            alert_ids=tuple(int(a) for a in orjson.loads(alerts)),
            event_keys=tuple(str(k) for k in orjson.loads(keys)),
            owner=owner,
            due=due,
            item=item,
            actor=str(actor),
            at=float(at),
        )
        for f_id, text, severity, alerts, keys, owner, due, item, actor, at in db.execute(
            "SELECT id, text, severity, alert_ids, event_keys, owner, due, item, actor, at"
            " FROM review_findings WHERE review_id = ? ORDER BY id",
            (ident,),
        )
    )
    history = tuple(
        Change(float(at), str(actor), action, str(subject), str(detail))
        for at, actor, action, subject, detail in db.execute(
            "SELECT at, actor, action, subject, detail FROM review_history"
            " WHERE review_id = ? ORDER BY id",
            (ident,),
        )
    )
    signoff = None
    if state == "signed" or seq is not None:
        signoff = SignOff(
            reviewer=str(signed_by),
            at=float(signed_at) if signed_at is not None else 0.0,
            statement=str(statement),
            seq=int(seq) if seq is not None else 0,
            prev=str(prev),
            hash=str(digest),
        )
    return Review(
        id=int(ident),
        schedule=str(schedule),
        period=str(period),
        period_start=float(start),
        period_end=float(end),
        description=str(description),
        opened_by=str(opened_by),
        opened_at=float(opened_at),
        items=items,
        findings=findings,
        history=history,
        signoff=signoff,
    )
