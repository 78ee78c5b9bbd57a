"""Review report: build and render the 7-day security review over a large store.

Fills a store once under ``--dir`` (reused by later runs) with the ordinary write path:
realistic Metadata-level audit events (``store_ingest.batches``, about 45 days of a busy K3s
cluster at 10 million events), plus what a real server also keeps and the bulk events lack:
component-log lines of the API server's audit webhook failing, alerts of the built-in rules
with some triaged, and rejected input counted by the ingest pipeline. Then, in a fresh process
(so that the peak memory is the report's), builds the report for the last 7 days of the data
and renders it in every format, ``--rounds`` times.

Also times the web UI's overview page (its data from the store's roll-ups, its charts, its
HTML) for the last 24 hours and the last 7 days of the data.

Targets at 10 million events: the report, build + render (html), under 5 s; the overview page
under 1 s.

Run: ``python benchmarks/review_report.py --dir DIR [--events N] [--rounds N]``.
"""

from __future__ import annotations

import argparse
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

from k3watch.rules.loader import load_rules
from k3watch.store.base import (
    AlertChange,
    AlertRecord,
    Batch,
    IncomingEvent,
    IngestErrors,
)
from k3watch.store.sqlite import SqliteStore
from store_ingest import NODES, fill

DAY = 86400.0
FORMATS = ("json", "md", "html", "pdf")


def fill_with_extras(path: Path, events: int) -> None:
    store = SqliteStore(path)
    started = time.perf_counter()
    in_write = fill(store, path, events, "review")
    if in_write is None:
        store.close()
        return
    newest = store.stats().newest or time.time()
    _extras(store, newest)
    store.checkpoint()
    store.close()
    size = path.stat().st_size
    print(
        f"filled in {time.perf_counter() - started:.0f} s ({events / in_write:,.0f} events/s in"
        f" write); {size / 2**20:,.0f} MiB"
    )


def _extras(store: SqliteStore, newest: float) -> None:
    """Webhook failures in the K3s log, alerts (some triaged) and rejected input."""
    rng = random.Random(7)
    logs = []
    for i in range(300):
        when = newest - rng.uniform(0, 7 * DAY)
        lost = rng.choice((1, 17, 400))
        raw = {
            "kind": "k3watch.log/v1",
            "time": when,
            "message": f"Error in audit plugin 'webhook' affecting {lost} audit events: Post"
            f' "https://10.0.0.{i % 3 + 1}:9765/k8s-audit": dial tcp: connection refused',
            "level": "error",
            "host": NODES[i % 3],
        }
        logs.append(IncomingEvent(f"k3s-journal@{i}", when, raw))
    store.write(Batch("review-logs", "prod", NODES[1], "journald", logs, newest))
    ruleset = load_rules([], builtin=True)
    rules = [r.info for r in ruleset.all()][:40]
    alerts = []
    for i in range(3000):
        info = rules[min(len(rules) - 1, int(rng.expovariate(0.25)))]
        first = newest - rng.uniform(0, 9 * DAY)
        alerts.append(
            AlertRecord(
                fingerprint=f"bench-{i}",
                rule_id=info.id,
                title=info.title,
                severity=info.severity.label,
                tags=info.tags,
                cluster="prod",
                group={"user": f"user-{i % 50}"},
                summary=f"{info.title} by user-{i % 50}",
                first_seen=first,
                last_seen=min(newest, first + rng.uniform(0, DAY)),
                count=rng.randint(1, 20),
                event_keys=(),
                user=f"user-{i % 50}",
            )
        )
    store.write(Batch("review-alerts", "prod", NODES[0], "audit", [], newest), alerts)
    actions = ("ack", "resolve", "false_positive")
    for alert_id in rng.sample(range(1, 3001), 900):
        store.change_alert(alert_id, AlertChange("reviewer", rng.choice(actions), "bench"))
    store.add_ingest_errors(
        [
            IngestErrors(newest - rng.uniform(0, 7 * DAY), "prod", rng.choice(NODES), "audit", r, n)
            for r, n in (("json", 3), ("not_object", 1), ("http_413", 1), ("json", 7))
        ]
    )


