"""Request bodies of routine updates: leases, status patches, scaling, token requests.

These are what the kubelet and the controllers send many times a day; ``node_object`` is the
kubelet's registration of its Node.
"""

from __future__ import annotations

from typing import Any

from k3watch.sample.cluster import Node
from k3watch.sample.objects import meta
from k3watch.sample.versions import K3S_VERSION

_NODE_CONDITIONS = ("MemoryPressure", "DiskPressure", "PIDPressure", "Ready")
_POD_CONDITIONS = (
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
    "PodScheduled",
)


def lease(
    name: str,
    namespace: str,
    *,
    uid: str,
    rv: str,
    created: str,
    holder: str,
    duration_s: int,
    renew: str,
    owner: dict[str, Any] | None = None,
    acquire: str | None = None,
    transitions: int | None = None,
    manager: str = "k3s",
) -> dict[str, Any]:
    """A Lease as its holder sends it back on renewal (the full object, managedFields included)."""
    spec: dict[str, Any] = {"holderIdentity": holder, "leaseDurationSeconds": duration_s}
    fields: dict[str, Any] = {
        "f:holderIdentity": {},
        "f:leaseDurationSeconds": {},
        "f:renewTime": {},
    }
    if acquire:
        spec["acquireTime"] = acquire
        fields["f:acquireTime"] = {}
    spec["renewTime"] = renew
    if transitions is not None:
        spec["leaseTransitions"] = transitions
        fields["f:leaseTransitions"] = {}
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": uid,
        "resourceVersion": rv,
        "creationTimestamp": created,
    }
    managed: dict[str, Any] = {"f:spec": fields}
    if owner:
        metadata["ownerReferences"] = [owner]
        managed["f:metadata"] = {
            "f:ownerReferences": {".": {}, f'k:{{"uid":"{owner["uid"]}"}}': {}}
        }
    metadata["managedFields"] = [
        {
            "manager": manager,
            "operation": "Update",
            "apiVersion": "coordination.k8s.io/v1",
            "time": created,
            "fieldsType": "FieldsV1",
            "fieldsV1": managed,
        }
    ]
    return {
        "kind": "Lease",
        "apiVersion": "coordination.k8s.io/v1",
        "metadata": metadata,
        "spec": spec,
    }


def node_status_patch(heartbeat: str, since: str) -> dict[str, Any]:
    """The kubelet's periodic strategic-merge patch of ``nodes/status`` (heartbeat only)."""
    conditions: list[dict[str, Any]] = []
    for kind in _NODE_CONDITIONS:
        ready = kind == "Ready"
        conditions.append(
            {
                "lastHeartbeatTime": heartbeat,
                "lastTransitionTime": since,
                "message": "kubelet is posting ready status" if ready else _pressure_message(kind),
                "reason": "KubeletReady" if ready else _pressure_reason(kind),
                "status": "True" if ready else "False",
                "type": kind,
            }
        )
    return {
        "status": {
            "$setElementOrder/conditions": [{"type": k} for k in _NODE_CONDITIONS],
            "conditions": conditions,
        }
    }


def _pressure_reason(kind: str) -> str:
    return {
        "MemoryPressure": "KubeletHasSufficientMemory",
        "DiskPressure": "KubeletHasNoDiskPressure",
        "PIDPressure": "KubeletHasSufficientPID",
    }[kind]


def _pressure_message(kind: str) -> str:
    return {
        "MemoryPressure": "kubelet has sufficient memory available",
        "DiskPressure": "kubelet has no disk pressure",
        "PIDPressure": "kubelet has sufficient PID available",
    }[kind]


