"""`k3watch k3s setup`: a diff by default, atomic writes with backups on --apply, idempotent."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import yaml
from tests.k3s.helpers import (
    CONFIG,
    DROPIN,
    DROPINS,
    LOG_DIR,
    POLICY,
    SERVER,
    WEBHOOK,
    Invoke,
    Node,
    dropin,
)

from k3watch.policy.k3s.config import read_config
from k3watch.policy.k3s.layout import Layout


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def setup(invoke: Invoke, node: Node, *args: str) -> tuple[int, str, str]:
    result = invoke("k3s", "setup", "--root", str(node.root), *args)
    return result.exit_code, result.stdout, result.stderr


def test_the_default_dry_run_shows_a_diff_of_every_file_and_writes_nothing(
    invoke: Invoke, node: Node
) -> None:
    code, out, _ = setup(invoke, node)
    assert code == 0
    assert f"--- /dev/null\n+++ {POLICY}" in out
    assert f"+++ {DROPIN}" in out
    assert "+kube-apiserver-arg+:" in out
    assert f'+  - "audit-log-path={LOG_DIR}/audit.log"' in out
    assert "+apiVersion: audit.k8s.io/v1" in out
    assert f"# create directory {LOG_DIR} (mode 0700)" in out
    assert "add --apply" in out
    assert files_under(node.root) == []


def test_apply_writes_valid_files_with_their_modes_then_a_rerun_changes_nothing(
    invoke: Invoke, node: Node
) -> None:
    code, out, _ = setup(invoke, node, "--apply")
    assert code == 0, out
    assert node.mode(POLICY) == 0o600
    assert node.mode(DROPIN) == 0o600
    assert node.mode(LOG_DIR) == 0o700
    policy = yaml.safe_load(node.path(POLICY).read_text())
    assert policy["apiVersion"] == "audit.k8s.io/v1"
    assert policy["kind"] == "Policy"
    assert yaml.safe_load(node.path(DROPIN).read_text()) == {
        "kube-apiserver-arg+": [
            f"audit-log-path={LOG_DIR}/audit.log",
            f"audit-policy-file={POLICY}",
            "audit-log-maxage=30",
            "audit-log-maxbackup=10",
            "audit-log-maxsize=100",
        ]
    }
    # Never restarts: says how, and how to verify.
    assert "sudo systemctl restart k3s" in out
    assert "k3watch k3s check" in out
    assert f"tail -f {LOG_DIR}/audit.log" in out
    before = {p: node.path("/" + p).stat().st_mtime_ns for p in files_under(node.root)}

    code, out, _ = setup(invoke, node)
    assert code == 0
    assert "nothing to change" in out
    code, out, _ = setup(invoke, node, "--apply")
    assert code == 0
    assert "nothing to change" in out
    assert "done:" not in out
    after = {p: node.path("/" + p).stat().st_mtime_ns for p in files_under(node.root)}
    assert after == before  # no backup, no rewrite


def test_setup_then_check_passes(invoke: Invoke, node: Node) -> None:
    assert setup(invoke, node, "--apply")[0] == 0
    result = invoke("k3s", "check", "--root", str(node.root), "--format", "json")
    assert result.exit_code == 0, result.stdout
    report = orjson.loads(result.stdout)
    statuses = {c["id"]: c["status"] for c in report["checks"]}
    for check in ("1.2.16", "1.2.17", "1.2.18", "1.2.19", "3.2.1", "3.2.2"):
        assert statuses[check] == "pass", (check, report["checks"])
    assert report["policy"]["uncovered"] == []


def test_a_replaced_file_is_kept_as_a_backup_k3s_ignores(invoke: Invoke, node: Node) -> None:
    node.write(POLICY, "# my old policy\n", mode=0o644)
    node.write(DROPIN, "kube-apiserver-arg+:\n  - audit-log-maxage=7\n")
    code, out, _ = setup(invoke, node)
    assert "-# my old policy" in out
    assert "-  - audit-log-maxage=7" in out
    assert '+  - "audit-log-maxage=30"' in out
    code, out, _ = setup(invoke, node, "--apply")
    assert code == 0
    backups = sorted(node.path(SERVER).glob("audit-policy.yaml.bak.*"))
    assert len(backups) == 1
    assert backups[0].read_text() == "# my old policy\n"
    assert backups[0].stat().st_mode & 0o777 == 0o644
    dropin_backups = list(node.path(DROPINS).glob("90-k3watch-audit.yaml.bak.*"))
    assert len(dropin_backups) == 1
    # K3s reads only *.yaml / *.yml: the backup does not count as a drop-in.
    config = read_config(Layout(node.root))
    assert config.files == [DROPIN]
    # No temporary files left behind.
    assert not list(node.root.rglob(".*.tmp"))


def test_a_file_with_the_right_content_but_a_loose_mode_is_only_chmodded(
    invoke: Invoke, node: Node
) -> None:
    assert setup(invoke, node, "--apply")[0] == 0
    node.path(POLICY).chmod(0o644)
    node.path(LOG_DIR).chmod(0o755)
    _, out, _ = setup(invoke, node)
    assert f"# chmod {POLICY}: 0644 → 0600" in out
    assert f"# chmod {LOG_DIR}: 0755 → 0700" in out
    assert "---" not in out  # no content diff
    assert setup(invoke, node, "--apply")[0] == 0
    assert node.mode(POLICY) == 0o600
    assert node.mode(LOG_DIR) == 0o700
    assert not list(node.path(LOG_DIR).parent.glob("*.bak.*"))


def test_webhook_set_up_writes_a_kubeconfig_and_the_batch_flags(invoke: Invoke, node: Node) -> None:
    url = "http://127.0.0.1:9765/k8s-audit"
    code, out, err = setup(invoke, node, "--webhook", url, "--apply")
    assert code == 0, out + err
    assert node.mode(WEBHOOK) == 0o600
    kubeconfig = yaml.safe_load(node.path(WEBHOOK).read_text())
    assert kubeconfig["apiVersion"] == "v1"
    assert kubeconfig["kind"] == "Config"
    assert kubeconfig["clusters"][0]["cluster"]["server"] == url
    assert kubeconfig["current-context"] == "k3watch"
    assert kubeconfig["contexts"][0]["context"]["cluster"] == "k3watch"
    flags = yaml.safe_load(node.path(DROPIN).read_text())["kube-apiserver-arg+"]
    assert f"audit-webhook-config-file={WEBHOOK}" in flags
    assert "audit-webhook-batch-max-size=100" in flags
    assert "audit-webhook-batch-max-wait=5s" in flags
    result = invoke("k3s", "check", "--root", str(node.root), "--format", "json")
    assert result.exit_code == 0, result.stdout
    checks = {c["id"]: c for c in orjson.loads(result.stdout)["checks"]}
    assert checks["webhook"]["status"] == "pass"
    assert checks["webhook-kubeconfig"]["status"] == "pass"


def test_the_webhook_token_goes_into_the_kubeconfig_and_never_into_the_output(
    invoke: Invoke, node: Node, tmp_path: Path
) -> None:
    token_file = tmp_path / "webhook-token"
    token_file.write_text("k3w_webhook-secret-value\n")
    url = "http://127.0.0.1:9765/k8s-audit"
    base = ("--webhook", url, "--webhook-token-file", str(token_file))
    code, out, err = setup(invoke, node, *base)
    assert code == 0, out + err
    assert "k3w_webhook-secret-value" not in out + err
    code, out, err = setup(invoke, node, *base, "--apply")
    assert code == 0 and "k3w_webhook-secret-value" not in out + err
    kubeconfig = yaml.safe_load(node.path(WEBHOOK).read_text())
    assert kubeconfig["users"][0]["user"]["token"] == "k3w_webhook-secret-value"
    token_file.write_text("")
    code, _, err = setup(invoke, node, *base)
    assert code == 2 and "is empty" in err


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://10.43.12.7:9765/audit", "is in the service CIDR 10.43.0.0/16"),
        ("https://k3watch.monitoring.svc:9765/audit", "is a Service name"),
        ("http://192.0.2.10:9765/audit", "unencrypted"),
    ],
)
def test_webhook_urls_the_api_server_cannot_use_well_are_explained(
    invoke: Invoke, node: Node, url: str, expected: str
) -> None:
    code, _, err = setup(invoke, node, "--webhook", url)
    assert code == 0
    assert expected in err


def test_a_webhook_that_is_not_a_url_is_refused_and_nothing_is_written(
    invoke: Invoke, node: Node
) -> None:
    code, out, err = setup(invoke, node, "--webhook", "127.0.0.1:9765", "--apply")
    assert code == 1
    assert "refused" in err
    assert "nothing written" in err
    assert "nothing to change" not in out
    assert files_under(node.root) == []


def test_a_policy_with_a_lint_error_is_refused(
    invoke: Invoke, node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    from k3watch.policy.k3s import audit_policy

    leaky = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - level: RequestResponse\n"
    monkeypatch.setattr(audit_policy, "generate", lambda profile, webhook: leaky)
    code, _, err = setup(invoke, node, "--apply")
    assert code == 1
    assert "policy lint error" in err
    assert files_under(node.root) == []


def test_audit_flags_already_in_config_yaml_are_explained_and_ours_still_win(
    invoke: Invoke, node: Node
) -> None:
    node.write(CONFIG, "kube-apiserver-arg:\n  - audit-log-maxage=7\n  - profiling=false\n")
    code, _, err = setup(invoke, node, "--apply")
    assert code == 0
    assert f"{CONFIG}:2 also sets audit-log-maxage=7" in err
    assert "remove that one" in err


def test_a_later_dropin_without_plus_would_drop_the_flags_and_fails(
    invoke: Invoke, node: Node
) -> None:
    node.write(f"{DROPINS}/95-tuning.yaml", "kube-apiserver-arg:\n  - profiling=false\n")
    code, _, err = setup(invoke, node)
    assert code == 1
    assert f"{DROPINS}/95-tuning.yaml:1 sets 'kube-apiserver-arg' without '+'" in err
    assert err.count("would be dropped") == 1
    assert "audit-log-path, audit-policy-file, audit-log-maxage" in err
    assert "would not be in force" in err


def test_a_later_dropin_with_another_value_wins_and_fails(invoke: Invoke, node: Node) -> None:
    node.write(f"{DROPINS}/99-site.yaml", dropin(["audit-log-maxage=3"]))
    code, _, err = setup(invoke, node)
    assert code == 1
    assert "audit-log-maxage would be 3 from" in err
    assert "read after the k3watch drop-in" in err


def test_the_command_line_of_the_running_server_wins_over_every_file(
    invoke: Invoke, node: Node
) -> None:
    node.process(
        4242, ["/usr/local/bin/k3s", "server", "--kube-apiserver-arg=audit-log-path=/tmp/a.log"]
    )
    code, _, err = setup(invoke, node)
    assert code == 1
    assert "audit-log-path would be /tmp/a.log from /proc/4242/cmdline" in err
    assert "command line comes after every configuration file" in err


def test_an_earlier_k3watch_dropin_under_another_number_is_reused(
    invoke: Invoke, node: Node
) -> None:
    renamed = f"{DROPINS}/50-k3watch-audit.yaml"
    node.write(renamed, "kube-apiserver-arg+: []\n")
    assert setup(invoke, node, "--apply")[0] == 0
    assert not node.path(DROPIN).exists()
    assert "audit-log-maxage=30" in node.path(renamed).read_text()


def test_openrc_nodes_get_the_openrc_restart_command(invoke: Invoke, node: Node) -> None:
    node.write("/etc/init.d/k3s", "#!/sbin/openrc-run\n", mode=0o755)
    code, out, _ = setup(invoke, node, "--apply")
    assert code == 0
    assert "sudo rc-service k3s restart" in out
    assert "tail -f /var/log/k3s.log" in out


def test_an_agent_only_node_is_warned_about(invoke: Invoke, node: Node) -> None:
    node.write("/etc/systemd/system/k3s-agent.service", "[Service]\n", mode=0o644)
    _, _, err = setup(invoke, node)
    assert "agents run no API server" in err


def test_a_server_started_with_another_config_file_gets_the_dropin_beside_it(
    invoke: Invoke, node: Node
) -> None:
    node.process(4242, ["/usr/local/bin/k3s", "server", "--config", "/etc/k3s/site.yaml"])
    node.write("/etc/k3s/site.yaml", "node-name: s1\n")
    assert setup(invoke, node, "--apply")[0] == 0
    assert node.path("/etc/k3s/site.yaml.d/90-k3watch-audit.yaml").is_file()
    assert not node.path(DROPINS).exists()
    result = invoke("k3s", "check", "--root", str(node.root), "--format", "json")
    assert result.exit_code == 0, result.stdout
    sources = [s["where"] for s in orjson.loads(result.stdout)["sources"] if s["kind"] == "config"]
    assert sources == ["/etc/k3s/site.yaml", "/etc/k3s/site.yaml.d/90-k3watch-audit.yaml"]


def test_the_minimal_profile_passes_the_check_and_only_warns_about_blinded_rules(
    invoke: Invoke, node: Node
) -> None:
    assert setup(invoke, node, "--profile", "minimal", "--apply")[0] == 0
    result = invoke("k3s", "check", "--root", str(node.root), "--format", "json")
    assert result.exit_code == 0, result.stdout
    report = orjson.loads(result.stdout)
    status = next(c["status"] for c in report["checks"] if c["id"] == "3.2.2")
    assert report["policy"]["uncovered"] == []
    assert status == ("warn" if report["policy"]["blind_spots"] else "pass")