def measure(path: Path, rounds: int, policy: str | None) -> None:
    from k3watch.review.render import render
    from k3watch.review.report import ReviewOptions, build_report

    started = time.perf_counter()
    ruleset = load_rules([], builtin=True)
    print(f"rules loaded in {time.perf_counter() - started:.2f} s (not counted below)")
    store = SqliteStore.open_readonly(path)
    stats = store.stats()
    assert stats.newest is not None
    end = stats.newest + 1
    print(f"store: {stats.events:,} events, {stats.bytes / 2**20:,.0f} MiB; report ends {end:.0f}")
    options = ReviewOptions(start=end - 7 * DAY, end=end)
    builds: list[float] = []
    renders: dict[str, list[float]] = {f: [] for f in FORMATS}
    sizes: dict[str, int] = {}
    for _ in range(rounds):
        begun = time.perf_counter()
        report = build_report(store, options, ruleset=ruleset)
        builds.append(time.perf_counter() - begun)
        for fmt in FORMATS:
            begun = time.perf_counter()
            data = render(report, fmt)
            renders[fmt].append(time.perf_counter() - begun)
            sizes[fmt] = len(data)
    store.close()
    print(
        f"period: {report.period.days:g} days, {report.events.total:,} events in it;"
        f" {report.alerts.total:,} alerts"
    )
    print(f"build: first {builds[0]:.2f} s, best {min(builds):.2f} s ({rounds} rounds)")
    for fmt in FORMATS:
        times = renders[fmt]
        print(
            f"render {fmt:<4}: first {times[0]:.2f} s, best {min(times):.2f} s"
            f"  ({sizes[fmt] / 1024:,.0f} KiB)"
        )
    html = builds[0] + renders["html"][0]
    print(f"build + render html (first round): {html:.2f} s (target < 5 s)")
    if policy is not None:
        begun = time.perf_counter()
        build_report(
            SqliteStore.open_readonly(path),
            ReviewOptions(start=end - 7 * DAY, end=end, policy=policy),
            ruleset=ruleset,
        )
        print(f"build with --policy {policy}: {time.perf_counter() - begun:.2f} s")
    overview_page(path, end, rounds)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {peak:,.0f} MiB")


def overview_page(path: Path, end: float, rounds: int) -> None:
    """The overview page as the server makes it, without HTTP (the data ends at ``end``)."""
    from k3watch.web import overview
    from k3watch.web.render import page

    store = SqliteStore.open_readonly(path)
    for period in ("24h", "7d"):
        times = []
        for _ in range(rounds):
            begun = time.perf_counter()
            data = overview.gather(store, end, overview.PERIODS[period])
            html = page("overview.html", None, reviews=[], **overview.context(data, period))
            times.append(time.perf_counter() - begun)
        print(
            f"overview page, last {period}: first {times[0]:.2f} s, best {min(times):.2f} s"
            f" ({data.events:,} events, {len(html.body) / 1024:,.0f} KiB; target < 1 s)"
        )
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, required=True, help="where the store is kept")
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--policy", default=None, help="also time the policy coverage check")
    parser.add_argument("--fill-only", action="store_true")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    path = args.dir / "review.sqlite"
    if args.measure:
        measure(path, args.rounds, args.policy)
        return
    args.dir.mkdir(parents=True, exist_ok=True)
    fill_with_extras(path, args.events)
    if args.fill_only:
        return
    command = [sys.executable, __file__, "--dir", str(args.dir), "--measure"]
    command += ["--rounds", str(args.rounds)]
    if args.policy:
        command += ["--policy", args.policy]
    raise SystemExit(subprocess.run(command, check=False).returncode)


if __name__ == "__main__":
    main()
