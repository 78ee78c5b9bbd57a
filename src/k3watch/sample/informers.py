"""Informers: the watches every controller, kubelet and component keeps open.

A client-go reflector lists once, then watches with a ``timeoutSeconds`` between 5 and 10
minutes and restarts the watch when it ends. Each restart is one long-running request:
a ``ResponseStarted`` and, when it times out, a ``ResponseComplete`` with the same auditID.
Cycles are written with probability ``scale / WATCH_SAMPLE`` (see ``system``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from k3watch.sample.cluster import Actor, Node
from k3watch.sample.engine import Process, World
from k3watch.sample.records import SECOND, watch_query

WATCH_SAMPLE = 20.0
ActorOf = Callable[[World], Actor | None]
_PROXY_LABELS = "!service.kubernetes.io/headless,!service.kubernetes.io/service-proxy-name"


@dataclass(frozen=True, slots=True)
class Watch:
    """An informer's watch: who, on what, with which selectors."""

    actor: Callable[[World], Actor | None]
    resource: str
    group: str = ""
    version: str = "v1"
    namespace: str | None = None
    fields: str | None = None
    labels: str | None = None


def watch_loop(w: World, watch: Watch, first: int) -> Process:
    """A watch that times out after 5–10 minutes and is restarted by its reflector."""
    keep = min(1.0, w.scale / WATCH_SAMPLE)
    name = (
        watch.fields.split("=", 1)[1]
        if watch.fields and watch.fields.startswith("metadata.name=")
        else None
    )
    t = first
    while True:
        yield t
        timeout = w.rng.randint(300, 599)
        if w.rng.random() < keep:
            actor = watch.actor(w)
            if actor is not None:
                query = watch_query(
                    str(w.cluster.rv),
                    timeout,
                    field_selector=watch.fields,
                    label_selector=watch.labels,
                )
                w.log.request(
                    t,
                    actor,
                    "watch",
                    watch.resource,
                    namespace=watch.namespace,
                    name=name,
                    group=watch.group,
                    version=watch.version,
                    query=query,
                )
        t += timeout * SECOND + w.rng.randint(1_000, 400_000)


def _node_watches(w: World, node: Node) -> list[Watch]:
    c = w.cluster

    def kubelet(w: World) -> Actor:
        return c.kubelet(node)

    def proxy(w: World) -> Actor:
        return c.kube_proxy(node)

    def agent(w: World) -> Actor:
        return c.k3s_controller(node)

    return [
        Watch(kubelet, "nodes", fields=f"metadata.name={node.name}"),
        Watch(kubelet, "pods", fields=f"spec.nodeName={node.name}"),
        Watch(kubelet, "services"),
        Watch(kubelet, "runtimeclasses", "node.k8s.io"),
        *(
            Watch(kubelet, "configmaps", namespace=ns, fields="metadata.name=kube-root-ca.crt")
            for ns in ("kube-system", "default", "shop", "ci")
        ),
        Watch(proxy, "services", labels=_PROXY_LABELS),
        Watch(proxy, "endpointslices", "discovery.k8s.io", labels=_PROXY_LABELS),
        Watch(agent, "nodes"),
        Watch(agent, "networkpolicies", "networking.k8s.io"),
    ]


def watches(w: World, component: Callable[[World, str], Actor | None]) -> list[Watch]:
    """The informers of a running K3s server and its agents (a representative subset).

    ``component(w, name)`` gives a packaged component's pod identity (or ``None``).
    """
    c = w.cluster
    out: list[Watch] = []
    for node in c.nodes:
        out += _node_watches(w, node)
    kcm = lambda w: c.controller_manager("shared-informers")  # noqa: E731
    for resource, group in (
        ("pods", ""),
        ("nodes", ""),
        ("replicasets", "apps"),
        ("deployments", "apps"),
        ("daemonsets", "apps"),
        ("statefulsets", "apps"),
        ("jobs", "batch"),
        ("cronjobs", "batch"),
        ("endpointslices", "discovery.k8s.io"),
        ("services", ""),
        ("namespaces", ""),
        ("serviceaccounts", ""),
        ("persistentvolumeclaims", ""),
        ("leases", "coordination.k8s.io"),
    ):
        out.append(Watch(kcm, resource, group))
    sched = lambda w: c.scheduler()  # noqa: E731
    out += [
        Watch(sched, "pods", fields="status.phase!=Succeeded,status.phase!=Failed"),
        Watch(sched, "nodes"),
        Watch(sched, "persistentvolumeclaims"),
        Watch(sched, "csinodes", "storage.k8s.io"),
        Watch(sched, "namespaces"),
    ]
    sup = lambda w: c.supervisor()  # noqa: E731
    helm = lambda w: c.supervisor("helm-controller")  # noqa: E731
    deploy = lambda w: c.supervisor("deploy")  # noqa: E731
    ccm = lambda w: c.cloud_controller()  # noqa: E731
    out += [
        Watch(sup, "nodes"),
        Watch(sup, "secrets", namespace="kube-system"),
        Watch(sup, "etcdsnapshotfiles", "k3s.cattle.io"),
        Watch(deploy, "addons", "k3s.cattle.io", namespace="kube-system"),
        Watch(helm, "helmcharts", "helm.cattle.io"),
        Watch(helm, "helmchartconfigs", "helm.cattle.io"),
        Watch(helm, "jobs", "batch", labels="helmcharts.helm.cattle.io/chart"),
        Watch(ccm, "services"),
        Watch(ccm, "nodes"),
        Watch(ccm, "pods", namespace="kube-system", labels="svccontroller.k3s.cattle.io/svcname"),
        Watch(lambda w: c.apiserver(), "namespaces"),
        Watch(lambda w: c.apiserver(), "priorityclasses", "scheduling.k8s.io"),
    ]
    coredns = lambda w: component(w, "coredns")  # noqa: E731
    traefik = lambda w: component(w, "traefik")  # noqa: E731
    metrics = lambda w: component(w, "metrics-server")  # noqa: E731
    local_path = lambda w: component(w, "local-path")  # noqa: E731
    out += [
        Watch(coredns, "endpointslices", "discovery.k8s.io"),
        Watch(coredns, "services"),
        Watch(coredns, "namespaces"),
        Watch(traefik, "ingresses", "networking.k8s.io"),
        Watch(traefik, "services"),
        Watch(traefik, "endpointslices", "discovery.k8s.io"),
        Watch(traefik, "secrets"),
        Watch(traefik, "ingressroutes", "traefik.io", "v1alpha1"),
        Watch(traefik, "middlewares", "traefik.io", "v1alpha1"),
        Watch(metrics, "nodes"),
        Watch(metrics, "pods"),
        Watch(
            metrics,
            "configmaps",
            namespace="kube-system",
            fields="metadata.name=extension-apiserver-authentication",
        ),
        Watch(
            local_path,
            "configmaps",
            namespace="kube-system",
            fields="metadata.name=local-path-config",
        ),
        Watch(local_path, "persistentvolumeclaims"),
    ]
    return out
