"""Create requests for whole objects: the REST mapping of each kind and wrangler's apply marks.

``create`` derives the resource, API group, namespace and name from the body, as the API server
does, and adds the ``responseObject`` when the policy logs RBAC and webhook writes at
``RequestResponse``.
"""

from __future__ import annotations

import base64
from typing import Any

from k3watch.sample import objects as o
from k3watch.sample.cluster import Actor, hex_digest
from k3watch.sample.engine import World
from k3watch.sample.records import format_seconds, level_for

# kind → (resource, namespaced)
KINDS: dict[str, tuple[str, bool]] = {
    "Namespace": ("namespaces", False),
    "ServiceAccount": ("serviceaccounts", True),
    "ConfigMap": ("configmaps", True),
    "Secret": ("secrets", True),
    "Service": ("services", True),
    "Pod": ("pods", True),
    "PersistentVolumeClaim": ("persistentvolumeclaims", True),
    "PersistentVolume": ("persistentvolumes", False),
    "Deployment": ("deployments", True),
    "ReplicaSet": ("replicasets", True),
    "DaemonSet": ("daemonsets", True),
    "StatefulSet": ("statefulsets", True),
    "Job": ("jobs", True),
    "CronJob": ("cronjobs", True),
    "Role": ("roles", True),
    "RoleBinding": ("rolebindings", True),
    "ClusterRole": ("clusterroles", False),
    "ClusterRoleBinding": ("clusterrolebindings", False),
    "CustomResourceDefinition": ("customresourcedefinitions", False),
    "APIService": ("apiservices", False),
    "StorageClass": ("storageclasses", False),
    "RuntimeClass": ("runtimeclasses", False),
    "PriorityClass": ("priorityclasses", False),
    "IngressClass": ("ingressclasses", False),
    "Ingress": ("ingresses", True),
    "HelmChart": ("helmcharts", True),
    "Addon": ("addons", True),
    "MutatingWebhookConfiguration": ("mutatingwebhookconfigurations", False),
    "ValidatingWebhookConfiguration": ("validatingwebhookconfigurations", False),
    "FlowSchema": ("flowschemas", False),
    "PriorityLevelConfiguration": ("prioritylevelconfigurations", False),
}

API_VERSIONS: dict[str, str] = {
    "Deployment": "apps/v1",
    "ReplicaSet": "apps/v1",
    "DaemonSet": "apps/v1",
    "StatefulSet": "apps/v1",
    "Job": "batch/v1",
    "CronJob": "batch/v1",
    "Role": "rbac.authorization.k8s.io/v1",
    "RoleBinding": "rbac.authorization.k8s.io/v1",
    "ClusterRole": "rbac.authorization.k8s.io/v1",
    "ClusterRoleBinding": "rbac.authorization.k8s.io/v1",
    "CustomResourceDefinition": "apiextensions.k8s.io/v1",
    "APIService": "apiregistration.k8s.io/v1",
    "StorageClass": "storage.k8s.io/v1",
    "RuntimeClass": "node.k8s.io/v1",
    "PriorityClass": "scheduling.k8s.io/v1",
    "IngressClass": "networking.k8s.io/v1",
    "Ingress": "networking.k8s.io/v1",
    "HelmChart": "helm.cattle.io/v1",
    "Addon": "k3s.cattle.io/v1",
    "MutatingWebhookConfiguration": "admissionregistration.k8s.io/v1",
    "ValidatingWebhookConfiguration": "admissionregistration.k8s.io/v1",
    "FlowSchema": "flowcontrol.apiserver.k8s.io/v1",
    "PriorityLevelConfiguration": "flowcontrol.apiserver.k8s.io/v1",
}


def simple(kind: str, name: str, namespace: str | None = None, **fields: Any) -> dict[str, Any]:
    """A body for ``kind`` with the given top-level fields (``spec=...``, ``data=...``)."""
    body: dict[str, Any] = {
        "kind": kind,
        "apiVersion": API_VERSIONS.get(kind, "v1"),
        "metadata": o.meta(name, namespace),
    }
    body.update(fields)
    return body


def applied(w: World, body: dict[str, Any], owner_kind: str, owner: str) -> dict[str, Any]:
    """Mark ``body`` the way wrangler's apply does (K3s deploy and helm controllers)."""
    metadata = body["metadata"]
    blob = base64.b64encode(w.rng.randbytes(180)).decode()
    metadata.setdefault("annotations", {}).update(
        {
            "objectset.rio.cattle.io/applied": "H4sIAAAAAAAA/" + blob,
            "objectset.rio.cattle.io/id": "",
            "objectset.rio.cattle.io/owner-gvk": owner_kind,
            "objectset.rio.cattle.io/owner-name": owner,
            "objectset.rio.cattle.io/owner-namespace": "kube-system",
        }
    )
    metadata.setdefault("labels", {})["objectset.rio.cattle.io/hash"] = hex_digest(w.rng, 40)
    return body


def create(
    w: World,
    t: int,
    actor: Actor,
    body: dict[str, Any],
    *,
    manager: str = "kubectl-client-side-apply",
    code: int | None = None,
    annotations: dict[str, str] | None = None,
    rv: str | None = None,
) -> str:
    """Log the creation of ``body``; returns its uid. ``rv`` avoids moving the shared clock."""
    kind = body["kind"]
    resource, namespaced = KINDS[kind]
    api_version = body["apiVersion"]
    group, _, version = api_version.rpartition("/")
    metadata = body["metadata"]
    namespace = metadata.get("namespace") if namespaced else None
    name = metadata.get("name")
    uid = w.cluster.uid(f"{kind}/{namespace or ''}/{name}")
    response = None
    if level_for("create", resource, None, group) == "RequestResponse":
        response = o.stored(
            body, uid=uid, rv=rv or w.cluster.next_rv(), created=format_seconds(t), manager=manager
        )
    elif rv is None:
        w.cluster.next_rv()
    w.log.request(
        t,
        actor,
        "create",
        resource,
        namespace=namespace,
        name=name,
        group=group,
        version=version,
        body=body,
        response=response,
        code=code,
        annotations=annotations,
    )
    return uid
