"""First-seen (new terms): the k3watch extension for "the first time this value appears".

A rule with a ``k3watch.first_seen`` block alerts only when the tuple of values of its
``fields`` has not been seen before. Values seen during the learning period (from when the rule
first ran) build the baseline silently. The baseline can be persisted to a SQLite file so that a
restart does not re-learn; without a file it lives in memory for one run.
"""

from __future__ import annotations

import os
import sqlite3
from collections import OrderedDict
from pathlib import Path
from typing import Any

import orjson

from k3watch.rules.model import FirstSeenSpec

_SCHEMA = """
CREATE TABLE IF NOT EXISTS learning (rule_id TEXT PRIMARY KEY, started REAL NOT NULL);
CREATE TABLE IF NOT EXISTS baseline (
    rule_id TEXT NOT NULL,
    key TEXT NOT NULL,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    PRIMARY KEY (rule_id, key)
);
"""

# Write a key's last-seen time back at most this often (seconds of event time).
_TOUCH_INTERVAL = 3600.0


class BaselineStore:
    """Known value tuples per rule: memory first, optionally backed by a SQLite file.

    Memory holds at most ``max_keys`` per rule (least recently seen evicted); with a file, an
    evicted key is looked up there before it counts as new.
    """

    def __init__(self, path: Path | None = None, max_keys: int = 200_000) -> None:
        self.path = path
        self.max_keys = max_keys
        self._memory: dict[str, OrderedDict[str, float]] = {}
        self._learning: dict[str, float] = {}
        # Writes not flushed yet, also looked up on a memory miss (the key may be evicted).
        self._pending: dict[tuple[str, str], float] = {}
        self._db: sqlite3.Connection | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Created 0600 before SQLite opens it (the -wal and -shm files take its mode): the
            # baseline names users, addresses and clients.
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
            # Built in one thread and used by the server's ingest thread (one at a time).
            self._db = sqlite3.connect(path, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
            for rule_id, started in self._db.execute("SELECT rule_id, started FROM learning"):
                self._learning[rule_id] = float(started)

    def learning_started(self, rule_id: str) -> float | None:
        return self._learning.get(rule_id)

    def start_learning(self, rule_id: str, time: float) -> None:
        if rule_id in self._learning:
            return
        self._learning[rule_id] = time
        if self._db is not None:
            self._db.execute(
                "INSERT OR IGNORE INTO learning (rule_id, started) VALUES (?, ?)", (rule_id, time)
            )

    def last_seen(self, rule_id: str, key: str) -> float | None:
        keys = self._memory.get(rule_id)
        if keys is not None and key in keys:
            return keys[key]
        if self._db is None:
            return None
        pending = self._pending.get((rule_id, key))
        if pending is not None:
            self._remember(rule_id, key, pending)
            return pending
        row = self._db.execute(
            "SELECT last_seen FROM baseline WHERE rule_id = ? AND key = ?", (rule_id, key)
        ).fetchone()
        if row is None:
            return None
        self._remember(rule_id, key, float(row[0]))
        return float(row[0])

    def record(self, rule_id: str, key: str, time: float, previous: float | None) -> None:
        self._remember(rule_id, key, time)
        if self._db is not None and (previous is None or time - previous >= _TOUCH_INTERVAL):
            self._pending[rule_id, key] = max(time, self._pending.get((rule_id, key), time))
            if len(self._pending) >= 1000:
                self.flush()

    def forget(self, rule_id: str, key: str) -> None:
        keys = self._memory.get(rule_id)
        if keys is not None:
            keys.pop(key, None)
        self._pending.pop((rule_id, key), None)
        if self._db is not None:
            self._db.execute("DELETE FROM baseline WHERE rule_id = ? AND key = ?", (rule_id, key))

    def size(self, rule_id: str) -> int:
        return len(self._memory.get(rule_id, ()))

    def flush(self) -> None:
        if self._db is None:
            return
        if self._pending:
            self._db.executemany(
                "INSERT INTO baseline (rule_id, key, first_seen, last_seen) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (rule_id, key) DO UPDATE SET last_seen = "
                "MAX(baseline.last_seen, excluded.last_seen)",
                [(r, k, t, t) for (r, k), t in self._pending.items()],
            )
            self._pending.clear()
        self._db.commit()

    def close(self) -> None:
        self.flush()
        if self._db is not None:
            self._db.close()
            self._db = None

    def _remember(self, rule_id: str, key: str, time: float) -> None:
        keys = self._memory.setdefault(rule_id, OrderedDict())
        keys[key] = max(time, keys.get(key, time))
        keys.move_to_end(key)
        if len(keys) > self.max_keys:
            keys.popitem(last=False)


class FirstSeenTracker:
    """Decides, for one rule, whether a value tuple is new (after the learning period)."""

    def __init__(self, rule_id: str, spec: FirstSeenSpec, store: BaselineStore) -> None:
        self.rule_id = rule_id
        self.spec = spec
        self.store = store
        # Value tuples recorded in the store within the last touch interval, with when: the
        # common case (a value seen again soon) is answered without serializing the key.
        self._recent: dict[tuple[Any, ...], float] = {}

    def start(self, time: float) -> None:
        """Monitoring starts at ``time`` (no-op when the baseline already has a start)."""
        self.store.start_learning(self.rule_id, time)

    def check(self, values: tuple[Any, ...], time: float) -> bool:
        """Record ``values`` at ``time``; True when they are new and learning is over."""
        recorded = self._recent.get(values)
        if recorded is not None and 0.0 <= time - recorded < _TOUCH_INTERVAL:
            return False
        key = orjson.dumps(values, option=orjson.OPT_NON_STR_KEYS).decode()
        started = self.store.learning_started(self.rule_id)
        if started is None:
            self.store.start_learning(self.rule_id, time)
            started = time
        previous = self.store.last_seen(self.rule_id, key)
        forget = self.spec.forget
        if previous is not None and forget is not None and time - previous > forget:
            self.store.forget(self.rule_id, key)
            previous = None
        self.store.record(self.rule_id, key, time, previous)
        if len(self._recent) >= self.store.max_keys:
            self._recent.clear()
        self._recent[values] = time
        if previous is not None:
            return False
        return time - started >= self.spec.learning
