"""Store ingest: ``SqliteStore.write`` throughput and disk used per event.

Writes realistic Metadata-level K3s audit events (``iter_events_bulk`` lines with their request
and response objects removed: 600–1,200 bytes of JSON each, ``body`` given) in batches of 1,000,
as the server does, and measures only the time spent in ``write`` (events are generated between
writes). Prints events/s overall and per slice of the run, the batch latency percentiles, then
checkpoints the WAL and prints the file size per event and the share of each table and index.

Targets: ≥ 40,000 events/s; ≤ 250 bytes per event (indexes included) at 1M+ events.

Run: ``python benchmarks/store_ingest.py [--events N] [--batch N] [--dir DIR] [--keep]
[--with-unseen]``.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import orjson

from k3watch.event import parse_time
from k3watch.sample import iter_events_bulk
from k3watch.store.base import Batch, IncomingEvent
from k3watch.store.sqlite import SqliteStore

NODES = ("server-1", "server-2", "server-3")


def metadata_events(count: int, seed: int = 7) -> Iterator[IncomingEvent]:
    """``count`` Metadata-level audit events with their JSON encoding."""
    loads, dumps = orjson.loads, orjson.dumps
    for line in iter_events_bulk(count, seed):
        raw = loads(line)
        raw.pop("requestObject", None)
        raw.pop("responseObject", None)
        raw["level"] = "Metadata"
        key = f"{raw['auditID']}/{raw['stage']}"
        when = parse_time(raw["requestReceivedTimestamp"]) or 0.0
        yield IncomingEvent(key, when, raw, dumps(raw))


def batches(count: int, size: int, seed: int = 7, prefix: str = "bench") -> Iterator[Batch]:
    """The events in batches, round-robin over three API servers of one cluster."""
    pending: list[IncomingEvent] = []
    number = 0
    for event in metadata_events(count, seed):
        pending.append(event)
        if len(pending) == size:
            node = NODES[number % len(NODES)]
            yield Batch(f"{prefix}-{number:08d}", "prod", node, "audit", pending, time.time())
            pending = []
            number += 1
    if pending:
        yield Batch(f"{prefix}-{number:08d}", "prod", NODES[0], "audit", pending, time.time())


def fill(store: SqliteStore, path: Path, events: int, prefix: str) -> float | None:
    """Write ``events`` bulk events into ``store`` (at ``path``) once, printing progress every
    million; the seconds spent in ``write``, or None when the store holds them already (a
    later run reuses it). A store holding fewer is an error: remove it first."""
    have = store.stats().events
    if have >= events:
        print(f"reusing {path} ({have:,} events)")
        return None
    if have:
        raise SystemExit(f"{path} holds {have:,} events, fewer than {events:,}: remove it first")
    print(f"filling {path}: {events:,} events (once; later runs reuse it)")
    started = time.perf_counter()
    in_write = 0.0
    done = 0
    for batch in batches(events, 1000, prefix=prefix):
        begun = time.perf_counter()
        store.write(batch)
        in_write += time.perf_counter() - begun
        done += len(batch.events)
        if done % 1_000_000 == 0:
            print(
                f"  {done:>11,} events, {time.perf_counter() - started:6.0f} s"
                f" ({done / in_write:,.0f} events/s in write)"
            )
    return in_write


def ingest(
    store: SqliteStore, count: int, size: int, report_every: int, unseen: bool
) -> list[float]:
    """Write ``count`` events (asking ``unseen`` first, as the server does, when ``unseen``);
    return the seconds each batch took in the store."""
    seconds: list[float] = []
    written = 0
    slice_events, slice_time = 0, 0.0
    for batch in batches(count, size):
        started = time.perf_counter()
        if unseen:
            store.unseen([e.key for e in batch.events])
        store.write(batch)
        elapsed = time.perf_counter() - started
        seconds.append(elapsed)
        written += len(batch.events)
        slice_events += len(batch.events)
        slice_time += elapsed
        if slice_events >= report_every:
            print(f"  {written:>11,} events: {slice_events / slice_time:>9,.0f} events/s")
            slice_events, slice_time = 0, 0.0
    return seconds


def sizes(path: Path, events: int) -> None:
    db = sqlite3.connect(path)
    try:
        page = db.execute("PRAGMA page_size").fetchone()[0]
        rows = db.execute(
            "SELECT name, count(*), sum(payload) FROM dbstat GROUP BY name ORDER BY 2 DESC"
        ).fetchall()
    except sqlite3.OperationalError as exc:  # no dbstat in this SQLite
        print(f"(no per-table sizes: {exc})")
        return
    finally:
        db.close()
    for name, pages, payload in rows[:12]:
        share = pages * page / events
        print(f"  {name:<24} {share:>7.1f} bytes/event  (payload {payload / events:6.1f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: temp)")
    parser.add_argument("--cache-mb", type=int, default=64)
    parser.add_argument("--keep", action="store_true", help="keep the store file")
    parser.add_argument(
        "--with-unseen", action="store_true", help="call unseen() before each write, as the server"
    )
    args = parser.parse_args()

    directory = args.dir or Path(tempfile.mkdtemp(prefix="k3watch-ingest-"))
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "ingest.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    store = SqliteStore(path, cache_mb=args.cache_mb)
    print(f"writing {args.events:,} Metadata-level events in batches of {args.batch} to {path}")
    every = max(args.events // 10, args.batch)
    seconds = ingest(store, args.events, args.batch, every, args.with_unseen)
    total = sum(seconds)
    ms = sorted(s * 1000 for s in seconds)
    what = "unseen() + write()" if args.with_unseen else "write()"
    print(f"{what}: {args.events / total:>9,.0f} events/s  ({total:.1f} s in the store)")
    print(
        f"batch latency: p50 {statistics.median(ms):.1f} ms, "
        f"p99 {ms[int(len(ms) * 0.99)]:.1f} ms, max {ms[-1]:.1f} ms"
    )
    print("counters:", store.counters.snapshot())
    store.checkpoint()
    stats = store.stats()
    store.close()
    size = path.stat().st_size
    print(
        f"file: {size / 2**20:,.1f} MiB for {stats.events:,} events = "
        f"{size / stats.events:.1f} bytes/event (WAL checkpointed)"
    )
    sizes(path, stats.events)
    if not args.keep and args.dir is None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        os.rmdir(directory)


if __name__ == "__main__":
    main()