def pod_status_patch(
    *,
    uid: str,
    now: str,
    started: str,
    host_ip: str,
    pod_ip: str,
    containers: tuple[tuple[str, str], ...],
    container_ids: list[str],
    digests: list[str],
    phase: str = "Running",
) -> dict[str, Any]:
    """The kubelet's status patch when a pod's containers are up (or have terminated)."""
    running = phase == "Running"
    statuses = []
    for (name, image), cid, digest in zip(containers, container_ids, digests, strict=True):
        repo = image.rsplit(":", 1)[0]
        state: dict[str, Any]
        if running:
            state = {"running": {"startedAt": started}}
        else:
            state = {
                "terminated": {
                    "containerID": f"containerd://{cid}",
                    "exitCode": 0,
                    "finishedAt": now,
                    "reason": "Completed",
                    "startedAt": started,
                }
            }
        statuses.append(
            {
                "containerID": f"containerd://{cid}",
                "image": image,
                "imageID": f"{repo}@sha256:{digest}",
                "lastState": {},
                "name": name,
                "ready": running,
                "restartCount": 0,
                "started": running,
                "state": state,
            }
        )
    conditions = [
        {"lastTransitionTime": now, "status": "True" if running else "False", "type": kind}
        for kind in ("PodReadyToStartContainers", "Ready", "ContainersReady")
    ]
    return {
        "metadata": {"uid": uid},
        "status": {
            "$setElementOrder/conditions": [{"type": k} for k in _POD_CONDITIONS],
            "conditions": conditions,
            "containerStatuses": statuses,
            "hostIP": host_ip,
            "hostIPs": [{"ip": host_ip}],
            "phase": phase,
            "podIP": pod_ip,
            "podIPs": [{"ip": pod_ip}],
            "startTime": started,
        },
    }


def image_patch(container_name: str, image: str) -> dict[str, Any]:
    """``kubectl set image`` (strategic merge patch)."""
    return {
        "spec": {"template": {"spec": {"containers": [{"image": image, "name": container_name}]}}}
    }


def restart_patch(when: str) -> dict[str, Any]:
    """``kubectl rollout restart`` (strategic merge patch)."""
    return {
        "spec": {
            "template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": when}}}
        }
    }


def scale_patch(replicas: int) -> dict[str, Any]:
    return {"spec": {"replicas": replicas}}


def token_request(audience: str, seconds: int, pod_name: str, pod_uid: str) -> dict[str, Any]:
    """The kubelet's TokenRequest for a projected service-account token volume."""
    return {
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": {
            "audiences": [audience],
            "expirationSeconds": seconds,
            "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": pod_name, "uid": pod_uid},
        },
        "status": {"token": "", "expirationTimestamp": None},
    }


def node_object(node: Node, config_hash: str) -> dict[str, Any]:
    """The Node a K3s kubelet registers (still tainted until the cloud controller sees it)."""
    labels = {
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/instance-type": "k3s",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": node.name,
        "kubernetes.io/os": "linux",
        "node.kubernetes.io/instance-type": "k3s",
    }
    annotations = {
        "k3s.io/hostname": node.name,
        "k3s.io/internal-ip": node.ip,
        "k3s.io/node-args": '["server","--cluster-init"]' if node.is_server else '["agent"]',
        "k3s.io/node-config-hash": config_hash,
        "node.alpha.kubernetes.io/ttl": "0",
        "volumes.kubernetes.io/controller-managed-attach-detach": "true",
    }
    taint = {
        "key": "node.cloudprovider.kubernetes.io/uninitialized",
        "value": "true",
        "effect": "NoSchedule",
    }
    node_info = {
        "kubeletVersion": K3S_VERSION,
        "kubeProxyVersion": K3S_VERSION,
        "containerRuntimeVersion": "containerd://1.7.23-k3s2",
        "operatingSystem": "linux",
        "architecture": "amd64",
        "osImage": "Ubuntu 24.04.1 LTS",
        "kernelVersion": "6.8.0-51-generic",
        "machineID": "",
        "systemUUID": "",
        "bootID": "",
    }
    return {
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": meta(node.name, labels=labels, annotations=annotations),
        "spec": {
            "podCIDR": node.pod_cidr,
            "podCIDRs": [node.pod_cidr],
            "providerID": f"k3s://{node.name}",
            "taints": [taint],
        },
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": node.ip},
                {"type": "Hostname", "address": node.name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": node_info,
        },
    }
