"""What the control plane and the kubelet do when a pod starts or stops.

A pod creation is never alone in an audit log: the scheduler binds it, the kubelet mints its
service-account token, reports events and patches its status, and the EndpointSlice controller
updates the service's endpoints. These helpers write that chain with realistic delays.
"""

from __future__ import annotations

import hashlib
from typing import Any

from k3watch.sample import objects as o
from k3watch.sample import patches
from k3watch.sample.cluster import Actor, Node, Pod, hex_digest, new_uuid
from k3watch.sample.engine import Process, World
from k3watch.sample.records import SECOND, format_seconds

TOKEN_REFRESH_US = 2_886 * SECOND  # the kubelet renews at 80 % of the 3607 s token lifetime
DELETE_OPTIONS_KIND = {"kind": "DeleteOptions", "apiVersion": "meta.k8s.io/__internal"}


def event_name(t: int, nanos: int, involved: str) -> str:
    """Name of an Event as the event recorder makes it: ``<object>.<UnixNano in hex>``."""
    return f"{involved}.{t * 1000 + nanos:x}"


def record_event(
    w: World, t: int, actor: Actor, namespace: str, involved: str, *, new_api: bool = False
) -> None:
    """An Event object written by a controller or the kubelet (Metadata level, no body)."""
    name = event_name(t, w.rng.randrange(1000), involved)
    if new_api:
        w.log.request(
            t, actor, "create", "events", namespace=namespace, name=name, group="events.k8s.io"
        )
    else:
        w.log.request(t, actor, "create", "events", namespace=namespace, name=name)


def start_pod(
    w: World,
    t: int,
    creator: Actor,
    pod: Pod,
    body: dict[str, Any],
    *,
    owner: str,
    schedule: bool = True,
    service: str | None = None,
    track: bool = True,
    controller: bool = True,
) -> int:
    """Write a pod's creation and start-up; returns when it is running.

    ``controller``: the creator is a controller, which records a ``SuccessfulCreate`` event
    on its owner object. ``track`` (background pods) starts the kubelet's token refresh for as
    long as the pod exists; attack scenarios pass ``False`` as they must not change shared state.
    """
    rng, log = w.rng, w.log
    named = "name" in body["metadata"]
    log.request(
        t,
        creator,
        "create",
        "pods",
        namespace=pod.namespace,
        name=pod.name if named else None,
        body=body,
        annotations={"pod-security.kubernetes.io/enforce-policy": "privileged:latest"},
    )
    t += rng.randint(2_000, 6_000)
    if controller:
        record_event(w, t, creator, pod.namespace, owner)
    if schedule:
        t += rng.randint(8_000, 40_000)
        scheduler = w.cluster.scheduler()
        log.request(
            t,
            scheduler,
            "create",
            "pods",
            namespace=pod.namespace,
            name=pod.name,
            subresource="binding",
            body=o.binding(pod.name, pod.namespace, pod.uid, pod.node.name),
        )
        record_event(
            w, t + rng.randint(500, 3_000), scheduler, pod.namespace, pod.name, new_api=True
        )
    kubelet = w.cluster.kubelet(pod.node)
    t += rng.randint(300_000, 1_500_000)
    for secret in referenced_secrets(body):
        # The Node authorizer lets a kubelet read the secrets of pods bound to its node.
        log.request(t, kubelet, "get", "secrets", namespace=pod.namespace, name=secret, reason="")
        t += rng.randint(1_000, 20_000)
    if pod.projected_token:
        request_token(w, t, pod)
        t += rng.randint(20_000, 200_000)
    pod.started = t
    for _ in range(len(pod.containers) * 3):  # Pulled, Created, Started per container
        t += rng.randint(50_000, 600_000)
        record_event(w, t, kubelet, pod.namespace, pod.name)
    t += rng.randint(100_000, 2_000_000)
    patch_pod_status(w, t, pod, "Running")
    if service:
        t += rng.randint(5_000, 60_000)
        update_endpoints(w, t, pod.namespace, service)
    if track and pod.projected_token:
        w.spawn(token_refresh(w, pod, t + TOKEN_REFRESH_US + rng.randint(-60, 60) * SECOND))
    return t


def referenced_secrets(body: dict[str, Any]) -> list[str]:
    """Secrets a pod uses through environment variables or volumes, in spec order."""
    spec = body.get("spec", {})
    names: list[str] = []
    for container in spec.get("containers", []):
        for env in container.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                names.append(ref["name"])
    for volume in spec.get("volumes", []):
        if "secret" in volume:
            names.append(volume["secret"]["secretName"])
    return list(dict.fromkeys(names))


def request_token(w: World, t: int, pod: Pod) -> None:
    """The kubelet's TokenRequest for the pod's projected ``kube-api-access`` volume."""
    w.log.request(
        t,
        w.cluster.kubelet(pod.node),
        "create",
        "serviceaccounts",
        namespace=pod.namespace,
        name=pod.service_account,
        subresource="token",
        reason="",  # granted by the Node authorizer: the pod is bound to this node
        body=patches.token_request(
            "https://kubernetes.default.svc.cluster.local", 3607, pod.name, pod.uid
        ),
    )


