"""Memory of a long scan: stream gigabytes of audit log through ``k3watch scan -``.

Generates realistic K3s audit events (deterministic) and pipes them, without touching the disk,
into a ``k3watch scan -`` child process with every built-in rule, then prints how much was
scanned, how fast, and the child's peak resident memory (the OS's own accounting). The scan's
state must stay flat however long the stream: target under 300 MiB for 5 GB.

Run: ``python benchmarks/scan_memory.py [--gigabytes 5]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time

from k3watch.sample import iter_events_bulk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gigabytes", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    target = int(args.gigabytes * 1e9)

    child = subprocess.Popen(
        [sys.executable, "-m", "k3watch", "scan", "-", "--format", "json", "--quiet"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert child.stdin is not None and child.stdout is not None
    alerts = 0

    def count_alerts() -> None:  # drain the child's output, or it blocks on a full pipe
        nonlocal alerts
        assert child.stdout is not None
        alerts = sum(1 for _ in child.stdout)

    reader = threading.Thread(target=count_alerts)
    reader.start()
    started = time.perf_counter()
    sent = events = 0
    batch: list[bytes] = []
    # About 1.2 KB an event: ask for enough events, stop at the byte target.
    for line in iter_events_bulk(target // 1000 + 1, args.seed):
        batch.append(line)
        sent += len(line)
        events += 1
        if len(batch) >= 4096:
            child.stdin.write(b"".join(batch))
            batch.clear()
        if sent >= target:
            break
    child.stdin.write(b"".join(batch))
    child.stdin.close()
    reader.join()
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    print(f"scanned:  {sent / 1e9:.2f} GB, {events:,} events, {alerts} alerts, exit {status >> 8}")
    print(f"speed:    {events / seconds:,.0f} events/s ({seconds:.0f} s, generator included)")
    print(f"peak RSS: {usage.ru_maxrss / 1024:.0f} MiB (k3watch scan process; target < 300 MiB)")


if __name__ == "__main__":
    main()
