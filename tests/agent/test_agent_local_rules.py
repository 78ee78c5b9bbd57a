"""Rules evaluated on the node (``agent.local_rules``): alerts reach the agent's own
destinations, redacted, and the events still reach the server."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import orjson
from tests.agent.conftest import StartServer, agent_config, builtin_rules, write_audit_log
from tests.agent.test_agent_delivery import run_once

from k3watch.agent.local import LocalRules
from k3watch.alerting.config import AlertingConfig, FileConfig
from k3watch.redact import RedactionConfig
from k3watch.sample import generate_tagged_events
from k3watch.store.base import AlertQuery

PASSWORD = "hunter2-local-rules-secret"


def attack_stream() -> list[dict[str, Any]]:
    """Events of a generated day with its attacks, in time order, and a Secret created with
    a value in it (logged at RequestResponse)."""
    events = [event for event, _ in generate_tagged_events(days=0.3, seed=5)]
    secret = dict(events[-1])
    secret.update(
        auditID="00000000-0000-4000-8000-00000000beef",
        verb="create",
        level="RequestResponse",
        stage="ResponseComplete",
        objectRef={"resource": "secrets", "namespace": "shop", "name": "db", "apiVersion": "v1"},
        requestObject={
            "kind": "Secret",
            "apiVersion": "v1",
            "metadata": {"name": "db"},
            "data": {"password": base64.b64encode(PASSWORD.encode()).decode()},
        },
        responseStatus={"metadata": {}, "code": 201},
    )
    return [*events, secret]


def local_rules(tmp_path: Path, alerts: Path) -> LocalRules:
    return LocalRules(
        builtin_rules(),
        AlertingConfig(destinations=(FileConfig(name="node-file", path=str(alerts)),)),
        RedactionConfig(),
        directory=tmp_path / "agent" / "local",
        cluster="edge",
        suppress_window=600.0,
    )


def test_local_rules_alert_on_the_node_and_the_events_still_reach_the_server(
    tmp_path: Path, k3watch_server: StartServer
) -> None:
    # The server stores events as it gets them here: what it holds shows the agent's redaction.
    server = k3watch_server(redaction=RedactionConfig(enabled=False))
    events = attack_stream()
    write_audit_log(tmp_path / "audit.log", events)
    alerts_file = tmp_path / "node-alerts.jsonl"
    local = local_rules(tmp_path, alerts_file)
    code, _ = run_once(agent_config(tmp_path, server.url, server.agent_token), local=local)
    assert code == 0
    assert server.stored() == len(events)
    delivered = [orjson.loads(line) for line in alerts_file.read_bytes().splitlines()]
    titles = {alert["title"] for alert in delivered}
    assert any("exec" in title.lower() for title in titles), titles
    assert local.counters.get("redacted_events") == 1
    stored = server.runtime.store.get_event(f"{events[-1]['auditID']}/ResponseComplete")
    assert stored is not None
    assert (
        stored.raw["requestObject"]["data"]["password"]
        != events[-1]["requestObject"]["data"]["password"]
    )
    assert PASSWORD not in alerts_file.read_text()
    assert base64.b64encode(PASSWORD.encode()).decode() not in alerts_file.read_text()


def test_the_server_alerts_on_what_the_node_also_alerted_on(
    tmp_path: Path, k3watch_server: StartServer
) -> None:
    server = k3watch_server()
    write_audit_log(tmp_path / "audit.log", attack_stream())
    alerts_file = tmp_path / "node-alerts.jsonl"
    local = local_rules(tmp_path, alerts_file)
    run_once(agent_config(tmp_path, server.url, server.agent_token), local=local)
    on_node = {orjson.loads(line)["rule_id"] for line in alerts_file.read_bytes().splitlines()}
    page = server.runtime.store.alerts(AlertQuery(limit=1000))
    on_server = {alert.rule_id for alert in page.alerts}
    assert on_node and on_node <= on_server


def test_local_rules_without_destinations_is_a_configuration_error(tmp_path: Path) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text(
        msgspec.yaml.encode(
            {
                "agent": {
                    "server": "http://127.0.0.1:9",
                    "token": "t",
                    "spool_dir": str(tmp_path / "agent"),
                    "metrics_listen": None,
                    "local_rules": True,
                    "sources": [{"type": "audit_file", "path": str(tmp_path / "audit.log")}],
                }
            }
        ).decode(),
        encoding="utf-8",
    )
    result = subprocess.run(
        [sys.executable, "-m", "k3watch", "agent", "--config", str(config), "--once"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert "alerting.destinations is empty" in result.stderr
