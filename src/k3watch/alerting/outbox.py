"""The persistent outbox: alerts wait here, per destination, until the destination has them.

An alert is queued once per destination in a SQLite file (WAL, mode 0600, ``synchronous=FULL``
so that a queued alert survives a power cut) and leaves the queue only when the destination
accepted it, when it is older than ``max_age`` (``dropped{expired}``), when the destination
rejected it as invalid (``dropped{rejected}``) or when the queue is full
(``dropped{overflow}``). Every drop is logged and counted; nothing else loses an alert.

Failed attempts are retried with exponential backoff and jitter: the n-th retry waits
``retry_delay × 2^(n-1)``, capped at ``max_delay``, minus a random part of up to ``jitter`` of
it (so that many alerts failing together do not retry together). The last attempt happens at
``max_age``, and only an attempt that fails at or after ``max_age`` expires an alert.

Delivery is at-least-once: an alert is removed after the destination confirmed it, so a
crash (or a timeout after the receiver did get it) between the two sends it again. Receivers
de-duplicate with the idempotency key (see ``Notification.idempotency_key``). One process
uses an outbox file at a time.

``DeliveryWorker`` (in ``k3watch.alerting.delivery``) runs the deliveries in the background.
"""

from __future__ import annotations

import logging
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from k3watch.alerting.config import OutboxConfig, seconds
from k3watch.alerting.sinks.destination import DeliveryError
from k3watch.telemetry import Counters

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    destination TEXT NOT NULL,
    key TEXT NOT NULL,
    severity INTEGER NOT NULL,
    payload BLOB NOT NULL,
    created REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL,
    last_error TEXT NOT NULL DEFAULT '',
    UNIQUE (destination, key)
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (destination, next_attempt);
CREATE INDEX IF NOT EXISTS outbox_overflow ON outbox (severity, id);
"""
_COLUMNS = "id, destination, key, severity, payload, created, attempts, next_attempt, last_error"
OVERFLOW_LOG_INTERVAL = 60.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When to try again, and when to give up (seconds)."""

    retry_delay: float = 1.0
    max_delay: float = 300.0
    max_age: float = 86400.0
    jitter: float = 0.5  # up to this fraction of each delay is random

    @classmethod
    def from_config(cls, config: OutboxConfig) -> RetryPolicy:
        return cls(
            retry_delay=seconds(config.retry_delay),
            max_delay=seconds(config.max_delay),
            max_age=seconds(config.max_age),
        )

    def delay(self, failures: int, rand: float) -> float:
        """Wait after the ``failures``-th failed attempt; ``rand`` is uniform in [0, 1)."""
        base = min(self.max_delay, self.retry_delay * 2.0 ** min(failures - 1, 60))
        return base * (1.0 - self.jitter * rand)


