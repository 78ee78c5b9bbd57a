"""Small builders every rendered object uses: metadata and labels, volumes, security contexts.

Objects are plain dicts in the order Kubernetes documents its fields, so the YAML reads as a
person would write it.
"""

from __future__ import annotations

import hashlib
from typing import Any

from k3watch import __version__
from k3watch.deploy.values import Values

NAME_LABEL = "app.kubernetes.io/name"
COMPONENT_LABEL = "app.kubernetes.io/component"
NODES_LABEL = "k3watch.io/nodes"  # which DaemonSet an agent pod belongs to
CHECKSUM_ANNOTATION = "k3watch.io/config-sha256"
CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"

# K3s server nodes are untainted by default; these are the taints people put on them (and
# what kubeadm-style clusters use), so the agent still runs there.
CONTROL_PLANE_TOLERATIONS: tuple[dict[str, Any], ...] = (
    {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node-role.kubernetes.io/master", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node-role.kubernetes.io/etcd", "operator": "Exists", "effect": "NoExecute"},
    {"key": "CriticalAddonsOnly", "operator": "Exists"},
)


def selector(component: str, nodes: str | None = None) -> dict[str, str]:
    """The labels a controller selects its pods by (never changes between versions)."""
    labels = {NAME_LABEL: "k3watch", COMPONENT_LABEL: component}
    if nodes is not None:
        labels[NODES_LABEL] = nodes
    return labels


def labels(values: Values, component: str | None, nodes: str | None = None) -> dict[str, str]:
    """Every label of an object: the selector's, the version, who manages it, the user's."""
    out = {NAME_LABEL: "k3watch"}
    if component is not None:
        out.update(selector(component, nodes))
    out["app.kubernetes.io/part-of"] = "k3watch"
    out["app.kubernetes.io/version"] = __version__
    out["app.kubernetes.io/managed-by"] = "k3watch-deploy"
    out.update(values.labels)
    return out


def metadata(
    values: Values,
    name: str,
    component: str | None,
    *,
    nodes: str | None = None,
    namespaced: bool = True,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespaced:
        meta["namespace"] = values.namespace
    meta["labels"] = labels(values, component, nodes)
    return meta


def checksum(*texts: str) -> str:
    """A hash of configuration text, put on a pod template so a change rolls the pods."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def container_security(*, run_as_root: bool) -> dict[str, Any]:
    """Nothing beyond what k3watch needs: no capabilities, no privilege escalation, a
    read-only root file system. ``run_as_root`` only for the agent, which reads root-owned
    0600 files as their owner (without CAP_DAC_OVERRIDE it cannot read anyone else's)."""
    security: dict[str, Any] = {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    if not run_as_root:
        security["runAsNonRoot"] = True
    return security


def host_path(name: str, path: str, kind: str) -> dict[str, Any]:
    return {"name": name, "hostPath": {"path": path, "type": kind}}


def secret_volume(name: str, secret: str, mode: int, optional: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {"secretName": secret, "defaultMode": mode}
    if optional:
        spec["optional"] = True
    return {"name": name, "secret": spec}


def config_map_volume(name: str, config_map: str) -> dict[str, Any]:
    return {"name": name, "configMap": {"name": config_map, "defaultMode": 0o444}}


def mount(name: str, path: str, *, read_only: bool = True) -> dict[str, Any]:
    return {"name": name, "mountPath": path, "readOnly": read_only}


def image_fields(values: Values) -> dict[str, Any]:
    return {"image": values.image.reference, "imagePullPolicy": values.image.pull_policy}
