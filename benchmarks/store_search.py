"""Store search: page latency over a large store (10 million events by default).

Builds the store once under ``--dir`` (reused by later runs when it holds enough events) with
the ordinary write path: realistic Metadata-level audit events (``store_ingest.batches``), about
45 days of a busy K3s cluster. Then times a set of realistic searches, each a page of 100,
newest first, repeated ``--rounds`` times: by user, resource and verb, namespace and name,
source IP, status code, decision, free text, time ranges, combinations, a combination that
matches nothing, pagination with a cursor; and a few aggregations. Prints p50/p95/max per query.

Target: p95 < 300 ms for every search.

Run: ``python benchmarks/store_search.py --dir DIR [--events N] [--rounds N]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from k3watch.store.base import AggregateQuery, EventQuery
from k3watch.store.sqlite import SqliteStore
from store_ingest import fill

HOUR = 3600.0
DAY = 86400.0


def build(path: Path, events: int, cache_mb: int) -> None:
    store = SqliteStore(path, cache_mb=cache_mb)
    started = time.perf_counter()
    in_write = fill(store, path, events, "search")
    if in_write is None:
        store.close()
        return
    store.checkpoint()
    store.close()
    size = path.stat().st_size
    print(
        f"built in {time.perf_counter() - started:.0f} s ({events / in_write:,.0f} events/s in"
        f" write); {size / 2**20:,.0f} MiB, {size / events:.1f} bytes/event"
    )


def _filters(start: float | None = None, **values: list[str]) -> EventQuery:
    return EventQuery(start=start, filters=values)


def timed(run: Callable[[], object], rounds: int) -> tuple[list[float], object]:
    times: list[float] = []
    result: object = None
    for _ in range(rounds):
        started = time.perf_counter()
        result = run()
        times.append((time.perf_counter() - started) * 1000)
    return times, result


def report(name: str, times: list[float], detail: str) -> float:
    """Print the first run (caches cold for this query) and percentiles of all runs."""
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    print(
        f"  {name:<42} first {times[0]:7.1f}  p50 {statistics.median(ordered):7.1f}"
        f"  p95 {p95:7.1f}  max {ordered[-1]:7.1f} ms  {detail}"
    )
    return p95


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, required=True, help="where the store is kept")
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--cache-mb", type=int, default=64)
    parser.add_argument("--build-only", action="store_true")
    args = parser.parse_args()

    args.dir.mkdir(parents=True, exist_ok=True)
    path = args.dir / "search.sqlite"
    build(path, args.events, args.cache_mb)
    if args.build_only:
        return
    store = SqliteStore.open_readonly(path, cache_mb=args.cache_mb)  # as the UI's readers see it
    stats = store.stats()
    assert stats.newest is not None and stats.oldest is not None
    newest = stats.newest
    print(
        f"store: {stats.events:,} events over {(newest - stats.oldest) / DAY:.1f} days,"
        f" {stats.bytes / 2**20:,.0f} MiB; page of 100, {args.rounds} rounds each"
    )
    day = newest - DAY
    bob, scheduler = ["bob@example.com"], ["system:kube-scheduler"]
    searches: list[tuple[str, EventQuery]] = [
        ("newest (no filter)", EventQuery()),
        ("user=system:kube-scheduler (5%)", _filters(user=scheduler)),
        ("user=bob@example.com (1%)", _filters(user=bob)),
        ("user=system:admin (0.2%)", _filters(user=["system:admin"])),
        ("resource=secrets verb=get", _filters(resource=["secrets"], verb=["get"])),
        ("resource=secrets verb=list (0.05%)", _filters(resource=["secrets"], verb=["list"])),
        ("namespace=shop name=stripe-api-key",
         _filters(namespace=["shop"], name=["stripe-api-key"])),
        ("source_ip=10.42.2.5", _filters(source_ip=["10.42.2.5"])),
        ("source_ip=10.42.2.86 (rare)", _filters(source_ip=["10.42.2.86"])),
        ("code=403", _filters(code=["403"])),
        ("decision=forbid", _filters(decision=["forbid"])),
        ("text 'exec'", EventQuery(text="exec")),
        ("text pod name 'web-rbp9mhcz7-qnprn'", EventQuery(text="web-rbp9mhcz7-qnprn")),
        ("text 'leases kube-node' (two words)", EventQuery(text="leases kube-node")),
        ("last hour", EventQuery(start=newest - HOUR)),
        ("last day", EventQuery(start=day)),
        ("a day a month ago", EventQuery(start=newest - 30 * DAY, end=newest - 29 * DAY)),
        ("last day user=bob verb=delete", _filters(day, user=bob, verb=["delete"])),
        ("pods delete namespace=shop",
         _filters(resource=["pods"], verb=["delete"], namespace=["shop"])),
        ("last day text 'exec' decision=allow",
         EventQuery(start=day, text="exec", filters={"decision": ["allow"]})),
        ("zero matches: scheduler+secrets+delete",
         _filters(user=scheduler, resource=["secrets"], verb=["delete"])),
        ("zero matches: unknown user", _filters(user=["mallory"])),
        ("zero matches: text 'nosuchword'", EventQuery(text="nosuchword")),
    ]  # fmt: skip
    worst = 0.0
    print("searches:")
    for name, query in searches:
        times, page = timed(lambda q=query: store.search(q), args.rounds)
        found = len(page.events)  # type: ignore[attr-defined]
        worst = max(worst, report(name, times, f"({found} events)"))

    # pagination: ten pages of one query, following the cursor
    def pages(query: EventQuery, count: int) -> list[float]:
        out: list[float] = []
        cursor = None
        for _ in range(count):
            begun = time.perf_counter()
            page = store.search(EventQuery(filters=query.filters, text=query.text, cursor=cursor))
            out.append((time.perf_counter() - begun) * 1000)
            cursor = page.cursor
            if cursor is None:
                break
        return out

    for name, query in [
        ("10 pages, no filter", EventQuery()),
        ("10 pages, user=bob@example.com", EventQuery(filters={"user": ["bob@example.com"]})),
        ("10 pages, text 'exec'", EventQuery(text="exec")),
    ]:
        times = []
        for _ in range(max(1, args.rounds // 5)):
            times += pages(query, 10)
        worst = max(worst, report(name, times, "(per page)"))
    print(f"worst p95 of the searches: {worst:.1f} ms (target < 300 ms)")

    print("aggregations:")
    aggregations = [
        ("events per hour, last day", AggregateQuery(start=day, end=newest + 1, bucket=HOUR)),
        ("per hour by verb, last day", AggregateQuery(start=day, end=newest + 1, bucket=HOUR,
                                                      by="verb")),
        ("by user, last day", AggregateQuery(start=day, end=newest + 1, by="user", limit=10)),
        ("per hour, user=bob, last day", AggregateQuery(start=day, end=newest + 1, bucket=HOUR,
                                                        filters={"user": bob})),
        ("by decision, everything", AggregateQuery(by="decision")),
        ("per day, everything", AggregateQuery(bucket=DAY)),
        ("by user, everything", AggregateQuery(by="user", limit=10)),
    ]  # fmt: skip
    for name, aggregate in aggregations:
        times, buckets = timed(lambda a=aggregate: store.aggregate(a), max(3, args.rounds // 4))
        report(name, times, f"({len(buckets)} buckets)")  # type: ignore[arg-type]
    store.close()


if __name__ == "__main__":
    main()
