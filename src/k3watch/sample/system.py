"""Steady-state traffic of the control plane, the nodes and the packaged components.

Volume and sampling. A real 3-node K3s cluster with everything audited writes a few hundred
thousand events a day, most of them heartbeats: node leases (every 10 s per node), leader
election renewals (every 2 s per elected component), the kubelet's node reads, discovery polls,
and informer watches that time out and restart every 5–10 minutes. Those are written at
``scale / HEARTBEAT_SAMPLE`` (periodic ones, by stretching their period; leader election,
the loudest, at ``scale / LEADER_SAMPLE``) and ``scale / WATCH_SAMPLE`` (watches, by dropping
cycles) of their real rate, capped at the real rate. Everything else (pod churn, token
refreshes, humans, CI) runs at ``scale`` times its real rate. At ``scale=1`` a day is about
5,500 events (weekends a little less); at ``scale=40`` heartbeats other than leader
election are at their real rate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from k3watch.sample import objects as o
from k3watch.sample import patches
from k3watch.sample.cluster import Actor, Node, new_uuid, rbac_reason, sa_subject_text
from k3watch.sample.engine import Process, World
from k3watch.sample.informers import watch_loop, watches
from k3watch.sample.records import HOUR, MINUTE, SECOND, format_seconds, format_us
from k3watch.sample.versions import UA_COREDNS, UA_LOCAL_PATH, UA_METRICS, UA_TRAEFIK, ua_component

HEARTBEAT_SAMPLE = 40.0
LEADER_SAMPLE = 600.0
NODE_STATUS_SAMPLE = 4.0

# Controllers whose service-account tokens kube-controller-manager keeps fresh.
TOKEN_CONTROLLERS = (
    "replicaset-controller",
    "deployment-controller",
    "daemon-set-controller",
    "job-controller",
    "cronjob-controller",
    "endpointslice-controller",
    "generic-garbage-collector",
    "namespace-controller",
    "node-controller",
    "statefulset-controller",
    "ttl-after-finished-controller",
    "ephemeral-volume-controller",
)


def heartbeat_period(w: World, real_seconds: float, sample: float = HEARTBEAT_SAMPLE) -> int:
    """The written period of a heartbeat whose real period is ``real_seconds``."""
    return int(real_seconds * SECOND * max(1.0, sample / w.scale))


def _jitter(w: World, period: int) -> int:
    return period + w.rng.randint(-period // 20, period // 20)


def _pod_actor(w: World, namespace: str, app: str, ua: str, reason: str) -> Actor | None:
    pods = w.cluster.pods_of(namespace, app)
    return w.cluster.pod_actor(pods[0], ua, reason) if pods else None


def component_actor(w: World, name: str) -> Actor | None:
    """A packaged component's current pod identity (``None`` while it is not running)."""
    sa = sa_subject_text
    if name == "coredns":
        reason = rbac_reason("system:coredns", "system:coredns", sa("coredns", "kube-system"))
        return _pod_actor(w, "kube-system", "kube-dns", UA_COREDNS, reason)
    if name == "traefik":
        reason = rbac_reason(
            "traefik-kube-system", "traefik-kube-system", sa("traefik", "kube-system")
        )
        return _pod_actor(w, "kube-system", "traefik", UA_TRAEFIK, reason)
    if name == "metrics-server":
        reason = rbac_reason(
            "system:metrics-server", "system:metrics-server", sa("metrics-server", "kube-system")
        )
        return _pod_actor(w, "kube-system", "metrics-server", UA_METRICS, reason)
    if name == "local-path":
        subject = sa("local-path-provisioner-service-account", "kube-system")
        reason = rbac_reason("local-path-provisioner-bind", "local-path-provisioner-role", subject)
        return _pod_actor(w, "kube-system", "local-path-provisioner", UA_LOCAL_PATH, reason)
    raise ValueError(name)


def node_lease(w: World, node: Node, first: int) -> Process:
    """The kubelet renews ``kube-node-lease/<node>`` (every 10 s in a real cluster)."""
    cluster = w.cluster
    uid = cluster.uid(f"lease/kube-node-lease/{node.name}")
    created = format_seconds(first)
    owner = {"apiVersion": "v1", "kind": "Node", "name": node.name, "uid": node.uid}
    period = heartbeat_period(w, 10)
    t = first
    while True:
        yield t
        body = patches.lease(
            node.name,
            "kube-node-lease",
            uid=uid,
            rv=str(cluster.rv),
            created=created,
            holder=node.name,
            duration_s=40,
            renew=format_us(t - w.rng.randint(300, 3_000)),  # set just before sending
            owner=owner,
        )
        cluster.next_rv()
        w.log.request(
            t,
            cluster.kubelet(node),
            "update",
            "leases",
            namespace="kube-node-lease",
            name=node.name,
            group="coordination.k8s.io",
            body=body,
        )
        t += _jitter(w, period)


