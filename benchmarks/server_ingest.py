"""Server ingest: sustained throughput with live detection into the embedded store, and the time
from the audit webhook to a delivered alert.

Starts ``k3watch server`` as its own process (plain HTTP on loopback, a fresh data directory,
every built-in rule, a webhook destination pointing back at this process), then from this
process:

  1. sustained ingest: ``--clients`` threads (agents on as many nodes) post gzip batches of
     ``--batch`` realistic K3s audit events to ``/api/v1/ingest`` as fast as the server
     answers, for ``--events`` events after ``--warmup`` untimed ones (the workers' rule-index
     caches and the store's first compression dictionary are one-off costs); prints events/s,
     p50/p99 request latency, and CPU per event of the server process, its ingest workers and
     this client;
  2. webhook to alert: posts ``EventList`` batches to ``/k8s-audit`` at ``--rate`` events/s for
     ``--seconds`` seconds, with one new attack event (an exec into a pod of its own) per
     second; the signed webhook the server delivers for each is received here, and the time
     from posting the batch to receiving its alert is recorded: p50/p99/max.

Targets on a 2-core machine: ≥ 20,000 events/s; p99 webhook-to-alert under 1 s at 2,000
events/s; server RSS under 400 MB (the server process and its ingest workers together).

Run: ``python benchmarks/server_ingest.py [--events N] [--clients N] [--workers N] [--rate N]
[--seconds N]``; ``--workers 0`` measures the server with ingest in its own process only.
"""

from __future__ import annotations

import argparse
import gzip
import http.server
import itertools
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson

from k3watch.sample import iter_events_bulk
from k3watch.server.tokens import Role, TokenStore

SECRET = "benchmark-webhook-secret-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Receiver(http.server.ThreadingHTTPServer):
    """Receives the server's webhook deliveries; records when each exec alert arrived."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.arrivals: dict[str, float] = {}


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real receivers do
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        arrived = time.perf_counter()
        try:
            alert = orjson.loads(body)
        except orjson.JSONDecodeError:
            alert = {}
        marker = _marker(alert)
        if marker:
            self.server.arrivals.setdefault(marker, arrived)  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


def _marker(alert: dict[str, Any]) -> str | None:
    text = orjson.dumps(alert).decode()
    start = text.find("bench-pod-")
    return text[start : start + 22] if start >= 0 else None


def start_server(
    data: Path, port: int, hook: str, workers: int | None
) -> tuple[subprocess.Popen[bytes], str]:
    config = data / "k3watch.yaml"
    config.write_text(
        f"""
server:
  data_dir: {data / "store"}
  listen: 127.0.0.1:{port}
  insecure_http: true
  workers: {"null" if workers is None else workers}
  limits:
    requests_per_second: 100000
    queue_events: 400000
alerting:
  outbox:
    retry_delay: 1s
  destinations:
    - name: bench
      type: webhook
      url: {hook}
      secret: {SECRET}
""",
        encoding="utf-8",
    )
    (data / "store").mkdir(mode=0o700)
    with TokenStore(data / "store" / "tokens.sqlite") as tokens:
        _, secret = tokens.create("bench", Role.ADMIN)
    process = subprocess.Popen(
        [sys.executable, "-m", "k3watch", "server", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=(data / "server.log").open("wb"),  # a file: an unread pipe would fill up
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                return process, secret
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"server did not start: {(data / 'server.log').read_text(errors='replace')}")


def cpu_seconds(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) used so far by ``pid`` and each of its child processes."""
    ticks = os.sysconf("SC_CLK_TCK")
    out: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        child, parent = int(stat.parent.name), int(fields[1])
        if pid in (child, parent):
            out[child] = (int(fields[11]) + int(fields[12])) / ticks
    return out


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def post_all(url: str, token: str, bodies: list[bytes], clients: int, prefix: str) -> list[float]:
    """Post ``bodies`` from ``clients`` threads as fast as the server answers; the latencies."""
    latencies: list[float] = []
    counter = itertools.count()
    lock = threading.Lock()

    def worker() -> None:
        with httpx.Client(timeout=120, headers={"Authorization": f"Bearer {token}"}) as http:
            while (index := next(counter)) < len(bodies):
                started = time.perf_counter()
                response = http.post(
                    f"{url}/api/v1/ingest",
                    params={"batch": f"{prefix}-{index}", "node": f"node-{index % 3}"},
                    content=bodies[index],
                    headers={"Content-Encoding": "gzip"},
                )
                elapsed = time.perf_counter() - started
                if response.status_code != 200:
                    raise SystemExit(f"ingest failed: {response.status_code} {response.text}")
                with lock:
                    latencies.append(elapsed)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies


def sustained(
    url: str, token: str, events: int, warmup: int, batch: int, clients: int, pid: int
) -> None:
    lines = list(iter_events_bulk(warmup + events, 11))
    bodies = [
        gzip.compress(b"".join(lines[i : i + batch]), compresslevel=1)
        for i in range(0, len(lines), batch)
    ]
    # Warm-up, not timed: the workers build their rule-index caches and the store trains its
    # first compression dictionary (one-off costs of a server's first minutes).
    post_all(url, token, bodies[: warmup // batch], clients, "w")
    bodies = bodies[warmup // batch :]
    cpu_before = cpu_seconds(pid)
    client_before = time.process_time()
    started = time.perf_counter()
    latencies = post_all(url, token, bodies, clients, "s")
    seconds = time.perf_counter() - started
    client_cpu = time.process_time() - client_before
    cpu = cpu_seconds(pid)
    used = {p: cpu[p] - cpu_before.get(p, 0.0) for p in cpu}
    latencies.sort()
    print(
        f"sustained ingest: {events:,} events in {seconds:.1f}s = {events / seconds:,.0f} events/s"
    )
    print(
        f"  batch of {batch}: p50 {statistics.median(latencies) * 1000:.0f} ms, "
        f"p99 {latencies[int(len(latencies) * 0.99) - 1] * 1000:.0f} ms ({clients} clients)"
    )
    workers = sorted(v for p, v in used.items() if p != pid)
    print(
        f"  CPU per event: server process {used.get(pid, 0.0) / events * 1e6:.0f} µs, "
        f"{len(workers)} children {sum(workers) / events * 1e6:.0f} µs, "
        f"this client {client_cpu / events * 1e6:.0f} µs"
    )


def exec_event(template: dict[str, Any], marker: str) -> dict[str, Any]:
    event = dict(template)
    event["auditID"] = str(uuid.uuid4())
    event["verb"] = "create"
    event["stage"] = "ResponseComplete"
    # A user of its own, so that every injected exec is a new alert (not a merged repeat).
    event["user"] = {"username": f"{marker}@example.com", "groups": ["system:authenticated"]}
    event["objectRef"] = {
        "resource": "pods",
        "subresource": "exec",
        "namespace": "shop",
        "name": marker,
        "apiVersion": "v1",
    }
    event["requestURI"] = f"/api/v1/namespaces/shop/pods/{marker}/exec?command=sh&stdin=true"
    event["responseStatus"] = {"metadata": {}, "code": 101}
    return event


def webhook_latency(url: str, token: str, receiver: Receiver, rate: int, seconds: int) -> None:
    background = [orjson.loads(line) for line in iter_events_bulk(rate * seconds, 5)]
    sent: dict[str, float] = {}
    per_tick = rate // 10  # ten batches a second, like the API server's webhook batching
    with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {token}"}) as http:
        start = time.perf_counter()
        for tick in range(seconds * 10):
            due = start + tick / 10
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            now_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + ".000000Z"
            items = background[tick * per_tick : (tick + 1) * per_tick]
            for item in items:
                item["requestReceivedTimestamp"] = item["stageTimestamp"] = now_text
            marker = None
            if tick % 10 == 0:
                marker = f"bench-pod-{tick // 10:012d}"
                items = [*items, exec_event(items[0], marker)]
                items[-1]["requestReceivedTimestamp"] = items[-1]["stageTimestamp"] = now_text
            body = orjson.dumps(
                {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": items}
            )
            posted = time.perf_counter()
            response = http.post(f"{url}/k8s-audit", params={"node": "server-1"}, content=body)
            if response.status_code != 200:
                raise SystemExit(f"webhook failed: {response.status_code} {response.text}")
            if marker:
                sent[marker] = posted
    time.sleep(3)
    latencies = sorted(receiver.arrivals[m] - t for m, t in sent.items() if m in receiver.arrivals)
    missing = len(sent) - len(latencies)
    if not latencies:
        print("webhook to alert: no alert arrived")
        return
    print(
        f"webhook to alert at {rate:,} events/s: {len(latencies)} alerts, "
        f"p50 {statistics.median(latencies) * 1000:.0f} ms, "
        f"p99 {latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000:.0f} ms, "
        f"max {latencies[-1] * 1000:.0f} ms, {missing} not delivered"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--warmup", type=int, default=30_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument(
        "--workers", type=int, default=None, help="server.workers (default: one per CPU)"
    )
    parser.add_argument("--rate", type=int, default=2000)
    parser.add_argument("--seconds", type=int, default=20)
    args = parser.parse_args()
    receiver = Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    with tempfile.TemporaryDirectory(prefix="k3watch-bench-") as tmp:
        port = free_port()
        process, token = start_server(Path(tmp), port, hook, args.workers)
        url = f"http://127.0.0.1:{port}"
        try:
            sustained(url, token, args.events, args.warmup, args.batch, args.clients, process.pid)
            webhook_latency(url, token, receiver, args.rate, args.seconds)
            children = [p for p in cpu_seconds(process.pid) if p != process.pid]
            peaks = sorted((peak_rss_mib(p) for p in children), reverse=True)
            print(
                f"server peak RSS: {peak_rss_mib(process.pid):.0f} MiB, its children: "
                + (", ".join(f"{peak:.0f} MiB" for peak in peaks) or "none")
            )
            problems = [
                line
                for line in (Path(tmp) / "server.log").read_text(errors="replace").splitlines()
                if " ERROR " in line or " WARNING " in line
            ]
            if problems:
                print(f"server log: {len(problems)} warnings or errors, the last: {problems[-1]}")
            store = Path(tmp) / "store" / "events.sqlite"
            print(f"store: {store.stat().st_size / 1e6:.0f} MB (without WAL)")
        finally:
            process.terminate()
            process.wait(30)
        print(f"(machine: {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
