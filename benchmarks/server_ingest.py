"""Server ingest: sustained throughput with live detection into the embedded store, and the time
from the audit webhook to a delivered alert.

Starts ``k3watch server`` as its own process (plain HTTP on loopback, a fresh data directory,
every built-in rule, a webhook destination pointing back at this process), then from this
process:

  1. sustained ingest: ``--clients`` threads post gzip batches of ``--batch`` realistic K3s
     audit events to ``/api/v1/ingest`` as fast as the server answers, for ``--events`` events;
     prints events/s, p50/p99 request latency, and the server's peak RSS;
  2. webhook to alert: posts ``EventList`` batches to ``/k8s-audit`` at ``--rate`` events/s for
     ``--seconds`` seconds, with one new attack event (an exec into a pod of its own) per
     second; the signed webhook the server delivers for each is received here, and the time
     from posting the batch to receiving its alert is recorded: p50/p99/max.

Targets on a 2-core machine: ≥ 20,000 events/s; p99 webhook-to-alert under 1 s at 2,000
events/s; server RSS under 400 MB.

Run: ``python benchmarks/server_ingest.py [--events N] [--clients N] [--rate N] [--seconds N]``.
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
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


def _marker(alert: dict[str, Any]) -> str | None:
    text = orjson.dumps(alert).decode()
    start = text.find("bench-pod-")
    return text[start : start + 22] if start >= 0 else None


def start_server(data: Path, port: int, hook: str) -> tuple[subprocess.Popen[bytes], str]:
    config = data / "k3watch.yaml"
    config.write_text(
        f"""
server:
  data_dir: {data / "store"}
  listen: 127.0.0.1:{port}
  insecure_http: true
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
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                return process, secret
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(
        f"server did not start: {process.stderr.read().decode() if process.stderr else ''}"
    )


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def sustained(url: str, token: str, events: int, batch: int, clients: int) -> None:
    lines = list(iter_events_bulk(events, 11))
    bodies = [
        gzip.compress(b"".join(lines[i : i + batch]), compresslevel=1)
        for i in range(0, len(lines), batch)
    ]
    latencies: list[float] = []
    counter = itertools.count()
    lock = threading.Lock()

    def worker() -> None:
        with httpx.Client(timeout=120, headers={"Authorization": f"Bearer {token}"}) as http:
            while (index := next(counter)) < len(bodies):
                started = time.perf_counter()
                response = http.post(
                    f"{url}/api/v1/ingest",
                    params={"batch": f"s-{index}", "node": f"node-{index % 3}"},
                    content=bodies[index],
                    headers={"Content-Encoding": "gzip"},
                )
                elapsed = time.perf_counter() - started
                if response.status_code != 200:
                    raise SystemExit(f"ingest failed: {response.status_code} {response.text}")
                with lock:
                    latencies.append(elapsed)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    latencies.sort()
    print(
        f"sustained ingest: {events:,} events in {seconds:.1f}s = {events / seconds:,.0f} events/s"
    )
    print(
        f"  batch of {batch}: p50 {statistics.median(latencies) * 1000:.0f} ms, "
        f"p99 {latencies[int(len(latencies) * 0.99) - 1] * 1000:.0f} ms ({clients} clients)"
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
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--rate", type=int, default=2000)
    parser.add_argument("--seconds", type=int, default=20)
    args = parser.parse_args()
    receiver = Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    with tempfile.TemporaryDirectory(prefix="k3watch-bench-") as tmp:
        port = free_port()
        process, token = start_server(Path(tmp), port, hook)
        url = f"http://127.0.0.1:{port}"
        try:
            sustained(url, token, args.events, args.batch, args.clients)
            webhook_latency(url, token, receiver, args.rate, args.seconds)
            print(f"server peak RSS: {peak_rss_mib(process.pid):.0f} MiB")
            store = Path(tmp) / "store" / "events.sqlite"
            print(f"store: {store.stat().st_size / 1e6:.0f} MB (without WAL)")
        finally:
            process.terminate()
            process.wait(30)
        print(f"(machine: {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
