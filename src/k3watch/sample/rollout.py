"""Workload controllers at work: Deployments roll out ReplicaSets, ReplicaSets make pods.

The background uses these for the first deployment of every workload and for each CI rollout;
the requests are those of kube-controller-manager's deployment and replicaset controllers,
written with their own service-account identities.
"""

from __future__ import annotations

from typing import Any

from k3watch.sample import objects as o
from k3watch.sample import patches
from k3watch.sample.cluster import Node, Pod, suffix
from k3watch.sample.engine import World
from k3watch.sample.lifecycle import record_event, start_pod, stop_pod
from k3watch.sample.records import SECOND
from k3watch.sample.workloads import Workload

SERVICES = {
    "web": "web",
    "api": "api",
    "kube-dns": "kube-dns",
    "traefik": "traefik",
    "postgres": "postgres",
}


def place(w: World, wl: Workload) -> Node:
    """Node for a new pod of ``wl``: the server for K3s components, else any worker."""
    return w.cluster.server if wl.on_server else w.cluster.pick_worker()


def replicaset_body(
    w: World, wl: Workload, pod_hash: str, replicas: int, spec: dict[str, Any]
) -> dict[str, Any]:
    """The ReplicaSet the deployment controller creates for a pod template."""
    labels = {**wl.labels, "pod-template-hash": pod_hash}
    deployment_uid = w.cluster.uid(f"Deployment/{wl.namespace}/{wl.name}")
    owner = o.owner_ref("apps/v1", "Deployment", wl.name, deployment_uid)
    metadata = o.meta(
        f"{wl.name}-{pod_hash}",
        wl.namespace,
        labels=labels,
        owner=owner,
        annotations={
            "deployment.kubernetes.io/desired-replicas": str(wl.replicas),
            "deployment.kubernetes.io/max-replicas": str(wl.replicas + 1),
            "deployment.kubernetes.io/revision": "1",
        },
    )
    return o.workload(
        "ReplicaSet", metadata, o.template(labels, spec), replicas=replicas, selector=labels
    )


def pod_body(
    w: World,
    wl: Workload,
    owner_kind: str,
    owner_name: str,
    labels: dict[str, str],
    spec: dict[str, Any],
    *,
    name: str | None = None,
) -> dict[str, Any]:
    """A pod as a controller creates it from a stored (defaulted) template."""
    api_version = "batch/v1" if owner_kind == "Job" else "apps/v1"
    uid = w.cluster.uid(f"{owner_kind}/{wl.namespace}/{owner_name}")
    owner = o.owner_ref(api_version, owner_kind, owner_name, uid)
    if name:
        metadata = o.meta(name, wl.namespace, labels=labels, owner=owner)
    else:
        metadata = o.meta(
            generate_name=f"{owner_name}-", namespace=wl.namespace, labels=labels, owner=owner
        )
    return o.pod(metadata, spec)


def start_replicas(
    w: World,
    t: int,
    wl: Workload,
    pod_hash: str,
    count: int,
    spec: dict[str, Any],
    containers: tuple[tuple[str, str], ...] | None = None,
) -> list[Pod]:
    """The replicaset controller creates ``count`` pods of a ReplicaSet."""
    rs_name = f"{wl.name}-{pod_hash}"
    labels = {**wl.labels, "pod-template-hash": pod_hash}
    body = pod_body(w, wl, "ReplicaSet", rs_name, labels, spec)
    creator = w.cluster.controller("replicaset-controller")
    pods = []
    for i in range(count):
        node = place(w, wl)
        pod = w.cluster.add_pod(
            f"{rs_name}-{suffix(w.rng)}",
            wl.namespace,
            node,
            wl.service_account,
            wl.app,
            containers or wl.containers,
        )
        start_pod(
            w,
            t + i * w.rng.randint(3_000, 30_000),
            creator,
            pod,
            body,
            owner=rs_name,
            service=SERVICES.get(wl.app),
        )
        pods.append(pod)
    return pods


def first_rollout(w: World, t: int, wl: Workload) -> int:
    """A new Deployment: its first ReplicaSet and pods. Returns when the pods run."""
    cluster = w.cluster
    pod_hash = cluster.template_hash(wl.name)
    spec = wl.spec()
    t += w.rng.randint(5_000, 40_000)
    dep = cluster.controller("deployment-controller")
    rs = replicaset_body(w, wl, pod_hash, wl.replicas, spec)
    cluster.next_rv()
    w.log.request(
        t,
        dep,
        "create",
        "replicasets",
        namespace=wl.namespace,
        name=rs["metadata"]["name"],
        group="apps",
        body=rs,
    )
    record_event(w, t + w.rng.randint(1_000, 4_000), dep, wl.namespace, wl.name)
    w.log.request(
        t + w.rng.randint(5_000, 15_000),
        dep,
        "update",
        "deployments",
        namespace=wl.namespace,
        name=wl.name,
        subresource="status",
        group="apps",
    )
    t += w.rng.randint(10_000, 50_000)
    start_replicas(w, t, wl, pod_hash, wl.replicas, spec)
    return t + 5 * SECOND


def rolling_update(
    w: World,
    t: int,
    wl: Workload,
    spec: dict[str, Any],
    containers: tuple[tuple[str, str], ...] | None = None,
) -> int:
    """A changed pod template: new ReplicaSet, surge one pod at a time, scale the old one down."""
    cluster, rng, log = w.cluster, w.rng, w.log
    old_hash = cluster.template_hash(wl.name)
    new_hash = cluster.template_hashes[wl.name] = cluster.new_template_hash()
    dep = cluster.controller("deployment-controller")
    rs = replicaset_body(w, wl, new_hash, 1, spec)
    t += rng.randint(5_000, 30_000)
    cluster.next_rv()
    log.request(
        t,
        dep,
        "create",
        "replicasets",
        namespace=wl.namespace,
        name=rs["metadata"]["name"],
        group="apps",
        body=rs,
    )
    record_event(w, t + rng.randint(1_000, 4_000), dep, wl.namespace, wl.name)
    old = [p for p in cluster.pods_of(wl.namespace, wl.app) if old_hash in p.name]
    replicaset = cluster.controller("replicaset-controller")
    for i in range(wl.replicas):
        t += rng.randint(20_000, 80_000)
        if i:
            log.request(
                t,
                dep,
                "patch",
                "replicasets",
                namespace=wl.namespace,
                name=rs["metadata"]["name"],
                group="apps",
                body=patches.scale_patch(i + 1),
            )
        start_replicas(w, t + rng.randint(3_000, 9_000), wl, new_hash, 1, spec, containers)
        t += rng.randint(4, 12) * SECOND
        if old:
            log.request(
                t,
                dep,
                "patch",
                "replicasets",
                namespace=wl.namespace,
                name=f"{wl.name}-{old_hash}",
                group="apps",
                body=patches.scale_patch(len(old) - 1),
            )
            record_event(w, t + rng.randint(1_000, 4_000), dep, wl.namespace, wl.name)
            victim = old.pop(0)
            stop_pod(
                w, t + rng.randint(5_000, 30_000), replicaset, victim, service=SERVICES.get(wl.app)
            )
    log.request(
        t + rng.randint(5_000, 20_000),
        dep,
        "update",
        "deployments",
        namespace=wl.namespace,
        name=wl.name,
        subresource="status",
        group="apps",
    )
    return t