@dataclass(frozen=True, slots=True)
class Entry:
    """One alert to queue for one destination (``severity`` orders overflow drops)."""

    destination: str
    key: str
    payload: bytes
    severity: int = 0


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A queued alert as stored."""

    id: int
    destination: str
    key: str
    severity: int
    payload: bytes
    created: float
    attempts: int
    next_attempt: float
    last_error: str


class Outbox:
    """A thread-safe, persistent, bounded queue of alerts per destination."""

    def __init__(
        self,
        path: Path | str,
        policy: RetryPolicy | None = None,
        *,
        max_items: int = 100_000,
        overflow: Literal["drop_oldest", "reject_new"] = "drop_oldest",
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.path = Path(path)
        self.policy = policy or RetryPolicy()
        self.max_items = max_items
        self.overflow = overflow
        self.clock = clock
        self._rand = rand
        self.counters = Counters("outbox")
        self._per_destination: dict[str, Counters] = {}
        self._lock = threading.Lock()
        self._last_overflow_log = -OVERFLOW_LOG_INTERVAL
        self._db = _open(self.path)
        self._size = int(self._db.execute("SELECT count(*) FROM outbox").fetchone()[0])

    @classmethod
    def from_config(
        cls,
        config: OutboxConfig,
        path: Path | str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> Outbox:
        """An outbox with the configured limits (``path`` resolved by the caller)."""
        return cls(
            path,
            RetryPolicy.from_config(config),
            max_items=config.max_items,
            overflow=config.overflow,
            clock=clock,
        )

    def use_counters(self, destination: str, counters: Counters) -> None:
        """Count what happens to ``destination``'s alerts (sent, failed, dropped) in
        ``counters``: the destination's own, so that its metrics are in one place."""
        with self._lock:
            self._per_destination[destination] = counters

    def counters_of(self, destination: str) -> Counters:
        """The counters of ``destination``'s alerts."""
        counters = self._per_destination.get(destination)
        if counters is None:
            counters = self._per_destination[destination] = Counters(f"destination_{destination}")
        return counters

    def __len__(self) -> int:
        return self._size

    def enqueue(self, entries: Iterable[Entry]) -> int:
        """Queue ``entries`` in one transaction; return how many were queued.

        An entry whose key is still queued for its destination is ignored (same alert state),
        so submitting the same alert twice before it is delivered sends it once.
        """
        now = self.clock()
        queued = 0
        with self._lock, self._db:
            for entry in entries:
                if self._size >= self.max_items:
                    if self._queued(entry):
                        self.counters.inc("duplicate")
                        continue  # nothing to make room for
                    if not self._make_room(entry):
                        continue
                cursor = self._db.execute(
                    "INSERT OR IGNORE INTO outbox (destination, key, severity, payload, created,"
                    " next_attempt) VALUES (?, ?, ?, ?, ?, ?)",
                    (entry.destination, entry.key, entry.severity, entry.payload, now, now),
                )
                if cursor.rowcount:
                    self._size += 1
                    queued += 1
                    self.counters.inc("queued")
                    self.counters_of(entry.destination).inc("queued")
                else:
                    self.counters.inc("duplicate")
        return queued

    def due(self, destination: str, limit: int, now: float | None = None) -> list[OutboxItem]:
        """Up to ``limit`` items of ``destination`` whose next attempt is due, in queue order."""
        now = self.clock() if now is None else now
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM outbox WHERE destination = ? AND next_attempt <= ?"
                " ORDER BY id LIMIT ?",
                (destination, now, limit),
            ).fetchall()
        return [OutboxItem(*row) for row in rows]

    def delivered(self, items: Sequence[OutboxItem]) -> None:
        """The destination has ``items``: forget them."""
        if not items:
            return
        with self._lock, self._db:
            removed = self._delete(items)
            self.counters.inc("delivered", removed)
            for destination, count in _by_destination(items).items():
                self.counters_of(destination).inc("sent", count)

    def failed(
        self, items: Sequence[OutboxItem], error: DeliveryError, now: float | None = None
    ) -> list[OutboxItem]:
        """An attempt to deliver ``items`` failed: schedule their retry, or drop the ones that
        are expired or were rejected. Return the dropped items."""
        if not items:
            return []
        now = self.clock() if now is None else now
        message = str(error)[:1000]
        retry: list[tuple[float, int, str, int]] = []
        expired: list[OutboxItem] = []
        for item in items:
            deadline = item.created + self.policy.max_age
            if not error.permanent and now >= deadline:
                expired.append(item)
                continue
            delay = self.policy.delay(item.attempts + 1, self._rand())
            if error.retry_after is not None:
                delay = min(max(delay, error.retry_after), self.policy.max_delay)
            # The last attempt is made at the deadline, not after it.
            retry.append((min(now + delay, deadline), item.attempts + 1, message, item.id))
        rejected = list(items) if error.permanent else []
        with self._lock, self._db:
            for item in items:
                self.counters_of(item.destination).inc("failed", reason=error.reason)
            if not error.permanent:
                self._db.executemany(
                    "UPDATE outbox SET next_attempt = ?, attempts = ?, last_error = ? WHERE id = ?",
                    retry,
                )
                self.counters.inc("retried", len(retry))
            self._delete([*expired, *rejected])
            self._dropped(expired, "expired", message, attempted=True)
            self._dropped(rejected, "rejected", message, attempted=True)
        return [*expired, *rejected]

    def drop(self, items: Sequence[OutboxItem], reason: str, detail: str = "") -> None:
        """Remove ``items`` without delivering them (logged and counted under ``reason``)."""
        with self._lock, self._db:
            self._delete(items)
            self._dropped(items, reason, detail, attempted=False)

    def expire_unserved(self, served: Iterable[str], now: float | None = None) -> int:
        """Drop items past ``max_age`` whose destination is no longer configured."""
        now = self.clock() if now is None else now
        names = sorted(set(served))
        marks = ",".join("?" * len(names))
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM outbox WHERE created <= ?"
                + (f" AND destination NOT IN ({marks})" if names else ""),
                (now - self.policy.max_age, *names),
            ).fetchall()
        items = [OutboxItem(*row) for row in rows]
        if items:
            self.drop(items, "expired", "its destination is no longer configured")
        return len(items)

    def pending(self, destination: str | None = None) -> int:
        """How many items are queued (for one destination, or in all)."""
        if destination is None:
            return self._size
        with self._lock:
            row = self._db.execute(
                "SELECT count(*) FROM outbox WHERE destination = ?", (destination,)
            ).fetchone()
        return int(row[0])

    def items(self, destination: str | None = None) -> list[OutboxItem]:
        """Every queued item (of one destination), in queue order: for inspection and tests."""
        where, args = ("WHERE destination = ?", (destination,)) if destination else ("", ())
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM outbox {where} ORDER BY id", args
            ).fetchall()
        return [OutboxItem(*row) for row in rows]

    def next_attempt(self, destination: str) -> float | None:
        """When the earliest item of ``destination`` is due (None when it has none)."""
        with self._lock:
            row = self._db.execute(
                "SELECT min(next_attempt) FROM outbox WHERE destination = ?", (destination,)
            ).fetchone()
        return None if row[0] is None else float(row[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- internals (called with the lock held) ---

    def _queued(self, entry: Entry) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM outbox WHERE destination = ? AND key = ?",
            (entry.destination, entry.key),
        ).fetchone()
        return row is not None

    def _make_room(self, entry: Entry) -> bool:
        """Apply the overflow policy for ``entry``; True when it may now be inserted."""
        victim_row = None
        if self.overflow == "drop_oldest":
            victim_row = self._db.execute(
                f"SELECT {_COLUMNS} FROM outbox ORDER BY severity, id LIMIT 1"
            ).fetchone()
        if victim_row is None or victim_row[3] > entry.severity:
            # Rejecting the newcomer: the policy says so, or everything queued matters more.
            self.counters.inc("dropped", reason="overflow")
            self.counters_of(entry.destination).inc("dropped", reason="overflow")
            self._log_overflow(f"new alert {entry.key} for {entry.destination} refused")
            return False
        victim = OutboxItem(*victim_row)
        self._delete([victim])
        self.counters.inc("dropped", reason="overflow")
        self.counters_of(victim.destination).inc("dropped", reason="overflow")
        self._log_overflow(f"queued alert {victim.key} for {victim.destination} dropped")
        return True

    def _delete(self, items: Sequence[OutboxItem]) -> int:
        cursor = self._db.executemany("DELETE FROM outbox WHERE id = ?", [(i.id,) for i in items])
        removed = max(int(cursor.rowcount), 0)
        self._size -= removed
        return removed

    def _dropped(
        self, items: Sequence[OutboxItem], reason: str, detail: str, *, attempted: bool
    ) -> None:
        for item in items:
            self.counters.inc("dropped", reason=reason)
            self.counters_of(item.destination).inc("dropped", reason=reason)
            log.warning(
                "alert %s for destination %s dropped (%s) after %d attempt(s): %s",
                item.key,
                item.destination,
                reason,
                item.attempts + attempted,
                detail or item.last_error or "no error recorded",
            )

    def _log_overflow(self, what: str) -> None:
        # Throttled: a flood fills the queue with thousands of drops a second.
        now = time.monotonic()
        if now - self._last_overflow_log >= OVERFLOW_LOG_INTERVAL:
            self._last_overflow_log = now
            log.warning(
                "outbox full (%d alerts): %s; %d dropped for overflow so far",
                self.max_items,
                what,
                self.counters.get("dropped", "overflow"),
            )


def _open(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created 0600 before SQLite opens it; SQLite gives the -wal and -shm files the same mode.
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    if path.stat().st_mode & 0o077:
        log.warning("outbox %s was readable by others; setting its mode to 0600", path)
        os.chmod(path, 0o600)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
        db.execute("PRAGMA busy_timeout = 5000")
        db.executescript(SCHEMA)
    except sqlite3.DatabaseError:
        db.close()
        raise
    # Explicit transactions from here on (``with db``), one per call.
    db.isolation_level = "DEFERRED"
    return db


def _by_destination(items: Iterable[OutboxItem]) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item.destination] = out.get(item.destination, 0) + 1
    return out
