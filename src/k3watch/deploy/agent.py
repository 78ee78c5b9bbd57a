"""The agents' objects: two DaemonSets that never share a node, and their ConfigMaps.

- ``k3watch-agent-servers`` runs on K3s server nodes (label
  ``node-role.kubernetes.io/control-plane``, tolerating the taints people put there). It
  reads the API server's audit log from the read-only mounted log directory, or, with
  ``audit.source: webhook``, runs on the host network and takes the API server's audit
  webhook on the node's loopback address, on a declared host port.
- ``k3watch-agent`` runs on every other node.

Both read the journal (``/var/log/journal``, ``/run/log/journal`` and ``/etc/machine-id``,
without which journalctl finds no journal of "this" machine), K3s's containerd log and
``/var/log``, all read-only, and keep their spool on a hostPath under ``/var/lib/k3watch``
so that a restarted or updated pod resumes where the last one stopped.

The agent runs as uid 0 with every capability dropped: the files it reads are root's and
mode 0600/0700 (the audit log must be, for the CIS checks), which their owner can read without
CAP_DAC_OVERRIDE; it cannot read other users' files, write the host outside its spool, or
gain privileges. Kubernetes cannot give a non-root user CAP_DAC_READ_SEARCH (no ambient
capabilities), which is what the systemd unit does instead.
"""

from __future__ import annotations

from typing import Any

from k3watch.deploy import paths
from k3watch.deploy.objects import (
    CHECKSUM_ANNOTATION,
    CONTROL_PLANE_LABEL,
    CONTROL_PLANE_TOLERATIONS,
    checksum,
    config_map_volume,
    container_security,
    host_path,
    image_fields,
    metadata,
    mount,
    secret_volume,
    selector,
)
from k3watch.deploy.values import Values
from k3watch.deploy.yamlout import dump

COMPONENT = "agent"


def agent_objects(
    values: Values, server_nodes: dict[str, Any], agent_nodes: dict[str, Any]
) -> list[dict[str, Any]]:
    """ConfigMaps, then DaemonSets: server nodes, then agent nodes."""
    configs = {paths.AGENT_SERVERS: dump(server_nodes), paths.AGENT: dump(agent_nodes)}
    out: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata(values, name, COMPONENT, nodes=_nodes(name)),
            "data": {"k3watch.yaml": text},
        }
        for name, text in configs.items()
    ]
    for name, text in configs.items():
        out.append(_daemon_set(values, name, checksum(text)))
    return out


def _nodes(name: str) -> str:
    return "servers" if name == paths.AGENT_SERVERS else "agents"


def _daemon_set(values: Values, name: str, config_hash: str) -> dict[str, Any]:
    nodes = _nodes(name)
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": metadata(values, name, COMPONENT, nodes=nodes),
        "spec": {
            "selector": {"matchLabels": selector(COMPONENT, nodes)},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {
                "metadata": {
                    "labels": metadata(values, name, COMPONENT, nodes=nodes)["labels"],
                    "annotations": {CHECKSUM_ANNOTATION: config_hash},
                },
                "spec": _pod_spec(values, name, servers=nodes == "servers"),
            },
        },
    }


def _host_network(values: Values, servers: bool) -> bool:
    return servers and values.audit.source == "webhook"


def _pod_spec(values: Values, config_map: str, *, servers: bool) -> dict[str, Any]:
    host_network = _host_network(values, servers)
    security: dict[str, Any] = {
        "runAsUser": 0,
        "runAsGroup": 0,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if values.agent.journal_group is not None:
        security["supplementalGroups"] = [values.agent.journal_group]
    spec: dict[str, Any] = {
        "serviceAccountName": paths.AGENT,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
    }
    if values.agent.priority_class is not None:
        spec["priorityClassName"] = values.agent.priority_class
    if host_network:
        spec["hostNetwork"] = True
        spec["dnsPolicy"] = "ClusterFirstWithHostNet"  # to resolve the server's Service
    spec["securityContext"] = security
    spec["terminationGracePeriodSeconds"] = 30  # SIGTERM spools what was read, then exits
    spec["affinity"] = _affinity(servers)
    spec["tolerations"] = [
        *map(dict, CONTROL_PLANE_TOLERATIONS),
        *map(dict, values.agent.tolerations),
    ]
    spec["containers"] = [_container(values, servers=servers)]
    spec["volumes"] = _volumes(values, config_map, servers=servers)
    return spec


def _affinity(servers: bool) -> dict[str, Any]:
    expression: dict[str, Any] = {
        "key": CONTROL_PLANE_LABEL,
        "operator": "In" if servers else "DoesNotExist",
    }
    if servers:
        expression["values"] = ["true"]
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [expression]}]
            }
        }
    }


