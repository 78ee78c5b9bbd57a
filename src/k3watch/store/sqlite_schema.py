"""The SQLite store's file: schema, connection settings and layout constants.

Layout in short (``docs/store.md`` has the reasoning and the measured sizes):

* ``events`` — one row per event in arrival order (``id``); the searchable fields are small
  integers (ids in ``strings``, ``0`` when absent) and the event itself is a zstd frame
  (``body``) of its key and JSON. The low-cardinality fields (cluster, node, source, verb,
  decision, code, stage) are one column, ``kind``, an id in ``kinds``. No per-row secondary
  index: indexes are built per sealed segment of ``Layout.segment`` ids as compressed lists
  (``postings``).
* ``keyidx`` — key hash → id for idempotence, merged from the unindexed tail in bulk.
* ``blocks`` — time bounds of every ``BLOCK`` consecutive ids, for newest-first ordering.
* ``rollup`` — events per hour and kind, for the overview.
* ``seen``, ``activity``, ``ingest_errors`` — roll-ups for the review report, kept by the
  writer per batch (``REVIEW_SCHEMA``): first and last time of every user and source IP,
  events per minute and origin, rejected input per hour and origin.
* ``batches`` — the hash chain; ``alerts``, ``alert_events``, ``alert_history``,
  ``silences``, ``retention_log``, ``dicts`` (zstd dictionaries), ``meta`` (counters).
"""

from __future__ import annotations

import os
import sqlite3
import stat
from dataclasses import dataclass
from pathlib import Path

FORMAT_VERSION = 1

SEGMENT_BITS = 15
"""2^15 ids per sealed segment (the unit of the field indexes); 16 at most (offsets are
16-bit)."""
BLOCK_BITS = 10
"""2^10 ids per block (the unit of time bounds)."""
MMAP_SIZE = 0x7FFF0000
"""Bytes of the file read through a memory map (SQLite's usual build limit, 2 GiB)."""
MAX_STRING = 1024
"""Longer field values are cut to this many characters before they are indexed."""

