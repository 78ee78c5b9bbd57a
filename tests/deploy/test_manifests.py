"""Rendered manifests: valid Kubernetes objects for the versions K3s ships, stable output, the
security settings the deployment promises, and configurations consistent with the mounts.

Golden file: ``tests/golden/deploy/k3watch.yaml`` is ``k3watch deploy render`` with default
values; regenerate it with ``pytest tests/deploy --regen-golden`` and review the diff.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from k3watch.config import load_config
from k3watch.deploy.manifests import render
from k3watch.deploy.values import load_values

GOLDEN = Path(__file__).parent.parent / "golden" / "deploy"
# The Kubernetes minors of the K3s releases in support in late 2026 (1.34-1.37), and 1.33 for
# clusters one release behind; kubernetes-validate bundles the schemas of each (strict: an
# unknown field is an error, as `kubectl apply --validate=strict` makes it).
KUBERNETES_VERSIONS = ("1.33", "1.34", "1.35", "1.36", "1.37")

VARIANTS = {
    "defaults": "",
    "webhook-mtls-statefulset": """
audit: {source: webhook, webhook_token_file: webhook.token}
tls: {mutual: true, from_dir: pki}
agent:
  token_file: agent.token
  journal_group: 101
  k3s_log_file: true
  tolerations: [{key: dedicated, operator: Equal, value: edge, effect: NoSchedule}]
  extra_sources: [{type: file, path: /var/log/kern.log, format: kernel}]
server:
  kind: StatefulSet
  service_type: NodePort
  disruption: block
  storage: {storage_class: null, size: 50Gi}
  node_selector: {kubernetes.io/os: linux}
  config:
    alerting:
      destinations: [{name: am, type: alertmanager, url: "http://alertmanager.monitoring:9093"}]
network_policy:
  server_from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}}]
  metrics_from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}}]