@dataclass(frozen=True, slots=True)
class LeaderLease:
    """A leader-election lease and who renews it."""

    name: str
    namespace: str
    duration_s: int
    real_period_s: float
    actor: Callable[[World], Actor | None]
    holder: Callable[[World], str]


def leader_lease(w: World, lease: LeaderLease, first: int) -> Process:
    """A leader renews its lease (every 2 s in a real cluster)."""
    cluster = w.cluster
    uid = cluster.uid(f"lease/{lease.namespace}/{lease.name}")
    created = format_seconds(first)
    acquired = format_us(first)
    period = heartbeat_period(
        w, lease.real_period_s, LEADER_SAMPLE if lease.real_period_s < 5 else HEARTBEAT_SAMPLE
    )
    t = first
    while True:
        yield t
        actor = lease.actor(w)
        if actor is not None:
            body = patches.lease(
                lease.name,
                lease.namespace,
                uid=uid,
                rv=str(cluster.rv),
                created=created,
                holder=lease.holder(w),
                duration_s=lease.duration_s,
                renew=format_us(t - w.rng.randint(300, 3_000)),
                acquire=acquired,
                transitions=0,
            )
            cluster.next_rv()
            w.log.request(
                t,
                actor,
                "update",
                "leases",
                namespace=lease.namespace,
                name=lease.name,
                group="coordination.k8s.io",
                body=body,
            )
        t += _jitter(w, period)


def leader_leases(w: World) -> list[LeaderLease]:
    """The elected components of a K3s server and their lease holders."""
    server = w.cluster.server.name
    kcm_id = f"{server}_{new_uuid(w.rng)}"
    sched_id = f"{server}_{new_uuid(w.rng)}"
    ccm_id = f"{server}_{new_uuid(w.rng)}"
    api_id = f"apiserver-{new_uuid(w.rng).replace('-', '')[:26]}"
    lp_id = new_uuid(w.rng)

    def local_path_holder(w: World) -> str:
        pods = w.cluster.pods_of("kube-system", "local-path-provisioner")
        return f"{pods[0].name}_{lp_id}" if pods else lp_id

    cluster = w.cluster
    return [
        LeaderLease(
            "kube-controller-manager",
            "kube-system",
            15,
            2,
            lambda w: cluster.controller_manager("leader-election"),
            lambda w: kcm_id,
        ),
        LeaderLease(
            "kube-scheduler",
            "kube-system",
            15,
            2,
            lambda w: cluster.scheduler("leader-election"),
            lambda w: sched_id,
        ),
        LeaderLease("k3s", "kube-system", 45, 2, lambda w: cluster.supervisor(), lambda w: server),
        LeaderLease(
            "k3s-etcd", "kube-system", 45, 2, lambda w: cluster.supervisor(), lambda w: server
        ),
        LeaderLease(
            "cloud-controller-manager",
            "kube-system",
            15,
            2,
            lambda w: replace(cluster.cloud_controller(), ua=ua_component("leader-election")),
            lambda w: ccm_id,
        ),
        LeaderLease(
            api_id,
            "kube-system",
            3600,
            10,
            lambda w: cluster.apiserver(),
            lambda w: f"{api_id}_{kcm_id[-36:]}",
        ),
        LeaderLease(
            "rancher.io-local-path",
            "kube-system",
            15,
            2,
            lambda w: component_actor(w, "local-path"),
            local_path_holder,
        ),
    ]


def node_status(w: World, node: Node, first: int) -> Process:
    """The kubelet's node status report (every 5 minutes when nothing changes)."""
    since = format_seconds(first)
    period = int(5 * MINUTE * max(1.0, NODE_STATUS_SAMPLE / w.scale))
    t = first
    while True:
        yield t
        w.cluster.next_rv()
        w.log.request(
            t,
            w.cluster.kubelet(node),
            "patch",
            "nodes",
            name=node.name,
            subresource="status",
            body=patches.node_status_patch(format_seconds(t), since),
            reason="",
        )
        t += _jitter(w, period)


def node_read(w: World, node: Node, first: int) -> Process:
    """The kubelet reads its Node (from the watch cache) every 10 s to compute its status."""
    period = heartbeat_period(w, 10)
    t = first
    while True:
        yield t
        w.log.request(
            t,
            w.cluster.kubelet(node),
            "get",
            "nodes",
            name=node.name,
            query="resourceVersion=0",
            reason="",
        )
        t += _jitter(w, period)


