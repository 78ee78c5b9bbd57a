"""`k3watch k3s check`: CIS audit checks over every source, with where each value comes from."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import orjson
from tests.k3s.helpers import (
    CONFIG,
    DROPIN,
    DROPINS,
    GOOD_FLAGS,
    GOOD_POLICY,
    LOG_DIR,
    POLICY,
    WEBHOOK,
    Invoke,
    Node,
    dropin,
    k3s_entry,
    make_journal,
    running_message,
)

CIS = ("1.2.16", "1.2.17", "1.2.18", "1.2.19", "3.2.1", "3.2.2")
T0 = 1_767_607_200_000_000  # 2026-01-05 10:00:00 UTC, in microseconds


def check(invoke: Invoke, node: Node, *args: str) -> tuple[int, dict[str, Any]]:
    result = invoke("k3s", "check", "--root", str(node.root), "--format", "json", *args)
    return result.exit_code, orjson.loads(result.stdout)


def statuses(report: dict[str, Any]) -> dict[str, str]:
    return {c["id"]: c["status"] for c in report["checks"]}


def details(report: dict[str, Any], check_id: str) -> str:
    return "\n".join(next(c for c in report["checks"] if c["id"] == check_id)["details"])


def test_a_node_with_no_configuration_fails_every_cis_check(invoke: Invoke, node: Node) -> None:
    code, report = check(invoke, node)
    assert code == 1
    assert report["passed"] is False
    assert report["benchmark"] == "k3s-cis-1.10"
    assert all(statuses(report)[c] == "fail" for c in CIS)
    assert report["flags"] == []
    assert "configured: not set" in details(report, "1.2.16")
    fix = next(c["fix"] for c in report["checks"] if c["id"] == "1.2.17")
    assert "audit-log-maxage=30" in fix


def test_flags_in_config_yaml_pass_and_name_the_file_and_line(invoke: Invoke, node: Node) -> None:
    node.write(POLICY, GOOD_POLICY)
    node.mkdir(LOG_DIR)
    node.write(CONFIG, "write-kubeconfig-mode: '0600'\n" + dropin(GOOD_FLAGS, "kube-apiserver-arg"))
    code, report = check(invoke, node)
    assert code == 0, report["checks"]
    assert all(statuses(report)[c] == "pass" for c in CIS)
    maxage = next(f for f in report["flags"] if f["flag"] == "audit-log-maxage")
    assert maxage["configured"] == {"value": "30", "from": f"{CONFIG}:5", "overrides": []}
    assert maxage["running_known"] is False
    assert statuses(report)["running-flags"] == "warn"


def test_a_dropin_appending_with_plus_overrides_config_yaml_and_says_so(
    invoke: Invoke, node: Node
) -> None:
    node.audited()
    node.write(CONFIG, "kube-apiserver-arg:\n  - audit-log-maxage=7\n")
    code, report = check(invoke, node)
    assert code == 0
    assert statuses(report)["1.2.17"] == "pass"
    text = details(report, "1.2.17")
    assert f"audit-log-maxage=30 (from {DROPIN}:4)" in text
    assert f"overrides '7' from {CONFIG}:2" in text


def test_a_later_dropin_without_plus_replaces_the_audit_flags(invoke: Invoke, node: Node) -> None:
    node.audited()
    node.write(f"{DROPINS}/95-tuning.yaml", "kube-apiserver-arg:\n  - profiling=false\n")
    code, report = check(invoke, node)
    assert code == 1
    assert all(statuses(report)[c] == "fail" for c in CIS[:5])


def test_a_later_dropin_with_a_low_value_fails_the_check(invoke: Invoke, node: Node) -> None:
    node.audited()
    node.write(f"{DROPINS}/99-site.yml", dropin(["audit-log-maxbackup=2"]))
    code, report = check(invoke, node)
    assert code == 1
    assert statuses(report)["1.2.18"] == "fail"
    assert f"audit-log-maxbackup=2 (from {DROPINS}/99-site.yml:2)" in details(report, "1.2.18")
    assert "below 10" in details(report, "1.2.18")


def test_a_policy_the_api_server_rejects_fails_3_2_2(invoke: Invoke, node: Node) -> None:
    node.audited(policy=GOOD_POLICY.replace("audit.k8s.io/v1", "audit.k8s.io/v1beta1"))
    code, report = check(invoke, node)
    assert code == 1
    assert statuses(report)["3.2.1"] == "pass"
    assert statuses(report)["3.2.2"] == "fail"
    assert "the API server would reject it" in details(report, "3.2.2")


def test_a_policy_logging_secret_bodies_fails_3_2_2_with_its_lint_errors(
    invoke: Invoke, node: Node
) -> None:
    node.audited(
        policy="apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - level: RequestResponse\n"
    )
    code, report = check(invoke, node)
    assert code == 1
    assert statuses(report)["3.2.2"] == "fail"
    assert "lint error" in details(report, "3.2.2")
    assert any(f["severity"] == "error" for f in report["policy"]["lint"])


def test_a_missing_policy_file_fails_3_2_1(invoke: Invoke, node: Node) -> None:
    node.audited()
    node.path(POLICY).unlink()
    code, report = check(invoke, node)
    assert code == 1
    assert statuses(report)["3.2.1"] == "fail"
    assert "the file does not exist" in details(report, "3.2.1")


def test_loose_permissions_fail_with_the_chmod_that_fixes_them(invoke: Invoke, node: Node) -> None:
    node.audited()
    node.path(POLICY).chmod(0o644)
    node.path(LOG_DIR).chmod(0o755)
    node.path(DROPIN).chmod(0o640)
    node.write(f"{LOG_DIR}/audit.log", "", mode=0o644)
    code, report = check(invoke, node)
    assert code == 1
    checks = {c["id"]: c for c in report["checks"]}
    assert checks["policy-file"]["status"] == "fail"
    assert checks["policy-file"]["fix"] == f"sudo chmod 0600 {POLICY}"
    assert checks["log-dir"]["status"] == "fail"
    assert checks["log-dir"]["fix"] == f"sudo chmod 0700 {LOG_DIR}"
    assert checks["audit-log"]["status"] == "fail"
    assert checks[f"config:{DROPIN}"]["status"] == "fail"
    assert all(statuses(report)[c] == "pass" for c in CIS)


def test_broken_webhook_set_up_fails_and_a_cluster_ip_warns(invoke: Invoke, node: Node) -> None:
    node.audited(flags=(*GOOD_FLAGS, f"audit-webhook-config-file={WEBHOOK}"))
    code, report = check(invoke, node)
    assert code == 1
    assert statuses(report)["webhook"] == "fail"
    assert "does not exist" in details(report, "webhook")
    node.write(
        WEBHOOK,
        "apiVersion: v1\nkind: Config\nclusters:\n"
        "  - name: k\n    cluster: {server: 'http://10.43.0.99:9765/audit'}\n",
    )
    code, report = check(invoke, node)
    assert code == 0
    assert statuses(report)["webhook"] == "warn"
    assert "service CIDR" in details(report, "webhook")


def test_the_running_servers_command_line_is_a_source(invoke: Invoke, node: Node) -> None:
    node.audited()
    node.process(
        4242,
        [
            "/usr/local/bin/k3s",
            "server",
            "--token",
            "K10secret::server:s3cr3t",
            "--kube-apiserver-arg",
            "audit-log-maxsize=10",
        ],
    )
    result = invoke("k3s", "check", "--root", str(node.root))
    assert "s3cr3t" not in result.stdout  # the command line is summarised, never echoed
    code, report = check(invoke, node)
    assert code == 1
    assert statuses(report)["1.2.19"] == "fail"
    assert "audit-log-maxsize=10 (from /proc/4242/cmdline)" in details(report, "1.2.19")
    assert any(s["kind"] == "cmdline" and s["found"] for s in report["sources"])


def test_config_changed_after_the_server_started_asks_for_a_restart(
    invoke: Invoke, node: Node
) -> None:
    node.audited()
    node.process(4242, ["/usr/local/bin/k3s", "server"], start_ticks=0, btime=1_000_000_000)
    code, report = check(invoke, node)
    assert code == 0
    assert statuses(report)["restart"] == "warn"
    assert f"{DROPIN} changed after K3s started" in details(report, "restart")


def test_the_journal_shows_the_running_server_has_not_picked_up_the_config(
    tmp_path: Path, invoke: Invoke, node: Node
) -> None:
    node.audited()
    journal = make_journal(
        tmp_path,
        [
            k3s_entry(
                'time="2026-01-05T10:00:00Z" level=info msg="Starting k3s v1.31.4+k3s1"', T0, 1
            ),
            k3s_entry(running_message(["advertise-port=6443", "profiling=false"]), T0 + 10, 2),
        ],
    )
    code, report = check(invoke, node, "--journal-file", str(journal))
    assert code == 1
    assert statuses(report)["1.2.16"] == "fail"
    text = details(report, "1.2.16")
    assert f"configured: audit-log-path={LOG_DIR}/audit.log (from {DROPIN}:2)" in text
    assert "running: not set" in text
    fix = next(c["fix"] for c in report["checks"] if c["id"] == "1.2.16")
    assert (
        fix
        == "the configuration is already right; restart K3s to apply it: sudo systemctl restart k3s"
    )
    path = next(f for f in report["flags"] if f["flag"] == "audit-log-path")
    assert path["agree"] is False
    assert statuses(report)["restart"] == "warn"
    assert "restart K3s" in next(c["fix"] for c in report["checks"] if c["id"] == "restart")


def test_the_journal_confirms_the_running_flags(tmp_path: Path, invoke: Invoke, node: Node) -> None:
    node.audited()
    journal = make_journal(
        tmp_path,
        [k3s_entry(running_message([*GOOD_FLAGS, "advertise-port=6443"]), T0 + 3_600_000_000, 1)],
    )
    code, report = check(invoke, node, "--journal-file", str(journal))
    assert code == 0, report["checks"]
    maxage = next(f for f in report["flags"] if f["flag"] == "audit-log-maxage")
    assert maxage["running"]["value"] == "30"
    assert maxage["running"]["from"] == f"journal file {journal}, 2026-01-05 11:00:00 UTC"
    assert maxage["agree"] is True
    assert "running-flags" not in statuses(report)
    assert any(s["kind"] == "journal" and s["found"] for s in report["sources"])


def test_junit_output_is_xml_with_a_failure_per_failed_check(invoke: Invoke, node: Node) -> None:
    node.audited()
    node.path(POLICY).chmod(0o644)
    result = invoke("k3s", "check", "--root", str(node.root), "--format", "junit")
    assert result.exit_code == 1
    suites = ET.fromstring(result.stdout)
    suite = suites.find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert int(suite.get("tests", "0")) == len(cases)
    failed = [c.get("name") for c in cases if c.find("failure") is not None]
    assert failed == ["Audit policy file is not readable by others"]
    assert int(suite.get("failures", "0")) == 1
    names = [c.get("name") for c in cases]
    assert "1.2.16 Ensure that the --audit-log-path argument is set" in names


def test_text_output_shows_sources_values_origins_and_fixes(invoke: Invoke, node: Node) -> None:
    node.audited()
    node.write(CONFIG, "kube-apiserver-arg:\n  - audit-log-maxage=7\n", mode=0o600)
    node.path(LOG_DIR).chmod(0o755)
    result = invoke("k3s", "check", "--root", str(node.root))
    assert result.exit_code == 1
    out = result.stdout
    assert "k3s-cis-1.10" in out
    assert f"config   read  {CONFIG}" in out
    assert f"30   ({DROPIN}:4)" in out
    assert f"overrides '7' from {CONFIG}:2" in out
    assert "[PASS] 1.2.17 Ensure that the --audit-log-maxage argument" in out
    assert "[FAIL] Audit log directory is 0700" in out
    assert f"fix: sudo chmod 0700 {LOG_DIR}" in out
    assert out.splitlines()[-1].startswith("checks: ")
    assert " fail, " in out.splitlines()[-1]


def test_broken_yaml_in_a_dropin_fails_the_configuration_check(invoke: Invoke, node: Node) -> None:
    node.audited()
    node.write(f"{DROPINS}/10-bad.yaml", "kube-apiserver-arg: [\n")
    code, report = check(invoke, node)
    assert code == 1
    assert statuses(report)["config-files"] == "fail"
    assert "K3s will refuse to start" in details(report, "config-files")
