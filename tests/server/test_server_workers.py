"""Ingest with worker processes (``server.workers``): the same results as in the server's own
process, workers that die are replaced, and the server stops them when it stops."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from tests.server.conftest import StartServer, builtin_rules
from tests.server.test_server_ingest import attack_day, lines, post


def stream() -> list[bytes]:
    attacks, background = attack_day()
    events = sorted(attacks + background[:1500], key=lambda e: e["requestReceivedTimestamp"])
    return lines(events)


def ingest_all(url: str, token: str, data: list[bytes]) -> list[dict[str, object]]:
    results = []
    for start in range(0, len(data), 400):
        body = gzip.compress(b"\n".join(data[start : start + 400]))
        response = post(url, token, body, batch=f"b{start}", node="server-1", encoding="gzip")
        assert response.status_code == 200, response.text
        results.append(response.json())
    return results


def test_workers_store_and_alert_exactly_as_the_server_process_does(
    start_server: StartServer,
) -> None:
    data = stream()
    outcomes = {}
    for workers in (0, 2):
        running = start_server(workers=workers)
        assert running.runtime.pipeline.preparation.workers == workers
        results = ingest_all(running.url, running.tokens["agent"], data)
        with running.client("viewer") as viewer:
            alerts = viewer.alerts(limit=1000)["alerts"]
            page = viewer.search(start="3650d", limit=5)
        outcomes[workers] = (
            sum(int(r["accepted"]) for r in results),  # type: ignore[call-overload]
            sorted((a["rule_id"], a["fingerprint"], a["count"]) for a in alerts),
            [e["key"] for e in page["events"]],
            running.runtime.store.verify().problem,
        )
    assert outcomes[0] == outcomes[2]
    accepted, alerts, _, problem = outcomes[2]
    assert accepted == len(data) and len(alerts) >= 5 and problem is None


def test_counters_from_the_workers_reach_the_metrics(start_server: StartServer) -> None:
    running = start_server(workers=1)
    body = b"\n".join([*stream()[:20], b"{not json", b"42"])
    response = post(running.url, running.tokens["agent"], body, batch="bad")
    assert response.json()["rejected"] == 2, response.json()["errors"]
    metrics = httpx.get(
        f"{running.url}/metrics", headers={"Authorization": f"Bearer {running.tokens['viewer']}"}
    ).text
    assert 'k3watch_ingest_rejected_total{reason="invalid_json"} 1.0' in metrics


def test_a_worker_that_dies_is_replaced(start_server: StartServer) -> None:
    running = start_server(workers=1)
    preparation = running.runtime.pipeline.preparation
    data = stream()
    ingest_all(running.url, running.tokens["agent"], data[:400])
    (pid,) = preparation.pids()
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    statuses = []
    # The body in flight when the worker died fails (500, the sender retries); then new
    # workers take over and the same batch goes through.
    while time.monotonic() < deadline:
        body = b"\n".join(data[400:800])
        response = post(running.url, running.tokens["agent"], body, batch="after")
        statuses.append(response.status_code)
        if response.status_code == 200:
            break
    assert statuses[-1] == 200, statuses
    assert set(statuses) <= {200, 500}
    assert preparation.pids() and pid not in preparation.pids()


def test_the_server_stops_its_workers_on_sigterm(tmp_path: Path) -> None:
    data = tmp_path / "data"
    config = tmp_path / "k3watch.yaml"
    config.write_text(
        f"server:\n  data_dir: {data}\n  listen: 127.0.0.1:0\n  insecure_http: true\n"
        "  workers: 2\n",
        encoding="utf-8",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "k3watch", "server", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        children = wait_for_children(process.pid, 2)
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, errors
    assert "SIGTERM received: stopping" in errors
    time.sleep(0.5)
    assert not [pid for pid in children if Path(f"/proc/{pid}").exists()]


def wait_for_children(pid: int, count: int) -> list[int]:
    """The worker processes of ``pid``, once ``count`` of them run and the server listens."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = [
            int(stat.parent.name)
            for stat in Path("/proc").glob("[0-9]*/cmdline")
            if _parent(int(stat.parent.name)) == pid and b"spawn_main" in _read(stat)
        ]
        if len(found) >= count:
            return found
        time.sleep(0.2)
    pytest.fail(f"the server did not start {count} workers")


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def test_rules_are_loaded_by_each_worker_from_their_origin() -> None:
    ruleset = builtin_rules()
    assert ruleset.origin is not None
    again = ruleset.origin.load()
    assert [r.id for r in again.event_rules] == [r.id for r in ruleset.event_rules]
