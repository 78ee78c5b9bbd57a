"""`k3watch deploy install --k3s`: the audit set-up plus the manifests in K3s's auto-deploy
directory, shown as a diff, written on --apply with the right modes, idempotent, secrets never
shown."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import yaml
from tests.deploy.conftest import Invoke

from k3watch.deploy.manifests import render
from k3watch.deploy.values import load_values

MANIFESTS = "var/lib/rancher/k3s/server/manifests"
SERVER = "var/lib/rancher/k3s/server"
DROPIN = "etc/rancher/k3s/config.yaml.d/90-k3watch-audit.yaml"


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o7777


def test_the_dry_run_shows_a_diff_of_the_manifests_and_the_audit_set_up_and_writes_nothing(
    invoke: Invoke, node: Path
) -> None:
    result = invoke("deploy", "install", "--k3s", "--root", str(node))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"# create file /{MANIFESTS}/k3watch.yaml (mode 0600)" in out
    assert f"+++ /{MANIFESTS}/k3watch.yaml" in out
    assert "+kind: DaemonSet" in out
    assert f"+++ /{SERVER}/audit-policy.yaml" in out
    assert "+kube-apiserver-arg+:" in out
    assert "# dry run: nothing written" in out
    assert files_under(node) == []
    # The drop-in stays the last file written: the flags never name a missing file.
    assert out.index(f"/{MANIFESTS}/k3watch.yaml") < out.index(f"create file /{DROPIN}")


def test_apply_writes_every_file_with_its_mode_and_a_second_apply_changes_nothing(
    invoke: Invoke, node: Path
) -> None:
    result = invoke("deploy", "install", "--k3s", "--root", str(node), "--apply")
    assert result.exit_code == 0, result.output
    assert "Next steps:" in result.stdout
    manifest = node / MANIFESTS / "k3watch.yaml"
    assert manifest.read_text() == render(load_values(None)).manifest
    assert mode(manifest) == 0o600
    assert mode(node / SERVER / "audit-policy.yaml") == 0o600
    assert mode(node / SERVER / "logs") == 0o700
    assert mode(node / DROPIN) == 0o600
    assert not (node / MANIFESTS / "k3watch-secrets.yaml").exists()
    before = files_under(node)

    again = invoke("deploy", "install", "--k3s", "--root", str(node), "--apply")
    assert again.exit_code == 0, again.output
    assert "nothing to change" in again.stdout
    assert "done:" not in again.stdout
    assert files_under(node) == before


def test_new_values_replace_the_manifest_and_keep_a_backup(
    invoke: Invoke, node: Path, write_values: Callable[[str], Path]
) -> None:
    assert invoke("deploy", "install", "--k3s", "--root", str(node), "--apply").exit_code == 0
    values = write_values("server:\n  storage: {size: 80Gi}\n")
    dry = invoke("deploy", "install", "--k3s", "--root", str(node), "--values", str(values))
    assert "-      storage: 20Gi" in dry.stdout
    assert "+      storage: 80Gi" in dry.stdout
    applied = invoke(
        "deploy", "install", "--k3s", "--root", str(node), "--values", str(values), "--apply"
    )
    assert applied.exit_code == 0, applied.output
    backups = [n for n in files_under(node) if ".bak." in n]
    assert len(backups) == 1
    assert backups[0].startswith(f"{MANIFESTS}/k3watch.yaml.bak.")
    assert "80Gi" in (node / MANIFESTS / "k3watch.yaml").read_text()


def test_secrets_are_written_0600_and_never_shown(
    invoke: Invoke,
    node: Path,
    write_values: Callable[[str], Path],
    pki: Path,
    token_files: tuple[Path, Path],
) -> None:
    values = write_values(
        "tls: {from_dir: pki}\n"
        "agent: {token_file: agent.token}\n"
        "audit: {source: webhook, webhook_token_file: webhook.token}\n"
    )
    agent_token = token_files[0].read_text().strip()
    webhook_token = token_files[1].read_text().strip()
    key = (pki / "server.key").read_text().splitlines()[1]
    args = ("deploy", "install", "--k3s", "--root", str(node), "--values", str(values))
    dry = invoke(*args)
    assert dry.exit_code == 0, dry.output
    assert (
        f"# create file /{MANIFESTS}/k3watch-secrets.yaml (mode 0600), holds secrets: "
        "content not shown"
    ) in dry.stdout
    assert "audit-webhook-kubeconfig.yaml (mode 0600), holds secrets" in dry.stdout
    for secret in (agent_token, webhook_token, key):
        assert secret not in dry.output

    applied = invoke(*args, "--apply")
    assert applied.exit_code == 0, applied.output
    for secret in (agent_token, webhook_token, key):
        assert secret not in applied.output
    secrets = node / MANIFESTS / "k3watch-secrets.yaml"
    assert mode(secrets) == 0o600
    kinds = [d["kind"] for d in yaml.safe_load_all(secrets.read_text())]
    assert kinds == ["Secret", "Secret", "Secret"]
    kubeconfig = yaml.safe_load((node / SERVER / "audit-webhook-kubeconfig.yaml").read_text())
    assert kubeconfig["users"][0]["user"] == {"token": webhook_token}
    assert kubeconfig["clusters"][0]["cluster"]["server"] == "http://127.0.0.1:9443/audit"
    assert mode(node / SERVER / "audit-webhook-kubeconfig.yaml") == 0o600
    dropin = yaml.safe_load((node / DROPIN).read_text())["kube-apiserver-arg+"]
    assert f"audit-webhook-config-file=/{SERVER}/audit-webhook-kubeconfig.yaml" in dropin
    assert "nothing to change" in invoke(*args, "--apply").stdout


def test_webhook_mode_without_a_token_file_is_refused_and_writes_nothing(
    invoke: Invoke, node: Path, write_values: Callable[[str], Path]
) -> None:
    values = write_values("audit:\n  source: webhook\n")
    result = invoke(
        "deploy", "install", "--k3s", "--root", str(node), "--values", str(values), "--apply"
    )
    assert result.exit_code == 2
    assert f"{values}:2: audit.source webhook needs audit.webhook_token_file" in result.stderr
    assert files_under(node) == []


def test_an_agent_only_node_is_refused(invoke: Invoke, node: Path) -> None:
    unit = node / "etc/systemd/system/k3s-agent.service"
    unit.parent.mkdir(parents=True)
    unit.write_text("[Service]\n")
    result = invoke("deploy", "install", "--k3s", "--root", str(node), "--apply")
    assert result.exit_code == 1
    assert "run deploy install --k3s on the server nodes" in result.stderr
    assert files_under(node) == ["etc/systemd/system/k3s-agent.service"]


def test_install_needs_a_target(invoke: Invoke, node: Path) -> None:
    result = invoke("deploy", "install", "--root", str(node))
    assert result.exit_code == 2
    assert "--k3s" in result.output


def test_render_to_a_directory_writes_secrets_0600_and_the_rest_0644(
    invoke: Invoke, tmp_path: Path, write_values: Callable[[str], Path], pki: Path
) -> None:
    values = write_values("tls: {from_dir: pki}\n")
    out = tmp_path / "out"
    result = invoke("deploy", "render", "--values", str(values), "--output-dir", str(out))
    assert result.exit_code == 0, result.output
    assert mode(out / "k3watch.yaml") == 0o644
    assert mode(out / "k3watch-secrets.yaml") == 0o600
    assert (pki / "server.key").read_text().splitlines()[1] not in result.output


def test_render_prints_one_stream_kubectl_can_apply(invoke: Invoke) -> None:
    result = invoke("deploy", "render")
    assert result.exit_code == 0
    kinds = [d["kind"] for d in yaml.safe_load_all(result.stdout)]
    assert kinds[0] == "Namespace"
    assert kinds.count("DaemonSet") == 2


def test_a_bad_values_file_ends_render_with_its_location(
    invoke: Invoke, write_values: Callable[[str], Path]
) -> None:
    values = write_values("image:\n  tag: v1\n  registry: example\n")
    result = invoke("deploy", "render", "--values", str(values))
    assert result.exit_code == 2
    assert f"error: {values}:3: unknown key 'registry'" in result.stderr