def _container(values: Values, *, servers: bool) -> dict[str, Any]:
    host_network = _host_network(values, servers)
    ports: list[dict[str, Any]] = [
        {"name": "metrics", "containerPort": values.agent.metrics_port, "protocol": "TCP"}
    ]
    if host_network:
        # On the host network a container port is a host port; declaring it makes the
        # scheduler refuse a second pod that wants it.
        ports[0]["hostPort"] = values.agent.metrics_port
        ports.append(
            {
                "name": "audit-webhook",
                "containerPort": values.audit.webhook_port,
                "hostPort": values.audit.webhook_port,
                "protocol": "TCP",
            }
        )
    health: dict[str, Any] = {"path": "/healthz", "port": "metrics"}
    if host_network:
        health["host"] = "127.0.0.1"  # the metrics listen on the node's loopback only
    return {
        "name": "agent",
        **image_fields(values),
        "command": list(values.image.command),
        "args": ["agent", "--config", paths.CONFIG_FILE, "--log-format", "json"],
        "env": [
            {"name": paths.NODE_ENV, "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}
        ],
        "ports": ports,
        "livenessProbe": {
            "httpGet": health,
            "initialDelaySeconds": 10,
            "periodSeconds": 30,
            "timeoutSeconds": 5,
            "failureThreshold": 3,
        },
        "resources": values.agent.resources.to_kubernetes(),
        "securityContext": container_security(run_as_root=True),
        "volumeMounts": _mounts(values, servers=servers),
    }


def _mounts(values: Values, *, servers: bool) -> list[dict[str, Any]]:
    mounts = [
        mount("config", paths.CONFIG_DIR),
        mount("ca", paths.CA_DIR),
        mount("agent-token", paths.AGENT_TOKEN_DIR),
    ]
    if values.tls.mutual:
        mounts.append(mount("client", paths.CLIENT_DIR))
    if servers and values.audit.source == "webhook":
        mounts.append(mount("webhook-token", paths.WEBHOOK_TOKEN_DIR))
    mounts.append(mount("spool", paths.SPOOL_DIR, read_only=False))
    if servers and values.audit.source == "file":
        mounts.append(mount("audit-log", paths.AUDIT_LOG_DIR))
    mounts.append(mount("var-log", paths.VAR_LOG))
    mounts.append(mount("run-journal", paths.RUN_JOURNAL))
    mounts.append(mount("machine-id", paths.MACHINE_ID))
    if values.agent.containerd_log:
        mounts.append(mount("containerd", paths.CONTAINERD_DIR))
    mounts.append(mount("tmp", "/tmp", read_only=False))
    return mounts


def _volumes(values: Values, config_map: str, *, servers: bool) -> list[dict[str, Any]]:
    volumes = [
        config_map_volume("config", config_map),
        config_map_volume("ca", values.tls.ca_config_map),
        secret_volume("agent-token", values.agent.token_secret, 0o400),
    ]
    if values.tls.mutual:
        volumes.append(secret_volume("client", values.tls.client_secret, 0o400))
    if servers and values.audit.source == "webhook":
        volumes.append(secret_volume("webhook-token", values.audit.webhook_token_secret, 0o400))
    volumes.append(host_path("spool", values.agent.spool_host_dir, "DirectoryOrCreate"))
    if servers and values.audit.source == "file":
        # "Directory", not "OrCreate": a directory made here would be 0755, which the CIS
        # checks fail; the pod waits until `k3watch k3s setup` has made it 0700.
        volumes.append(host_path("audit-log", paths.AUDIT_LOG_DIR, "Directory"))
    volumes.append(host_path("var-log", paths.VAR_LOG, "Directory"))
    volumes.append(host_path("run-journal", paths.RUN_JOURNAL, "DirectoryOrCreate"))
    volumes.append(host_path("machine-id", paths.MACHINE_ID, "File"))
    if values.agent.containerd_log:
        volumes.append(host_path("containerd", paths.CONTAINERD_DIR, "DirectoryOrCreate"))
    volumes.append({"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}})
    return volumes
