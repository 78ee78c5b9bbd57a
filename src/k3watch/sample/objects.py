"""Request bodies (``requestObject``) as clients send them: pods, workloads, leases, patches.

A ``requestObject`` is logged as received, before defaulting and admission. Objects written by
controllers from a stored template therefore carry the defaulted fields
(``terminationMessagePath``, ``imagePullPolicy``, ``schedulerName``…) while objects written by
hand or by a script carry only what their author typed. Both kinds appear below.
"""

from __future__ import annotations

from typing import Any

_DEFAULTED_CONTAINER = {
    "resources": {},
    "terminationMessagePath": "/dev/termination-log",
    "terminationMessagePolicy": "File",
    "imagePullPolicy": "IfNotPresent",
}


def meta(
    name: str | None = None,
    namespace: str | None = None,
    *,
    generate_name: str | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    owner: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``metadata`` of an object being created (no uid or resourceVersion yet)."""
    out: dict[str, Any] = {}
    if name:
        out["name"] = name
    if generate_name:
        out["generateName"] = generate_name
    if namespace:
        out["namespace"] = namespace
    out["creationTimestamp"] = None
    if labels:
        out["labels"] = labels
    if annotations:
        out["annotations"] = annotations
    if owner:
        out["ownerReferences"] = [owner]
    return out


def owner_ref(api_version: str, kind: str, name: str, uid: str) -> dict[str, Any]:
    """A controller owner reference, as controllers set it on what they create."""
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def container(
    name: str,
    image: str,
    *,
    defaulted: bool = True,
    args: list[str] | None = None,
    command: list[str] | None = None,
    ports: list[dict[str, Any]] | None = None,
    env: list[dict[str, Any]] | None = None,
    mounts: list[dict[str, Any]] | None = None,
    resources: dict[str, Any] | None = None,
    security: dict[str, Any] | None = None,
    probes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One container; ``defaulted`` adds the fields the API server fills in on storage."""
    out: dict[str, Any] = {"name": name, "image": image}
    if command:
        out["command"] = command
    if args:
        out["args"] = args
    if ports:
        out["ports"] = ports
    if env:
        out["env"] = env
    if defaulted:
        out.update(_DEFAULTED_CONTAINER)
    if resources is not None:
        out["resources"] = resources
    if mounts:
        out["volumeMounts"] = mounts
    if probes:
        out.update(probes)
    if security is not None:
        out["securityContext"] = security
    return out


def pod_spec(
    containers: list[dict[str, Any]],
    *,
    defaulted: bool = True,
    volumes: list[dict[str, Any]] | None = None,
    service_account: str | None = None,
    node_name: str | None = None,
    host_network: bool = False,
    host_pid: bool = False,
    priority_class: str | None = None,
    tolerations: list[dict[str, Any]] | None = None,
    node_selector: dict[str, str] | None = None,
    security: dict[str, Any] | None = None,
    restart_policy: str = "Always",
    automount: bool | None = None,
) -> dict[str, Any]:
    """A pod spec; ``defaulted`` adds restartPolicy, dnsPolicy, schedulerName and friends."""
    spec: dict[str, Any] = {}
    if volumes:
        spec["volumes"] = volumes
    spec["containers"] = containers
    if defaulted or restart_policy != "Always":
        spec["restartPolicy"] = restart_policy
    if defaulted:
        spec["terminationGracePeriodSeconds"] = 30
        spec["dnsPolicy"] = "ClusterFirstWithHostNet" if host_network else "ClusterFirst"
    if node_selector:
        spec["nodeSelector"] = node_selector
    if service_account:
        spec["serviceAccountName"] = service_account
        if defaulted:
            spec["serviceAccount"] = service_account
    if automount is not None:
        spec["automountServiceAccountToken"] = automount
    if node_name:
        spec["nodeName"] = node_name
    if host_network:
        spec["hostNetwork"] = True
    if host_pid:
        spec["hostPID"] = True
    if security is not None or defaulted:
        spec["securityContext"] = security or {}
    if defaulted:
        spec["schedulerName"] = "default-scheduler"
    if tolerations:
        spec["tolerations"] = tolerations
    if priority_class:
        spec["priorityClassName"] = priority_class
    return spec


def pod(metadata: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "Pod", "apiVersion": "v1", "metadata": metadata, "spec": spec, "status": {}}


def template(labels: dict[str, str], spec: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"creationTimestamp": None, "labels": labels}, "spec": spec}


