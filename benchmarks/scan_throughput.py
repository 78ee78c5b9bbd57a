"""Scan throughput: parse-only against parse + every built-in rule, in one process.

Builds a large realistic K3s audit stream (1,000,000 events by default, deterministic, written
once to a temporary file), then measures, best of interleaved rounds:

  a. parse only: the scan's own line reader and ``orjson.loads`` on every line;
  b. the whole scan chain: reader, audit parser, ``Event``, the rule engine with every built-in
     rule and correlation, and alert suppression (``k3watch.scan.scan``).

Prints events/s for both, the ratio b/a (target: at least 0.5 on one core; the median of the
per-round ratios, since a shared machine's speed drifts between rounds), the number of rules and
alerts, and peak RSS.

Run: ``python benchmarks/scan_throughput.py [--events N] [--rounds N]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import orjson

from k3watch.rules.engine import index_stats
from k3watch.rules.loader import load_rules
from k3watch.sample import iter_events_bulk
from k3watch.scan import ScanOptions, scan
from k3watch.sources.files import InputFile, iter_lines, open_input

MAX_LINE = 256 * 1024 * 1024


def write_stream(path: Path, count: int, seed: int) -> int:
    size = 0
    with path.open("wb") as out:
        batch: list[bytes] = []
        for line in iter_events_bulk(count, seed):
            batch.append(line)
            size += len(line)
            if len(batch) >= 8192:
                out.write(b"".join(batch))
                batch.clear()
        out.write(b"".join(batch))
    return size


def parse_only(path: Path) -> tuple[int, float]:
    """Reader + orjson.loads per line: the floor any scan pays."""
    loads = orjson.loads
    events = 0
    started = time.perf_counter()
    with open_input(InputFile(str(path), path, None)) as stream:
        for _, line in iter_lines(stream, MAX_LINE):
            if isinstance(line, bytes) and isinstance(loads(line), dict):
                events += 1
    return events, time.perf_counter() - started


def full_scan(path: Path, ruleset: object) -> tuple[int, float, int]:
    alerts = 0

    def on_alert(_alert: object) -> None:
        nonlocal alerts
        alerts += 1

    started = time.perf_counter()
    result = scan([str(path)], ruleset, ScanOptions(), on_alert=on_alert, on_error=print)  # type: ignore[arg-type]
    return result.events, time.perf_counter() - started, alerts


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    ruleset = load_rules()
    print(
        f"rules: {len(ruleset.event_rules)} event rules, {len(ruleset.correlations)} "
        f"correlations, {ruleset.filters} filters; index: {index_stats(ruleset.event_rules)}"
    )
    with tempfile.TemporaryDirectory(prefix="k3watch-bench-") as tmp:
        path = Path(tmp) / "audit.log"
        started = time.perf_counter()
        size = write_stream(path, args.events, args.seed)
        print(
            f"stream: {args.events:,} events, {size / 2**20:,.0f} MiB "
            f"({size / args.events:,.0f} bytes/event), generated in "
            f"{time.perf_counter() - started:.1f} s; peak RSS so far {peak_rss_mib():.0f} MiB"
        )
        best_a = best_b = float("inf")
        events_a = events_b = alerts = 0
        ratios: list[float] = []
        for round_ in range(1, args.rounds + 1):
            events_a, seconds_a = parse_only(path)
            events_b, seconds_b, alerts = full_scan(path, ruleset)
            best_a, best_b = min(best_a, seconds_a), min(best_b, seconds_b)
            # The machine's speed drifts: compare the two measurements of the same round.
            ratios.append((events_b / seconds_b) / (events_a / seconds_a))
            print(
                f"round {round_}: parse-only {events_a / seconds_a:,.0f} ev/s, "
                f"full scan {events_b / seconds_b:,.0f} ev/s, ratio {ratios[-1]:.2f}"
            )
        rate_a, rate_b = events_a / best_a, events_b / best_b
        print(f"(a) parse only:           {rate_a:>10,.0f} events/s (best round)")
        print(f"(b) parse + all rules:    {rate_b:>10,.0f} events/s (best round, {alerts} alerts)")
        print(
            f"ratio b/a:                {statistics.median(ratios):>10.2f}  "
            f"(median of rounds; best/best {rate_b / rate_a:.2f}; target >= 0.50)"
        )
        print(f"peak RSS:                 {peak_rss_mib():>10.0f} MiB  (pid {os.getpid()})")


if __name__ == "__main__":
    main()