image: {digest: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
""",
    "no-network-policy": "network_policy: {enabled: false}\nagent: {priority_class: null}\n",
}


@pytest.fixture
def variant_objects(
    write_values: Callable[[str], Path], pki: Path, token_files: tuple[Path, Path]
) -> Callable[[str], list[dict[str, Any]]]:
    def objects(name: str) -> list[dict[str, Any]]:
        rendered = render(load_values(write_values(VARIANTS[name])))
        return rendered.objects + rendered.secrets

    return objects


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_object_validates_against_the_kubernetes_schemas(
    variant_objects: Callable[[str], list[dict[str, Any]]], variant: str, version: str
) -> None:
    objects = variant_objects(variant)
    for item in objects:
        kubernetes_validate.validate(item, version, strict=True)
    kinds = {o["kind"] for o in objects}
    assert {"Namespace", "ServiceAccount", "ConfigMap", "Service", "DaemonSet"} <= kinds
    assert {"PodDisruptionBudget"} <= kinds


def test_the_schemas_catch_a_misspelt_field() -> None:
    """The validation above is worth something: a wrong field name fails it."""
    deployment = by_kind(render(load_values(None)).objects, "Deployment")["k3watch-server"]
    deployment["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFileSystem"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, "1.37", strict=True)


def test_default_values_render_the_golden_manifest(regen_golden: bool) -> None:
    text = render(load_values(None)).manifest
    golden = GOLDEN / "k3watch.yaml"
    if regen_golden:
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")


def test_rendering_is_deterministic(
    variant_objects: Callable[[str], list[dict[str, Any]]],
) -> None:
    first = yaml.safe_dump_all(variant_objects("webhook-mtls-statefulset"), sort_keys=False)
    second = yaml.safe_dump_all(variant_objects("webhook-mtls-statefulset"), sort_keys=False)
    assert first == second


def test_default_values_render_no_secret_at_all() -> None:
    rendered = render(load_values(None))
    assert rendered.secrets == []
    assert rendered.secrets_manifest == ""
    assert "Secret" not in {o["kind"] for o in rendered.objects}


def test_secrets_come_from_the_named_files_and_stay_out_of_the_main_manifest(
    write_values: Callable[[str], Path], pki: Path, token_files: tuple[Path, Path]
) -> None:
    rendered = render(load_values(write_values(VARIANTS["webhook-mtls-statefulset"])))
    secrets = by_kind(rendered.secrets, "Secret")
    assert sorted(secrets) == [
        "k3watch-agent-client",
        "k3watch-agent-token",
        "k3watch-server-tls",
        "k3watch-webhook-token",
    ]
    tls = secrets["k3watch-server-tls"]
    assert tls["type"] == "kubernetes.io/tls"
    assert base64.b64decode(tls["data"]["tls.key"]) == (pki / "server.key").read_bytes()
    token = base64.b64decode(secrets["k3watch-agent-token"]["data"]["token"]).decode()
    assert token == token_files[0].read_text().strip()
    assert token not in rendered.manifest
    assert secrets["k3watch-server-tls"]["data"]["tls.key"] not in rendered.manifest
    ca = by_kind(rendered.objects, "ConfigMap")["k3watch-ca"]
    assert ca["data"]["ca.crt"] == (pki / "ca.crt").read_text()


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def test_the_server_pod_runs_unprivileged_with_a_read_only_root() -> None:
    objects = render(load_values(None)).objects
    spec = pod_spec(by_kind(objects, "Deployment")["k3watch-server"])
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in spec["initContainers"] + spec["containers"]:
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert container["resources"]["limits"]["memory"]
    deployment = by_kind(objects, "Deployment")["k3watch-server"]
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}  # one writer on the store
    claim = by_kind(objects, "PersistentVolumeClaim")["k3watch-server-data"]
    assert claim["spec"]["storageClassName"] == "local-path"


def test_no_service_account_gets_a_role_or_a_token() -> None:
    objects = render(load_values(None)).objects
    kinds = {o["kind"] for o in objects}
    assert not kinds & {"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"}
    for account in by_kind(objects, "ServiceAccount").values():
        assert account["automountServiceAccountToken"] is False


def test_agents_cover_server_and_agent_nodes_without_overlap() -> None:
    objects = render(load_values(None)).objects
    sets = by_kind(objects, "DaemonSet")
    servers = pod_spec(sets["k3watch-agent-servers"])
    agents = pod_spec(sets["k3watch-agent"])

    def expression(spec: dict[str, Any]) -> dict[str, Any]:
        terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        result: dict[str, Any] = terms["nodeSelectorTerms"][0]["matchExpressions"][0]
        return result

    assert expression(servers) == {
        "key": "node-role.kubernetes.io/control-plane",
        "operator": "In",
        "values": ["true"],
    }
    assert expression(agents) == {
        "key": "node-role.kubernetes.io/control-plane",
        "operator": "DoesNotExist",
    }
    keys = {t["key"] for t in servers["tolerations"]}
    assert {"node-role.kubernetes.io/control-plane", "CriticalAddonsOnly"} <= keys


def mounts_of(spec: dict[str, Any], claims: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
    """The main container's mounts by path, each with its volume (or a StatefulSet's claim)."""
    container = spec["containers"][0]
    volumes = {v["name"]: v for v in spec["volumes"]}
    volumes.update({name: {"name": name, "claim": True} for name in claims})
    return {m["mountPath"]: {**m, "volume": volumes[m["name"]]} for m in container["volumeMounts"]}


def test_the_agent_mounts_host_logs_read_only_and_only_its_spool_writable() -> None:
    sets = by_kind(render(load_values(None)).objects, "DaemonSet")
    servers = mounts_of(pod_spec(sets["k3watch-agent-servers"]))
    agents = mounts_of(pod_spec(sets["k3watch-agent"]))
    for path in (
        "/var/log",
        "/run/log/journal",
        "/etc/machine-id",
        "/var/lib/rancher/k3s/agent/containerd",
    ):
        assert servers[path]["readOnly"] is True
        assert servers[path]["volume"]["hostPath"]["path"] == path
        assert agents[path]["readOnly"] is True
    audit = servers["/var/lib/rancher/k3s/server/logs"]
    assert audit["readOnly"] is True
    assert audit["volume"]["hostPath"]["type"] == "Directory"  # never created 0755 here
    assert "/var/lib/rancher/k3s/server/logs" not in agents
    writable = {path for path, m in servers.items() if not m["readOnly"]}
    assert writable == {"/var/lib/k3watch/agent", "/tmp"}
    assert servers["/var/lib/k3watch/agent"]["volume"]["hostPath"]["path"] == (
        "/var/lib/k3watch/agent"
    )
    security = pod_spec(sets["k3watch-agent"])["containers"][0]["securityContext"]
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False


def test_webhook_mode_listens_on_a_host_port_of_server_nodes_only(
    variant_objects: Callable[[str], list[dict[str, Any]]],
) -> None:
    objects = variant_objects("webhook-mtls-statefulset")
    sets = by_kind(objects, "DaemonSet")
    servers = pod_spec(sets["k3watch-agent-servers"])
    assert servers["hostNetwork"] is True
    assert servers["dnsPolicy"] == "ClusterFirstWithHostNet"
    ports = {p["name"]: p for p in servers["containers"][0]["ports"]}
    assert ports["audit-webhook"]["hostPort"] == 9443
    assert "hostNetwork" not in pod_spec(sets["k3watch-agent"])
    config = yaml.safe_load(
        by_kind(objects, "ConfigMap")["k3watch-agent-servers"]["data"]["k3watch.yaml"]
    )
    webhook = next(s for s in config["agent"]["sources"] if s["type"] == "webhook")
    assert (webhook["host"], webhook["port"], webhook["path"]) == ("127.0.0.1", 9443, "/audit")
    assert not any(s["type"] == "audit_file" for s in config["agent"]["sources"])
    assert servers["securityContext"]["supplementalGroups"] == [101]


def test_every_file_a_configuration_names_is_mounted_in_its_pod(
    variant_objects: Callable[[str], list[dict[str, Any]]],
) -> None:
    objects = variant_objects("webhook-mtls-statefulset")
    maps = by_kind(objects, "ConfigMap")
    workloads = {**by_kind(objects, "StatefulSet"), **by_kind(objects, "DaemonSet")}
    for name, workload in workloads.items():
        text = maps[name]["data"]["k3watch.yaml"]
        claims = tuple(
            c["metadata"]["name"] for c in workload["spec"].get("volumeClaimTemplates", [])
        )
        mounted = list(mounts_of(pod_spec(workload), claims))
        named = [
            value.removeprefix("$file:")
            for value in strings(yaml.safe_load(text))
            if value.startswith(("/", "$file:/"))
        ]
        assert named, name
        for path in named:
            assert any(path.startswith(m.rstrip("/") + "/") or path == m for m in mounted), (
                f"{name}: {path} is not under a mount ({mounted})"
            )


def strings(value: Any) -> list[str]:
    """Every string in a configuration, but a webhook's URL path (not a file)."""
    if isinstance(value, dict):
        skip = "path" if value.get("type") == "webhook" else None
        return [s for k, v in value.items() if k != skip for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return [value] if isinstance(value, str) else []


def test_the_rendered_configurations_load_as_k3watch_configuration_files(
    variant_objects: Callable[[str], list[dict[str, Any]]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the pods read passes k3watch's own loader (with the pod's references pointed at
    stand-in files)."""
    objects = variant_objects("webhook-mtls-statefulset")
    token = tmp_path / "token"
    token.write_text("k3w_" + "b" * 43 + "\n")
    monkeypatch.setenv("K3WATCH_NODE", "server-1")
    for name, config_map in by_kind(objects, "ConfigMap").items():
        if name == "k3watch-ca":
            continue
        text = config_map["data"]["k3watch.yaml"]
        for reference in ("/etc/k3watch/agent-token/token", "/etc/k3watch/webhook-token/token"):
            text = text.replace(f"$file:{reference}", f"$file:{token}")
        path = tmp_path / f"{name}.yaml"
        path.write_text(text)
        config = load_config(path)
        if name == "k3watch-server":
            assert config.server.tls is not None
            assert config.server.tls.client_ca_file == "/etc/k3watch/ca/ca.crt"
            assert config.server.ingest_listen == "0.0.0.0:8444"
            assert config.alerting.destinations
        else:
            config.agent.require()
            assert config.agent.node_name == "server-1"
            assert config.agent.server == "https://k3watch-server.k3watch.svc:8444"
            assert config.agent.batch_max_events == 1000


def test_network_policies_deny_by_default_and_open_only_the_server_ports() -> None:
    policies = by_kind(render(load_values(None)).objects, "NetworkPolicy")
    assert policies["k3watch-default-deny"]["spec"] == {
        "podSelector": {},
        "policyTypes": ["Ingress"],
    }
    server = policies["k3watch-server"]["spec"]
    assert server["ingress"] == [{"ports": [{"protocol": "TCP", "port": 8443}]}]
    agent = policies["k3watch-agent"]["spec"]
    assert agent["ingress"] == []
    assert agent["egress"][1]["ports"] == [{"protocol": "TCP", "port": 8443}]


def test_a_config_change_changes_the_pod_template_checksum(
    write_values: Callable[[str], Path],
) -> None:
    def checksums(text: str) -> dict[str, str]:
        objects = render(load_values(write_values(text))).objects
        return {
            o["metadata"]["name"]: o["spec"]["template"]["metadata"]["annotations"][
                "k3watch.io/config-sha256"
            ]
            for o in objects
            if o["kind"] in ("Deployment", "DaemonSet")
        }

    before = checksums("")
    after = checksums("agent:\n  spool_max_size: 2GiB\n")
    assert before["k3watch-server"] == after["k3watch-server"]
    assert before["k3watch-agent"] != after["k3watch-agent"]