def workload(
    kind: str,
    metadata: dict[str, Any],
    pod_template: dict[str, Any],
    *,
    replicas: int | None = None,
    selector: dict[str, str] | None = None,
    extra_spec: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A Deployment, ReplicaSet, DaemonSet or Job body."""
    api_version = "batch/v1" if kind == "Job" else "apps/v1"
    spec: dict[str, Any] = {}
    if replicas is not None:
        spec["replicas"] = replicas
    if selector is not None:
        spec["selector"] = {"matchLabels": selector}
    spec["template"] = pod_template
    if extra_spec:
        spec.update(extra_spec)
    return {
        "kind": kind,
        "apiVersion": api_version,
        "metadata": metadata,
        "spec": spec,
        "status": {},
    }


def volume_mount(name: str, path: str, *, read_only: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name}
    if read_only:
        out["readOnly"] = True
    out["mountPath"] = path
    return out


def host_path_volume(name: str, path: str, kind: str | None = None) -> dict[str, Any]:
    source: dict[str, Any] = {"path": path}
    if kind:
        source["type"] = kind
    return {"name": name, "hostPath": source}


def tolerations_control_plane() -> list[dict[str, Any]]:
    """Tolerations K3s puts on its packaged components so they can run on the server."""
    return [
        {"key": "CriticalAddonsOnly", "operator": "Exists"},
        {
            "key": "node-role.kubernetes.io/control-plane",
            "operator": "Exists",
            "effect": "NoSchedule",
        },
        {"key": "node-role.kubernetes.io/master", "operator": "Exists", "effect": "NoSchedule"},
    ]


def binding(name: str, namespace: str, uid: str, node: str) -> dict[str, Any]:
    """The scheduler's ``pods/binding`` body."""
    return {
        "kind": "Binding",
        "apiVersion": "v1",
        "metadata": {"name": name, "namespace": namespace, "uid": uid, "creationTimestamp": None},
        "target": {"kind": "Node", "name": node},
    }


def cluster_role_binding(
    name: str,
    role: str,
    subjects: list[dict[str, Any]],
    *,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "kind": "ClusterRoleBinding",
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "metadata": meta(name, labels=labels, annotations=annotations),
        "subjects": subjects,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
    }


def cluster_role(
    name: str, rules: list[dict[str, Any]], *, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "kind": "ClusterRole",
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "metadata": meta(name, labels=labels),
        "rules": rules,
    }


def rule(groups: list[str], resources: list[str], verbs: list[str]) -> dict[str, Any]:
    return {"verbs": verbs, "apiGroups": groups, "resources": resources}


def sa_subject(name: str, namespace: str) -> dict[str, Any]:
    return {"kind": "ServiceAccount", "name": name, "namespace": namespace}


def stored(
    body: dict[str, Any], *, uid: str, rv: str, created: str, manager: str
) -> dict[str, Any]:
    """``body`` as the API server returns it after a create (for ``responseObject``)."""
    metadata = {k: v for k, v in body["metadata"].items() if k != "creationTimestamp"}
    metadata.update({"uid": uid, "resourceVersion": rv, "creationTimestamp": created})
    metadata["managedFields"] = [
        {
            "manager": manager,
            "operation": "Update",
            "apiVersion": body["apiVersion"],
            "time": created,
            "fieldsType": "FieldsV1",
            "fieldsV1": {f"f:{k}": {} for k in body if k not in ("kind", "apiVersion", "metadata")},
        }
    ]
    out = dict(body)
    out["metadata"] = metadata
    return out


def pinned_to(spec: dict[str, Any], node: str) -> dict[str, Any]:
    """``spec`` with the node affinity the DaemonSet controller sets on each of its pods."""
    term = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
    required = {"nodeSelectorTerms": [term]}
    pinned = dict(spec)
    pinned["affinity"] = {
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": required}
    }
    return pinned
