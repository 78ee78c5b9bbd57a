"""Events, batches and a reference matcher for the SQLite store tests."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from k3watch.store.base import Batch, IncomingEvent, StoredEvent, field_values
from k3watch.store.sqlite import SqliteStore
from k3watch.store.sqlite_schema import Layout

T0 = 1_772_524_800.0  # 2026-03-03T08:00:00Z
SMALL = Layout(segment_bits=6, block_bits=3)
"""64 ids per segment, 8 per block: a few hundred events exercise sealed segments."""


def open_store(directory: Path, layout: Layout = SMALL, name: str = "store.sqlite") -> SqliteStore:
    return SqliteStore(directory / name, _layout=layout)


def stamp(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def audit(
    n: int,
    t: float,
    *,
    user: str = "alice",
    verb: str = "get",
    resource: str | None = "pods",
    namespace: str | None = "default",
    name: str | None = None,
    ip: str = "10.0.0.1",
    code: int = 200,
    decision: str = "allow",
    stage: str = "ResponseComplete",
    uri: str | None = None,
) -> dict[str, Any]:
    """An audit event; its audit ID is derived from ``n``."""
    name = name if name is not None else f"pod-{n % 7}"
    ref: dict[str, Any] = {"resource": resource, "namespace": namespace, "name": name}
    ref = {k: v for k, v in ref.items() if v is not None} | {"apiVersion": "v1"}
    path = f"/api/v1/namespaces/{namespace}/{resource}/{name}"
    return {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": f"0000{n:04x}-0000-4000-8000-{n:012d}",
        "stage": stage,
        "requestURI": uri if uri is not None else path,
        "verb": verb,
        "user": {"username": user, "groups": ["system:authenticated"]},
        "sourceIPs": [ip],
        "userAgent": "kubectl/v1.31.4 (linux/amd64) kubernetes/a562d09",
        "objectRef": ref,
        "responseStatus": {"metadata": {}, "code": code},
        "requestReceivedTimestamp": stamp(t - 0.01),
        "stageTimestamp": stamp(t),
        "annotations": {"authorization.k8s.io/decision": decision},
    }


def incoming(
    raw: dict[str, Any], t: float, *, body: bool = True, key: str | None = None
) -> IncomingEvent:
    """An IncomingEvent for ``raw`` (keyed ``auditID/stage`` unless ``key`` is given)."""
    if key is None:
        key = f"{raw['auditID']}/{raw['stage']}" if "auditID" in raw else f"log@{t}"
    return IncomingEvent(key, t, raw, orjson.dumps(raw) if body else None)


def batch(
    batch_id: str,
    events: Sequence[IncomingEvent],
    *,
    cluster: str = "prod",
    node: str = "server-1",
    source: str = "audit",
) -> Batch:
    return Batch(
        batch_id, cluster, node, source, list(events), received=events[0].time if events else 0.0
    )


def write_many(
    store: SqliteStore,
    raws: Iterable[tuple[dict[str, Any], float]],
    per_batch: int = 50,
    prefix: str = "b",
    **where: str,
) -> list[IncomingEvent]:
    """Write events in batches; return them in the order written."""
    written: list[IncomingEvent] = []
    pending: list[IncomingEvent] = []
    number = 0
    for raw, t in raws:
        pending.append(incoming(raw, t))
        if len(pending) == per_batch:
            store.write(batch(f"{prefix}-{number}", pending, **where))
            written += pending
            pending = []
            number += 1
    if pending:
        store.write(batch(f"{prefix}-{number}", pending, **where))
        written += pending
    return written


_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)


def _tokens(text: str) -> list[str]:
    return [t.lower() for t in _TOKEN.findall(text)]


def text_matches(text: str | None, query: str) -> bool:
    """The reference for full-text search: every word's tokens occur consecutively, the last
    token of the last word as a prefix."""
    words = [w for w in query.split() if any(c.isalnum() for c in w)]
    if not words:
        return True
    if text is None:
        return False
    tokens = _tokens(text)
    for number, word in enumerate(words):
        phrase = _tokens(word)
        prefix = number == len(words) - 1
        found = False
        for start in range(len(tokens) - len(phrase) + 1):
            window = tokens[start : start + len(phrase)]
            if window[:-1] == phrase[:-1] and (
                window[-1].startswith(phrase[-1]) if prefix else window[-1] == phrase[-1]
            ):
                found = True
                break
        if not found:
            return False
    return True


def matches(
    event: IncomingEvent,
    origin: Mapping[str, str],
    filters: Mapping[str, Sequence[str]],
    text: str | None = None,
    start: float | None = None,
    end: float | None = None,
) -> bool:
    """The reference for a search: what the store must return for ``event``."""
    if start is not None and event.time < start:
        return False
    if end is not None and event.time >= end:
        return False
    values: dict[str, Any] = {**field_values(event.raw), **origin}
    for name, accepted in filters.items():
        value = values.get(name)
        if value is None or str(value) not in {str(a) for a in accepted}:
            return False
    return text is None or text_matches(values.get("text"), text)


def wait_for_merge(store: SqliteStore, keys: int, timeout: float = 30.0) -> int:
    """Wake the store's background thread until ``keyidx`` holds ``keys`` entries (or time is
    up); return how many it holds."""
    assert store._maintenance is not None
    db = store._db()
    deadline = time.monotonic() + timeout
    while True:
        merged = int(db.execute("SELECT count(*) FROM keyidx").fetchone()[0])
        if merged >= keys or time.monotonic() > deadline:
            return merged
        store._maintenance.poke()
        time.sleep(0.01)


def keys(events: Iterable[StoredEvent | IncomingEvent]) -> list[str]:
    return [e.key for e in events]


def newest_first(events: Iterable[IncomingEvent]) -> list[str]:
    """Keys in the store's order, given events in the order they were written."""
    indexed = list(enumerate(events))
    indexed.sort(key=lambda item: (item[1].time, item[0]), reverse=True)
    return [e.key for _, e in indexed]
