"""The node agent's footprint while it follows an audit log written at a steady rate.

Starts ``k3watch server`` (plain HTTP on loopback, a fresh data directory) and
``k3watch agent`` as their own processes; the agent follows an audit log (``audit_file``
source) and forwards to the server. This process then appends realistic K3s audit events to
the log at ``--rate`` events/s (ten writes a second) for ``--seconds`` seconds, waits until
the agent has delivered everything, and prints:

- the agent's peak RSS (``VmHWM`` from ``/proc/<pid>/status``) and its RSS at the end;
- the agent's CPU use over the writing period, as a percentage of one core (``utime`` +
  ``stime`` from ``/proc/<pid>/stat``; start-up is not counted);
- events written, events the agent acknowledged (its ``/metrics``), and events the server
  stored (the server's ``/metrics``).

Targets: RSS under 80 MB and CPU under 5% of one core at 1,000 events/s.

Run: ``python benchmarks/agent_footprint.py [--rate N] [--seconds N] [--local]``; ``--local``
turns on ``agent.local_rules`` (every built-in rule, alerts to a JSON-lines file).
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from k3watch.sample import iter_events_bulk
from k3watch.server.tokens import Role, TokenStore

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_up(url: str, process: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            if httpx.get(url).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise SystemExit(f"{what} did not start: {log.read_text(errors='replace')}")


def start_server(tmp: Path, port: int) -> tuple[subprocess.Popen[bytes], str, str]:
    """The server process, an agent token and a viewer token."""
    data = tmp / "server"
    data.mkdir(mode=0o700)
    config = tmp / "server.yaml"
    config.write_text(
        f"""
server:
  data_dir: {data}
  listen: 127.0.0.1:{port}
  insecure_http: true
""",
        encoding="utf-8",
    )
    with TokenStore(data / "tokens.sqlite") as tokens:
        _, agent_token = tokens.create("bench-agent", Role.AGENT)
        _, viewer_token = tokens.create("bench-viewer", Role.VIEWER)
    process = subprocess.Popen(
        [sys.executable, "-m", "k3watch", "server", "--config", str(config), "--no-builtin"],
        stdout=subprocess.DEVNULL,
        stderr=(tmp / "server.log").open("wb"),  # a file: an unread pipe would fill up
    )
    wait_until_up(f"http://127.0.0.1:{port}/readyz", process, "the server", tmp / "server.log")
    return process, agent_token, viewer_token


def start_agent(
    tmp: Path, server: str, token: str, audit_log: Path, metrics_port: int, local_rules: bool
) -> subprocess.Popen[bytes]:
    (tmp / "agent.token").write_text(token, encoding="utf-8")
    config = tmp / "agent.yaml"
    config.write_text(
        f"""
agent:
  server: {server}
  token: $file:{tmp / "agent.token"}
  node: bench-node
  spool_dir: {tmp / "agent"}
  metrics_listen: 127.0.0.1:{metrics_port}
  sources:
    - type: audit_file
      path: {audit_log}
"""
        + (
            f"""  local_rules: true
alerting:
  destinations:
    - name: node-file
      type: file
      path: {tmp / "node-alerts.jsonl"}
"""
            if local_rules
            else ""
        ),
        encoding="utf-8",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "k3watch", "agent", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=(tmp / "agent.log").open("wb"),  # a file: an unread pipe would fill up
    )
    wait_until_up(
        f"http://127.0.0.1:{metrics_port}/healthz", process, "the agent", tmp / "agent.log"
    )
    return process


def cpu_seconds(pid: int) -> float:
    # Fields after the command name (which may hold spaces, hence the rpartition).
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def memory_mib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def metric(text: str, name: str) -> int:
    match = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.MULTILINE)
    return int(float(match.group(1))) if match else 0


def write_at_rate(path: Path, lines: list[bytes], rate: int, seconds: int) -> None:
    """Append ``lines`` in ten writes a second, ``rate`` lines a second."""
    per_tick = max(1, rate // 10)
    start = time.monotonic()
    with path.open("ab", buffering=0) as out:
        for tick in range(seconds * 10):
            pause = start + tick / 10 - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            out.write(b"".join(lines[tick * per_tick : (tick + 1) * per_tick]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=1000, help="events per second")
    parser.add_argument("--seconds", type=int, default=30, help="how long to write")
    parser.add_argument(
        "--local", action="store_true", help="with agent.local_rules (every built-in rule)"
    )
    args = parser.parse_args()
    total = args.rate // 10 * 10 * args.seconds
    lines = list(iter_events_bulk(total, 21))
    with tempfile.TemporaryDirectory(prefix="k3watch-agent-bench-") as name:
        tmp = Path(name)
        audit_log = tmp / "audit.log"
        audit_log.touch()
        port, metrics_port = free_port(), free_port()
        server, agent_token, viewer_token = start_server(tmp, port)
        agent = None
        try:
            agent = start_agent(
                tmp, f"http://127.0.0.1:{port}", agent_token, audit_log, metrics_port, args.local
            )
            time.sleep(1.0)  # let start-up settle: it is not what is measured
            idle = memory_mib(agent.pid, "VmRSS")
            cpu_before, started = cpu_seconds(agent.pid), time.monotonic()
            write_at_rate(audit_log, lines, args.rate, args.seconds)
            cpu_after, elapsed = cpu_seconds(agent.pid), time.monotonic() - started
            agent_metrics = f"http://127.0.0.1:{metrics_port}/metrics"
            deadline = time.monotonic() + 60
            acked = 0
            while time.monotonic() < deadline:
                text = httpx.get(agent_metrics).text
                acked = metric(text, 'k3watch_agent_events_total{stage="acked"}')
                if acked >= total:
                    break
                time.sleep(0.2)
            peak, rss = memory_mib(agent.pid, "VmHWM"), memory_mib(agent.pid, "VmRSS")
            stored = metric(
                httpx.get(
                    f"http://127.0.0.1:{port}/metrics",
                    headers={"Authorization": f"Bearer {viewer_token}"},
                ).text,
                'k3watch_ingest_stored_total{reason=""}',
            )
        finally:
            if agent is not None:
                agent.terminate()
                agent.wait(30)
            server.terminate()
            server.wait(30)
    cpu = (cpu_after - cpu_before) / elapsed * 100
    print(f"agent at {args.rate:,} events/s for {args.seconds} s ({total:,} events written)")
    print(f"  peak RSS (VmHWM): {peak:.1f} MiB  target < 80 MB")
    print(f"  RSS after start-up {idle:.1f} MiB, at the end {rss:.1f} MiB")
    print(f"  CPU: {cpu:.1f}% of one core while writing                   target < 5%")
    print(f"  delivered: {acked:,} events acknowledged by the server; stored: {stored:,}")
    if agent is not None and agent.returncode != 0:
        print(f"  agent exit code {agent.returncode}")
    print(f"(machine: {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
