"""The agent following live sources: metrics and health, mutual TLS, the journal, SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import pytest
from tests.agent.conftest import StartServer, agent_config, sample_events, write_audit_log

from k3watch.agent.config import JournaldSourceConfig
from k3watch.agent.run import Agent
from k3watch.certs import init_pki
from k3watch.server.config import ServerTlsConfig


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_a_following_agent_exposes_metrics_and_health_and_stops_cleanly(
    tmp_path: Path, k3watch_server: StartServer
) -> None:
    server = k3watch_server()
    events = sample_events()
    log = write_audit_log(tmp_path / "audit.log", events[:400])
    config = agent_config(tmp_path, server.url, server.agent_token, metrics_listen="127.0.0.1:0")
    agent = Agent(config)
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(agent.run()))
    thread.start()
    try:
        assert server.wait_stored(400) == 400
        write_audit_log(log, events[400:])  # written while the agent follows the file
        assert server.wait_stored(len(events)) == len(events)
        url = agent.metrics_url
        assert url is not None
        assert wait_for(lambda: agent.spool.backlog_events == 0)
        health = httpx.get(f"{url}/healthz")
        assert health.status_code == 200
        body = health.json()
        assert body["status"] == "ok" and body["backlog_events"] == 0
        assert body["last_success"] is not None
        metrics = httpx.get(f"{url}/metrics").text
        total = len(events)
        assert f'k3watch_agent_events_total{{stage="read"}} {total}.0' in metrics
        assert f'k3watch_agent_events_total{{stage="spooled"}} {total}.0' in metrics
        assert f'k3watch_agent_events_total{{stage="sent"}} {total}.0' in metrics
        assert f'k3watch_agent_events_total{{stage="acked"}} {total}.0' in metrics
        assert "k3watch_agent_spool_backlog_events 0.0" in metrics
        assert 'k3watch_agent_source_items_total{reason="",source="audit_file"}' in metrics
        assert 'k3watch_agent_forward_requests_total{reason="200"}' in metrics
        assert "k3watch_agent_last_success_timestamp_seconds" in metrics
        assert httpx.get(f"{url}/other").status_code == 404
    finally:
        agent.stop()
        thread.join(30)
    assert codes == [0]


def test_the_agent_sends_through_mutual_tls_with_its_client_certificate(
    tmp_path: Path, k3watch_server: StartServer
) -> None:
    pki = tmp_path / "pki"
    init_pki(pki, server_names=["localhost"], server_ips=["127.0.0.1"], clients=["node-1"])
    tls = ServerTlsConfig(str(pki / "server.crt"), str(pki / "server.key"), str(pki / "ca.crt"))
    server = k3watch_server(tls=tls, insecure_http=False, ingest_listen="127.0.0.1:0")
    assert server.ingest_url.startswith("https://")
    events = sample_events()[:300]
    write_audit_log(tmp_path / "audit.log", events)
    without_cert = agent_config(
        tmp_path, server.ingest_url, server.agent_token, ca_file=str(pki / "ca.crt")
    )
    agent = Agent(without_cert, once=True)
    assert agent.run(once_timeout=1.0) == 1, "the ingest listener requires a certificate"
    assert agent.forwarder.counters.get("failed", reason="connection") >= 1
    assert server.stored() == 0
    with_cert = agent_config(
        tmp_path,
        server.ingest_url,
        server.agent_token,
        ca_file=str(pki / "ca.crt"),
        cert_file=str(pki / "clients" / "node-1.crt"),
        key_file=str(pki / "clients" / "node-1.key"),
    )
    assert Agent(with_cert, once=True).run(once_timeout=30) == 0
    assert server.stored() == len(events)


def test_journal_entries_are_delivered_once_and_resumed_by_cursor(
    tmp_path: Path, k3watch_server: StartServer
) -> None:
    from tests.k3s.helpers import k3s_entry, make_journal

    if not any(os.access(Path(d) / "journalctl", os.X_OK) for d in os.environ["PATH"].split(":")):
        pytest.skip("journalctl is not installed")
    base_us = 1_772_445_600_000_000
    entries = [
        k3s_entry(f'time="2026-03-02T10:00:{n:02d}Z" level=info msg="step {n}"', base_us + n, n)
        for n in range(40)
    ]
    journal = tmp_path / "journal"
    journal.mkdir()
    make_journal(journal, entries)
    server = k3watch_server()
    source = JournaldSourceConfig(directory=str(journal), kernel=False)
    config = agent_config(tmp_path, server.url, server.agent_token, sources=(source,))
    agent = Agent(config, once=True)
    assert agent.run(once_timeout=30) == 0
    assert server.stored() == len(entries)
    again = Agent(config, once=True)
    assert again.run(once_timeout=30) == 0
    assert again.forwarder.counters.get("sent_events") == 0, "resumed after the cursor"
    assert server.stored() == len(entries)


def test_the_command_follows_logs_in_json_and_exits_0_on_sigterm(
    tmp_path: Path, k3watch_server: StartServer
) -> None:
    server = k3watch_server()
    events = sample_events()[:300]
    write_audit_log(tmp_path / "audit.log", events)
    config = tmp_path / "k3watch.yaml"
    config.write_text(
        f"""
agent:
  server: {server.url}
  token: $env:TEST_AGENT_TOKEN
  node: node-1
  spool_dir: agent
  batch_max_wait: 0.2
  metrics_listen: null
  sources:
    - type: audit_file
      path: audit.log
""",
        encoding="utf-8",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "k3watch", "agent", "--config", str(config), "--log-format", "json"],
        env={**os.environ, "TEST_AGENT_TOKEN": server.agent_token},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert server.wait_stored(len(events), timeout=60) == len(events)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr.decode()
    lines = [orjson.loads(line) for line in stderr.splitlines() if line.strip()]
    assert lines, "the agent logs"
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    assert any("SIGTERM" in line["message"] for line in lines)
    assert (tmp_path / "agent" / "spool").is_dir()