def token_refresh(w: World, pod: Pod, first: int) -> Process:
    """The kubelet renews the pod's projected token for as long as the pod exists."""
    t = first
    while True:
        yield t
        if w.cluster.pods.get((pod.namespace, pod.name)) is not pod:
            return
        request_token(w, t, pod)
        t += TOKEN_REFRESH_US + w.rng.randint(-90, 90) * SECOND


def patch_pod_status(w: World, t: int, pod: Pod, phase: str) -> None:
    """The kubelet reports the pod ``Running`` (or terminated, ``Succeeded``)."""
    if not pod.container_ids:
        pod.container_ids = tuple(hex_digest(w.rng) for _ in pod.containers)
    body = patches.pod_status_patch(
        uid=pod.uid,
        now=format_seconds(t),
        started=format_seconds(pod.started or t),
        host_ip=pod.node.ip,
        pod_ip=pod.ip,
        containers=pod.containers,
        container_ids=list(pod.container_ids),
        digests=[_digest(image) for _, image in pod.containers],
        phase=phase,
    )
    w.log.request(
        t,
        w.cluster.kubelet(pod.node),
        "patch",
        "pods",
        namespace=pod.namespace,
        name=pod.name,
        subresource="status",
        body=body,
    )


def _digest(image: str) -> str:
    # Stable per image (a hash of its name), so the same image always shows the same digest.
    return hashlib.sha256(image.encode()).hexdigest()


def update_endpoints(w: World, t: int, namespace: str, service: str) -> None:
    """The EndpointSlice controller rewrites the slice of ``service`` after a pod change."""
    cluster = w.cluster
    pods = [p for p in cluster.pods.values() if p.namespace == namespace and p.app == service]
    slice_name = f"{service}-{cluster.uid(f'slice/{namespace}/{service}')[:5]}"
    body = {
        "kind": "EndpointSlice",
        "apiVersion": "discovery.k8s.io/v1",
        "metadata": {
            "name": slice_name,
            "generateName": f"{service}-",
            "namespace": namespace,
            "uid": cluster.uid(f"slice/{namespace}/{service}"),
            "resourceVersion": str(cluster.rv),
            "labels": {
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                "kubernetes.io/service-name": service,
            },
        },
        "addressType": "IPv4",
        "endpoints": [
            {
                "addresses": [p.ip],
                "conditions": {"ready": True, "serving": True, "terminating": False},
                "targetRef": {"kind": "Pod", "namespace": namespace, "name": p.name, "uid": p.uid},
                "nodeName": p.node.name,
            }
            for p in pods
        ],
        "ports": [{"name": "http", "protocol": "TCP", "port": 8080 if service == "api" else 80}],
    }
    cluster.next_rv()
    w.log.request(
        t,
        cluster.controller("endpointslice-controller"),
        "update",
        "endpointslices",
        namespace=namespace,
        name=slice_name,
        group="discovery.k8s.io",
        body=body,
    )


def stop_pod(w: World, t: int, deleter: Actor, pod: Pod, *, service: str | None = None) -> int:
    """Write a pod's deletion by a controller, its graceful stop and the kubelet's final delete."""
    rng, log, cluster = w.rng, w.log, w.cluster
    options = dict(DELETE_OPTIONS_KIND, preconditions={"uid": pod.uid})
    log.request(t, deleter, "delete", "pods", namespace=pod.namespace, name=pod.name, body=options)
    cluster.remove_pod(pod)
    if service:
        update_endpoints(w, t + rng.randint(2_000, 20_000), pod.namespace, service)
    record_event(
        w, t + rng.randint(50_000, 400_000), cluster.kubelet(pod.node), pod.namespace, pod.name
    )
    t += rng.randint(1, 25) * SECOND
    patch_pod_status(w, t, pod, "Succeeded")
    t += rng.randint(20_000, 400_000)
    final = dict(DELETE_OPTIONS_KIND, gracePeriodSeconds=0, preconditions={"uid": pod.uid})
    log.request(
        t,
        cluster.kubelet(pod.node),
        "delete",
        "pods",
        namespace=pod.namespace,
        name=pod.name,
        body=final,
        reason="",
    )
    return t


def detached_pod(
    w: World,
    name: str,
    namespace: str,
    node: Node,
    service_account: str,
    containers: tuple[tuple[str, str], ...],
    *,
    host_network: bool = False,
) -> Pod:
    """A pod that exists only in one scenario's story, not in the shared cluster state."""
    return Pod(
        name=name,
        namespace=namespace,
        node=node,
        ip=node.ip if host_network else f"10.42.{node.index}.{w.rng.randint(200, 250)}",
        uid=new_uuid(w.rng),
        service_account=service_account,
        app=name,
        containers=containers,
        host_network=host_network,
        jti=new_uuid(w.rng),
    )
