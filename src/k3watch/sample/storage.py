"""local-path-provisioner at work: K3s's default StorageClass, backed by host directories.

To create or remove a volume the provisioner runs a short-lived *helper pod* in kube-system on
the volume's node, privileged, with a hostPath mount of ``/var/lib/rancher/k3s/storage`` — a
benign event that looks like a container escape to rules #9, #11 and #15 of DETECTIONS.md.
"""

from __future__ import annotations

from k3watch.sample import objects as o
from k3watch.sample.cluster import Node
from k3watch.sample.engine import World
from k3watch.sample.lifecycle import DELETE_OPTIONS_KIND, patch_pod_status, start_pod
from k3watch.sample.records import SECOND
from k3watch.sample.system import component_actor
from k3watch.sample.versions import IMAGES
from k3watch.sample.workloads import STORAGE_DIR, local_path_helper
from k3watch.sample.writes import create, simple


def _helper(
    w: World, t: int, action: str, claim: str, namespace: str, node: Node, size: int
) -> int:
    c = w.cluster
    provisioner = component_actor(w, "local-path")
    if provisioner is None:
        return t
    pvc_uid = c.uid(f"PersistentVolumeClaim/{namespace}/{claim}")
    pv = f"pvc-{pvc_uid}"
    name = f"helper-pod-{action}-{pv}"
    body = o.pod(
        o.meta(name, "kube-system"),
        local_path_helper(action, f"{pv}_{namespace}_{claim}", node.name, size),
    )
    pod = c.add_pod(
        name,
        "kube-system",
        node,
        "local-path-provisioner-service-account",
        "local-path-helper",
        (("helper-pod", IMAGES["busybox"]),),
    )
    running = start_pod(
        w, t, provisioner, pod, body, owner=claim, schedule=False, track=False, controller=False
    )
    done = running + w.rng.randint(1, 3) * SECOND
    patch_pod_status(w, done, pod, "Succeeded")
    t = done + w.rng.randint(200_000, 1_000_000)
    c.remove_pod(pod)
    w.log.request(
        t,
        provisioner,
        "delete",
        "pods",
        namespace="kube-system",
        name=name,
        body=dict(DELETE_OPTIONS_KIND),
    )
    final = dict(DELETE_OPTIONS_KIND, gracePeriodSeconds=0, preconditions={"uid": pod.uid})
    w.log.request(
        t + w.rng.randint(100_000, 900_000),
        c.kubelet(node),
        "delete",
        "pods",
        namespace="kube-system",
        name=name,
        body=final,
        reason="",
    )
    return t + w.rng.randint(10_000, 100_000)


def provision_volume(w: World, t: int, claim: str, namespace: str, node: Node, size: int) -> int:
    """The scheduler picks a node, the provisioner prepares the directory and creates the PV."""
    c = w.cluster
    w.log.request(
        t,
        c.scheduler(),
        "patch",
        "persistentvolumeclaims",
        namespace=namespace,
        name=claim,
        body={"metadata": {"annotations": {"volume.kubernetes.io/selected-node": node.name}}},
    )
    t = _helper(w, t + w.rng.randint(50_000, 300_000), "create", claim, namespace, node, size)
    provisioner = component_actor(w, "local-path")
    if provisioner is None:
        return t
    pv = f"pvc-{c.uid(f'PersistentVolumeClaim/{namespace}/{claim}')}"
    body = simple(
        "PersistentVolume",
        pv,
        spec={
            "capacity": {"storage": str(size)},
            "hostPath": {
                "path": f"{STORAGE_DIR}/{pv}_{namespace}_{claim}",
                "type": "DirectoryOrCreate",
            },
            "accessModes": ["ReadWriteOnce"],
            "claimRef": {"kind": "PersistentVolumeClaim", "namespace": namespace, "name": claim},
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": "local-path",
            "volumeMode": "Filesystem",
            "nodeAffinity": {
                "required": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {
                                    "key": "kubernetes.io/hostname",
                                    "operator": "In",
                                    "values": [node.name],
                                }
                            ]
                        }
                    ]
                }
            },
        },
    )
    body["metadata"]["annotations"] = {
        "local.path.provisioner/selected-node": node.name,
        "pv.kubernetes.io/provisioned-by": "rancher.io/local-path",
    }
    create(w, t, provisioner, body)
    binder = c.controller("persistent-volume-binder")
    t += w.rng.randint(20_000, 200_000)
    w.log.request(t, binder, "update", "persistentvolumes", name=pv, subresource="status")
    w.log.request(
        t + w.rng.randint(2_000, 20_000),
        binder,
        "update",
        "persistentvolumeclaims",
        namespace=namespace,
        name=claim,
    )
    return t + w.rng.randint(100_000, 500_000)


def release_volume(w: World, t: int, claim: str, namespace: str, node: Node, size: int) -> int:
    """After its claim is deleted the provisioner wipes the directory and deletes the PV."""
    t = _helper(w, t, "delete", claim, namespace, node, size)
    provisioner = component_actor(w, "local-path")
    if provisioner is None:
        return t
    pv = f"pvc-{w.cluster.uid(f'PersistentVolumeClaim/{namespace}/{claim}')}"
    w.log.request(
        t, provisioner, "delete", "persistentvolumes", name=pv, body=dict(DELETE_OPTIONS_KIND)
    )
    return t + w.rng.randint(50_000, 300_000)
