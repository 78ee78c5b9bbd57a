"""``k3watch scan``: alerts, the JSON contract, exit codes, diagnostics and the summary."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
from tests.cli.helpers import EXEC_TOKEN, Invoke, event, write_log


def test_scan_prints_a_table_with_the_alert_and_a_summary(tmp_path: Path, invoke: Invoke) -> None:
    log = write_log(tmp_path / "audit.log", [EXEC_TOKEN, event("get", "pods")])
    result = invoke("scan", str(log))
    assert result.exit_code == 0
    assert "Credentials read through kubectl exec" in result.stdout
    assert "read 2 events from 1 of 1 inputs" in result.stderr
    assert "alerts: 1 high, 2 low" in result.stderr


def test_json_lines_follow_the_alert_contract(tmp_path: Path, invoke: Invoke) -> None:
    log = write_log(tmp_path / "audit.log", [EXEC_TOKEN])
    result = invoke("scan", str(log), "--format", "json", "--min-severity", "high")
    alerts = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert [a["title"] for a in alerts] == ["Credentials read through kubectl exec"]
    alert = alerts[0]
    assert alert["severity"] == "high"
    assert alert["event_ids"] == ["exec-1"]
    assert alert["count"] == 1
    assert alert["group"] == {
        "user.username": "mallory",
        "objectRef.namespace": "default",
        "objectRef.name": "web-0",
    }
    assert "attack.t1552.001" in alert["tags"]
    assert alert["first_seen"] == alert["last_seen"] == "2026-01-05T10:00:00.000000Z"
    assert "/var/run/secrets/kubernetes.io/serviceaccount/token" in alert["summary"]
    assert set(alert) >= {"rule_id", "title", "severity", "tags", "event_ids", "group",
                          "first_seen", "last_seen", "count", "summary"}  # fmt: skip


def test_fail_on_sets_exit_status_one_when_reached(tmp_path: Path, invoke: Invoke) -> None:
    log = write_log(tmp_path / "audit.log", [EXEC_TOKEN])
    assert invoke("scan", str(log), "--fail-on", "high").exit_code == 1
    assert invoke("scan", str(log), "--fail-on", "critical").exit_code == 0


def test_bad_lines_are_reported_with_location_and_the_rest_is_scanned(
    tmp_path: Path, invoke: Invoke
) -> None:
    log = write_log(
        tmp_path / "audit.log",
        [event("get", "pods")],
        extra_lines=[
            b'{"kind": 0}',
            b"{truncated",
            b"\xff\xfe not utf-8",
            orjson.dumps(EXEC_TOKEN),
        ],
    )
    result = invoke("scan", str(log), "--format", "json")
    assert result.exit_code == 0
    assert f"{log}:2: kind must be 'Event' or 'EventList', got 0" in result.stderr
    assert f"{log}:3:" in result.stderr
    assert f"{log}:4:" in result.stderr
    assert "Traceback" not in result.stderr
    titles = {orjson.loads(line)["title"] for line in result.stdout.splitlines()}
    assert "Credentials read through kubectl exec" in titles
    assert "parse errors: 3" in result.stderr


def test_stdin_is_scanned_with_a_dash(invoke: Invoke) -> None:
    result = invoke("scan", "-", "--format", "json", input=orjson.dumps(EXEC_TOKEN) + b"\n")
    assert result.exit_code == 0
    assert "Credentials read through kubectl exec" in result.stdout


def test_exit_status_two_when_no_input_can_be_read(tmp_path: Path, invoke: Invoke) -> None:
    result = invoke("scan", str(tmp_path / "missing.log"))
    assert result.exit_code == 2
    assert "missing.log" in result.stderr


def test_exit_status_two_on_a_usage_error(invoke: Invoke) -> None:
    result = invoke("scan", "x.log", "--min-severity", "urgent")
    assert result.exit_code == 2


def test_user_rules_load_beside_or_instead_of_the_library(tmp_path: Path, invoke: Invoke) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "mine.yml").write_text(
        "title: Any pod read\nlogsource: {product: kubernetes, service: audit}\n"
        "detection: {sel: {verb: get, objectRef.resource: pods}, condition: sel}\nlevel: low\n"
    )
    log = write_log(tmp_path / "audit.log", [event("get", "pods")])
    only_mine = invoke("scan", str(log), "--rules", str(rules), "--no-builtin", "--format", "json")
    assert [orjson.loads(x)["title"] for x in only_mine.stdout.splitlines()] == ["Any pod read"]
    assert "rules: 1 loaded" in only_mine.stderr


def test_a_broken_user_rule_is_reported_and_the_others_still_run(
    tmp_path: Path, invoke: Invoke
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "broken.yml").write_text(
        "title: x\nlogsource: {product: kubernetes}\n"
        "detection:\n  sel: {verb|nosuch: get}\n  condition: sel\n"
    )
    log = write_log(tmp_path / "audit.log", [EXEC_TOKEN])
    result = invoke("scan", str(log), "--rules", str(rules), "--format", "json")
    assert result.exit_code == 0
    assert f"{rules / 'broken.yml'}:4" in result.stderr
    assert "Credentials read through kubectl exec" in result.stdout


def test_the_module_runs_as_a_program(tmp_path: Path) -> None:
    log = write_log(tmp_path / "audit.log", [EXEC_TOKEN])
    done = subprocess.run(
        [sys.executable, "-m", "k3watch", "scan", str(log), "--format", "json", "-q"],
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0
    assert b"Credentials read through kubectl exec" in done.stdout


def test_a_configuration_file_sets_rules_allowlists_and_scan_defaults(
    tmp_path: Path, invoke: Invoke
) -> None:
    config = tmp_path / "k3watch.yaml"
    config.write_text(
        "rules:\n"
        "  allowlist:\n"
        "    - title: Token reads in the lab namespace are tests\n"
        "      rules: [Credentials read through kubectl exec]\n"
        "      match: {objectRef.namespace: lab}\n"
        "scan:\n"
        "  min_severity: high\n"
    )
    lab = dict(
        EXEC_TOKEN, auditID="exec-lab", objectRef={**EXEC_TOKEN["objectRef"], "namespace": "lab"}
    )
    log = write_log(tmp_path / "audit.log", [EXEC_TOKEN, lab])
    result = invoke("scan", str(log), "--config", str(config), "--format", "json")
    alerts = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert [(a["title"], a["event_ids"]) for a in alerts] == [
        ("Credentials read through kubectl exec", ["exec-1"])
    ]
    # An option given on the command line wins over the file.
    lowered = invoke(
        "scan", str(log), "--config", str(config), "--format", "json", "--min-severity", "low"
    )
    assert len(lowered.stdout.splitlines()) > len(alerts)


def test_a_broken_configuration_file_stops_with_its_location(
    tmp_path: Path, invoke: Invoke
) -> None:
    config = tmp_path / "k3watch.yaml"
    config.write_text("scan:\n  supress: 5m\n")
    result = invoke("scan", "x.log", "--config", str(config))
    assert result.exit_code == 2
    assert f"{config}:2: unknown key 'supress'" in result.stderr