# Searchable columns of ``events`` and their field number in ``postings``.
COLUMNS = ("kind", "usr", "res", "ns", "nm", "ip", "txt")
FIELD_COLUMN = {
    "user": "usr",
    "resource": "res",
    "namespace": "ns",
    "name": "nm",
    "source_ip": "ip",
    "text": "txt",
}
FIELD_NUMBER = {column: number for number, column in enumerate(COLUMNS)}
ORIGIN_FIELDS = ("cluster", "node", "source")
MINUTE_SQL = "CAST(t / 60.0 AS INTEGER) - (t / 60.0 < CAST(t / 60.0 AS INTEGER))"
"""The minute of ``t`` (floor, also for negative times)."""
KIND_FIELDS = ("cluster", "node", "source", "verb", "decision", "code", "stage")
"""Fields folded into ``events.kind``: a kind is an origin and a verb, decision, code, stage."""

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE strings (id INTEGER PRIMARY KEY, value TEXT NOT NULL UNIQUE);
CREATE VIRTUAL TABLE text_fts USING fts5 (value, content='', columnsize=0);
CREATE TABLE origins (
    id INTEGER PRIMARY KEY,
    cluster TEXT NOT NULL,
    node TEXT NOT NULL,
    source TEXT NOT NULL,
    UNIQUE (cluster, node, source)
);
CREATE TABLE kinds (
    id INTEGER PRIMARY KEY,
    org INTEGER NOT NULL,
    vb INTEGER NOT NULL,
    dec INTEGER NOT NULL,
    code INTEGER NOT NULL,
    stg INTEGER NOT NULL,
    UNIQUE (org, vb, dec, code, stg)
);
CREATE TABLE dicts (id INTEGER PRIMARY KEY, data BLOB NOT NULL, sha BLOB NOT NULL,
                    created REAL NOT NULL, samples INTEGER NOT NULL);
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    h INTEGER NOT NULL,
    t REAL NOT NULL,
    kind INTEGER NOT NULL,
    usr INTEGER NOT NULL,
    res INTEGER NOT NULL,
    ns INTEGER NOT NULL,
    nm INTEGER NOT NULL,
    ip INTEGER NOT NULL,
    txt INTEGER NOT NULL,
    z INTEGER NOT NULL,
    body BLOB NOT NULL
);
CREATE TABLE keyidx (h INTEGER PRIMARY KEY, id INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE blocks (b INTEGER PRIMARY KEY, min_t REAL NOT NULL, max_t REAL NOT NULL);
CREATE TABLE postings (
    id INTEGER PRIMARY KEY,
    f INTEGER NOT NULL,
    v INTEGER NOT NULL,
    seg INTEGER NOT NULL,
    n INTEGER NOT NULL,
    offsets BLOB NOT NULL
);
CREATE UNIQUE INDEX postings_key ON postings (f, v, seg);
CREATE INDEX postings_seg ON postings (seg, f);
CREATE TABLE rollup (
    hour INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (hour, kind)
) WITHOUT ROWID;
CREATE TABLE batches (
    seq INTEGER PRIMARY KEY,
    batch_id TEXT NOT NULL UNIQUE,
    cluster TEXT NOT NULL,
    node TEXT NOT NULL,
    source TEXT NOT NULL,
    received REAL NOT NULL,
    first_rowid INTEGER,
    last_rowid INTEGER,
    events INTEGER NOT NULL,
    min_t REAL,
    max_t REAL,
    strings_hi INTEGER NOT NULL,
    origins_hi INTEGER NOT NULL,
    kinds_hi INTEGER NOT NULL,
    digest BLOB NOT NULL,
    vocab BLOB NOT NULL,
    prev BLOB NOT NULL,
    hash BLOB NOT NULL,
    pruned INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE retention_log (
    id INTEGER PRIMARY KEY,
    time REAL NOT NULL,
    policy TEXT NOT NULL,
    events_deleted INTEGER NOT NULL,
    batches_deleted INTEGER NOT NULL,
    bytes_after INTEGER NOT NULL
);
CREATE TABLE alerts (
    id INTEGER PRIMARY KEY,
    fingerprint TEXT NOT NULL UNIQUE,
    rule_id TEXT NOT NULL,
    title TEXT NOT NULL,
    severity TEXT NOT NULL,
    status TEXT NOT NULL,
    tags TEXT NOT NULL,
    cluster TEXT NOT NULL,
    namespace TEXT,
    user TEXT,
    grp TEXT NOT NULL,
    summary TEXT NOT NULL,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    count INTEGER NOT NULL,
    assignee TEXT,
    silenced_by TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    keys INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX alerts_last_seen ON alerts (last_seen, id);
CREATE TABLE alert_events (
    id INTEGER PRIMARY KEY,
    alert_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    UNIQUE (alert_id, key)
);
CREATE TABLE alert_history (
    id INTEGER PRIMARY KEY,
    alert_id INTEGER NOT NULL,
    time REAL NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    note TEXT NOT NULL,
    assignee TEXT
);
CREATE INDEX alert_history_alert ON alert_history (alert_id, id);
CREATE TABLE silences (
    id TEXT PRIMARY KEY,
    matchers TEXT NOT NULL,
    starts REAL NOT NULL,
    ends REAL NOT NULL,
    created_by TEXT NOT NULL,
    comment TEXT NOT NULL,
    created REAL NOT NULL
);
"""

REVIEW_SCHEMA = """
CREATE TABLE IF NOT EXISTS seen (
    f INTEGER NOT NULL,
    v INTEGER NOT NULL,
    first REAL NOT NULL,
    last REAL NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (f, v)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_first ON seen (f, first);
CREATE TABLE IF NOT EXISTS activity (
    minute INTEGER NOT NULL,
    org INTEGER NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (minute, org)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ingest_errors (
    hour INTEGER NOT NULL,
    cluster TEXT NOT NULL,
    node TEXT NOT NULL,
    source TEXT NOT NULL,
    reason TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (hour, cluster, node, source, reason)
) WITHOUT ROWID;
"""
"""Tables added after format 1 was released: created (and filled from the stored events) when
a store without them is opened for writing; a read-only reader of such a store computes the
same answers from the events."""
REVIEW_TABLES = ("seen", "activity", "ingest_errors")
SEEN_FIELDS = {"user": "usr", "source_ip": "ip"}
"""Fields whose first and last time are kept in ``seen`` (``f`` is the column's field number)."""

# Counters and positions kept in ``meta`` (all integers).
META_DEFAULTS = {
    "format": FORMAT_VERSION,
    "events": 0,  # events stored now
    "sealed": 0,  # segments [0, sealed) have their postings
    "merged_id": 0,  # ids <= merged_id are in keyidx (or deleted)
    "merge_hi": 0,  # a merge round in progress covers ids <= merge_hi
    "merge_slice": 0,  # ... and has merged this many hash slices
    "stale_keys": 0,  # keyidx entries of deleted events
    "gen": 0,  # bumped by retention: cached block bounds are stale
    "segment_bits": SEGMENT_BITS,
    "block_bits": BLOCK_BITS,
}


class StoreFormatError(RuntimeError):
    """The file is not a k3watch store of a format this version reads."""


def create_private_file(path: Path) -> None:
    """Create ``path`` with mode 0600 unless it exists; make an existing one 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for suffix in ("", "-wal", "-shm"):
        name = Path(f"{path}{suffix}")
        try:
            mode = stat.S_IMODE(name.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode != 0o600:
            os.chmod(name, 0o600)


def connect(path: Path, *, readonly: bool, cache_mb: int) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit) with the store's pragmas."""
    if readonly:
        uri = f"{path.resolve().as_uri()}?mode=ro"
        db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    else:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA busy_timeout = 10000")
        db.execute(f"PRAGMA cache_size = {-max(1, cache_mb) * 1024}")
        # Reads through a memory map share the OS page cache between connections and cost no
        # system call per page: key lookups at ten million events take a third of the time.
        db.execute(f"PRAGMA mmap_size = {MMAP_SIZE}")
        db.execute("PRAGMA temp_store = MEMORY")
        if not readonly:
            db.execute("PRAGMA synchronous = NORMAL")
    except sqlite3.Error:
        db.close()
        raise
    return db


def initialize(db: sqlite3.Connection, page_size: int, layout: Layout) -> None:
    """Create the schema in an empty file, or check the format of an existing one."""
    exists = db.execute(
        "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'meta'"
    ).fetchone()
    if exists is None:
        db.execute(f"PRAGMA page_size = {page_size}")
        # Space freed by retention returns to the file system in small steps (see retention).
        db.execute("PRAGMA auto_vacuum = INCREMENTAL")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("BEGIN IMMEDIATE")
        try:
            if db.execute("SELECT 1 FROM sqlite_schema WHERE name = 'meta'").fetchone() is None:
                for statement in (SCHEMA + REVIEW_SCHEMA).split(";"):
                    if statement.strip():
                        db.execute(statement)
                values = {
                    **META_DEFAULTS,
                    "segment_bits": layout.segment_bits,
                    "block_bits": layout.block_bits,
                }
                db.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", values.items())
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    else:
        db.execute("PRAGMA journal_mode = WAL")
    check_format(db)
    if not has_review_tables(db):
        add_review_tables(db)


def has_review_tables(db: sqlite3.Connection) -> bool:
    """Whether the file has the review roll-ups (``REVIEW_SCHEMA``)."""
    marks = ",".join("?" * len(REVIEW_TABLES))
    found = db.execute(
        f"SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name IN ({marks})",
        REVIEW_TABLES,
    ).fetchone()[0]
    return int(found) == len(REVIEW_TABLES)


def add_review_tables(db: sqlite3.Connection) -> None:
    """Create the review roll-ups in a store written by an older version and fill ``seen`` and
    ``activity`` from its events (one pass over them; ``ingest_errors`` starts empty)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        for statement in REVIEW_SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute("DELETE FROM seen")
        db.execute("DELETE FROM activity")
        for column in SEEN_FIELDS.values():
            db.execute(
                f"INSERT INTO seen SELECT {FIELD_NUMBER[column]}, {column}, min(t), max(t),"
                f" count(*) FROM events WHERE {column} != 0 AND t != 0 GROUP BY {column}"
            )
        db.execute(
            f"INSERT INTO activity SELECT {MINUTE_SQL}, k.org, count(*) FROM events e"
            " JOIN kinds k ON k.id = e.kind GROUP BY 1, 2"
        )
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def check_format(db: sqlite3.Connection) -> None:
    try:
        row = db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
    except sqlite3.DatabaseError as exc:
        raise StoreFormatError(f"not a k3watch store: {exc}") from exc
    if row is None or row[0] != FORMAT_VERSION:
        raise StoreFormatError(
            f"store format {row[0] if row else 'unknown'} (this version reads {FORMAT_VERSION})"
        )


def read_meta(db: sqlite3.Connection) -> dict[str, int]:
    return {str(k): int(v) for k, v in db.execute("SELECT key, value FROM meta")}


def set_meta(db: sqlite3.Connection, **values: int) -> None:
    db.executemany("UPDATE meta SET value = ? WHERE key = ?", [(v, k) for k, v in values.items()])


def add_meta(db: sqlite3.Connection, key: str, amount: int) -> None:
    db.execute("UPDATE meta SET value = value + ? WHERE key = ?", (amount, key))


def used_bytes(db: sqlite3.Connection) -> int:
    """Bytes of the file in use: pages minus free pages (the WAL not counted)."""
    pages = int(db.execute("PRAGMA page_count").fetchone()[0])
    free = int(db.execute("PRAGMA freelist_count").fetchone()[0])
    size = int(db.execute("PRAGMA page_size").fetchone()[0])
    return (pages - free) * size


@dataclass(frozen=True, slots=True)
class Layout:
    """How ids are grouped: into segments (field indexes) and blocks (time bounds). A
    property of the file, kept in ``meta``."""

    segment_bits: int = SEGMENT_BITS
    block_bits: int = BLOCK_BITS

    def __post_init__(self) -> None:
        if not 0 < self.block_bits <= self.segment_bits <= 16:
            raise ValueError(f"invalid layout {self}")

    @property
    def segment(self) -> int:
        return 1 << self.segment_bits

    @property
    def block(self) -> int:
        return 1 << self.block_bits

    @property
    def shift(self) -> int:
        """log2 of the blocks per segment."""
        return self.segment_bits - self.block_bits

    def segment_of(self, event_id: int) -> int:
        return (event_id - 1) >> self.segment_bits

    def segment_range(self, seg: int) -> tuple[int, int]:
        """First and last id of a segment."""
        first = (seg << self.segment_bits) + 1
        return first, first + self.segment - 1

    def block_of(self, event_id: int) -> int:
        return (event_id - 1) >> self.block_bits

    def block_range(self, block: int) -> tuple[int, int]:
        first = (block << self.block_bits) + 1
        return first, first + self.block - 1


def read_layout(db: sqlite3.Connection) -> Layout:
    meta = read_meta(db)
    return Layout(meta["segment_bits"], meta["block_bits"])
