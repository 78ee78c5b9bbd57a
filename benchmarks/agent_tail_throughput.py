"""The agent's tailing throughput: lines read from a file, parsed, batched and written to the
spool (fsync included), per second, in the agent's own reading loop.

For each kind, writes ``--lines`` lines to a file, then runs an agent (``--once``, one
source) over it in this process up to the spool, without forwarding: the reading half, which
is what decides how fast a node's logs can be followed. Prints lines/s, the events in the
spool, and the process's peak RSS.

- ``audit``: generated K3s audit events (about 1.2 KB each), ``audit_file`` source;
- ``containerd``: real containerd log lines (from the project's parser test data, repeated),
  ``file`` source with the ``containerd`` parser.

Target: over 50,000 lines/s.

Run: ``python benchmarks/agent_tail_throughput.py [--lines N] [--kind audit|containerd]``.
"""

from __future__ import annotations

import argparse
import itertools
import resource
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec

from k3watch.agent.config import AgentConfig
from k3watch.agent.run import Agent
from k3watch.process import tune_gc
from k3watch.sample import iter_events_bulk

CONTAINERD = Path(__file__).parent.parent / "tests/golden/containerd/containerd_log.input"


def lines_of(kind: str, count: int) -> Iterator[bytes]:
    if kind == "audit":
        return iter_events_bulk(count, 11)
    sample = [line + b"\n" for line in CONTAINERD.read_bytes().splitlines() if line.strip()]
    return itertools.islice(itertools.cycle(sample), count)


def run(kind: str, count: int) -> None:
    with tempfile.TemporaryDirectory(prefix="k3watch-tail-") as tmp:
        path = Path(tmp) / f"{kind}.log"
        with path.open("wb") as out:
            lines = lines_of(kind, count)
            while chunk := list(itertools.islice(lines, 10_000)):
                out.write(b"".join(chunk))
        source: dict[str, object] = (
            {"type": "audit_file", "path": str(path)}
            if kind == "audit"
            else {"type": "file", "path": str(path), "format": kind}
        )
        config = msgspec.convert(
            {
                "server": "http://127.0.0.1:9",  # never reached: nothing is forwarded here
                "token": "unused",
                "spool_dir": str(Path(tmp) / "agent"),
                "spool_max_size": "4GiB",
                "start_at": "beginning",
                "sources": [source],
            },
            AgentConfig,
        )
        agent = Agent(config, once=True)
        tune_gc()
        started = time.perf_counter()
        agent._read()  # the reading loop alone, up to the spool (run() would also forward)
        seconds = time.perf_counter() - started
        spooled = agent.spool.backlog_events
        agent._close_sources()
        agent.spool.close()
    print(
        f"{kind}: {count:,} lines in {seconds:.2f}s = {count / seconds:,.0f} lines/s; "
        f"{spooled:,} events in the spool; peak RSS "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--kind", choices=["audit", "containerd", "all"], default="all")
    args = parser.parse_args()
    for kind in ("audit", "containerd") if args.kind == "all" else (args.kind,):
        run(kind, args.lines)


if __name__ == "__main__":
    main()