def discovery_poll(w: World, controller: str, first: int) -> Process:
    """Garbage collector and quota controller refresh API discovery every 30 s."""
    period = heartbeat_period(w, 30)
    actor = w.cluster.controller(controller)
    t = first
    while True:
        yield t
        w.log.nonresource(t, actor, "/api?timeout=32s")
        w.log.nonresource(t + w.rng.randint(500, 3_000), actor, "/apis?timeout=32s")
        t += _jitter(w, period)


def endpoint_reconciler(w: World, first: int) -> Process:
    """The API server checks the ``default/kubernetes`` endpoints every 10 s."""
    period = heartbeat_period(w, 10)
    actor = w.cluster.apiserver()
    t = first
    while True:
        yield t
        w.log.request(t, actor, "get", "endpoints", namespace="default", name="kubernetes")
        w.log.request(
            t + w.rng.randint(300, 2_000),
            actor,
            "get",
            "endpointslices",
            namespace="default",
            name="kubernetes",
            group="discovery.k8s.io",
        )
        t += _jitter(w, period)


def controller_tokens(w: World, controller: str, first: int) -> Process:
    """kube-controller-manager renews each controller's own token (1 h, refreshed at 80 %)."""
    actor = w.cluster.controller_manager("kube-controller-manager")
    t = first
    while True:
        yield t
        w.log.request(
            t,
            actor,
            "create",
            "serviceaccounts",
            namespace="kube-system",
            name=controller,
            subresource="token",
        )
        t += 48 * MINUTE + w.rng.randint(-120 * SECOND, 120 * SECOND)


def etcd_snapshots(w: World, first: int) -> Process:
    """K3s's scheduled etcd snapshot (``0 */12 * * *``): record it, prune beyond five."""
    cluster = w.cluster
    actor = cluster.supervisor()
    kept: list[str] = []
    t = first
    while True:
        yield t
        stamp = t // SECOND
        name = f"local-etcd-snapshot-{cluster.server.name}-{stamp}-{new_uuid(w.rng)[:6]}"
        body = {
            "kind": "ETCDSnapshotFile",
            "apiVersion": "k3s.cattle.io/v1",
            "metadata": o.meta(
                name, labels={"etcd.k3s.cattle.io/snapshot-storage-node": cluster.server.name}
            ),
            "spec": {
                "snapshotName": f"etcd-snapshot-{cluster.server.name}-{stamp}",
                "nodeName": cluster.server.name,
                "location": f"file:///var/lib/rancher/k3s/server/db/snapshots/etcd-snapshot-{cluster.server.name}-{stamp}",
            },
            "status": {},
        }
        t += w.rng.randint(2 * SECOND, 9 * SECOND)
        cluster.next_rv()
        w.log.request(
            t, actor, "create", "etcdsnapshotfiles", name=name, group="k3s.cattle.io", body=body
        )
        kept.append(name)
        if len(kept) > 5:
            old = kept.pop(0)
            w.log.request(
                t + 40_000, actor, "delete", "etcdsnapshotfiles", name=old, group="k3s.cattle.io"
            )
        w.log.request(
            t + 80_000,
            actor,
            "update",
            "configmaps",
            namespace="kube-system",
            name="k3s-etcd-snapshots",
        )
        t = (t // (12 * HOUR) + 1) * 12 * HOUR


def system_processes(w: World, ready: int) -> list[Process]:
    """All steady-state control-plane and node processes, starting once K3s is up at ``ready``."""
    rng = w.rng
    procs: list[Process] = []
    for node in w.cluster.nodes:
        procs.append(node_lease(w, node, ready + rng.randint(0, 10 * SECOND)))
        procs.append(node_status(w, node, ready + rng.randint(0, 5 * MINUTE)))
        procs.append(node_read(w, node, ready + rng.randint(0, 10 * SECOND)))
    for lease in leader_leases(w):
        procs.append(leader_lease(w, lease, ready + rng.randint(0, 2 * SECOND)))
    for controller in ("generic-garbage-collector", "resourcequota-controller"):
        procs.append(discovery_poll(w, controller, ready + rng.randint(0, 30 * SECOND)))
    procs.append(endpoint_reconciler(w, ready + rng.randint(0, 10 * SECOND)))
    for controller in TOKEN_CONTROLLERS:
        procs.append(controller_tokens(w, controller, ready + rng.randrange(48 * MINUTE)))
    first_snapshot = (ready // (12 * HOUR) + 1) * 12 * HOUR
    procs.append(etcd_snapshots(w, first_snapshot))
    for watch in watches(w, component_actor):
        procs.append(watch_loop(w, watch, ready + rng.randrange(10 * MINUTE)))
    return procs
