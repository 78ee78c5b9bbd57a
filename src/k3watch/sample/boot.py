"""The first minutes of the cluster: K3s boots, deploys its add-ons, agents join.

These are the benign look-alikes that detection rules must survive on K3s:

* ``system:k3s-supervisor`` (deploy and helm controllers) creating ClusterRoles and
  ClusterRoleBindings, including the helm controller's ``helm-kube-system-traefik*`` bindings
  of the ``helm-traefik*`` service accounts to ``cluster-admin``;
* ``helm-install-traefik*`` Job pods in kube-system, and Helm (``Helm/3.16.3``) creating CRDs;
* the ``svclb-traefik-*`` DaemonSet (created by ``k3s-cloud-controller-manager``) and its pods
  with ``NET_ADMIN`` and host ports, created by the daemon-set controller;
* the API server's own bootstrap RBAC (``cluster-admin`` bound to ``system:masters``).

Day-0 provisioning by the admin follows (``provision``).
"""

from __future__ import annotations

from collections.abc import Generator

from k3watch.sample import addons, patches
from k3watch.sample import objects as o
from k3watch.sample.cluster import Actor, hex_digest, rbac_reason, sa_subject_text, suffix
from k3watch.sample.engine import Process, World
from k3watch.sample.lifecycle import record_event, start_pod
from k3watch.sample.provision import provision
from k3watch.sample.records import MINUTE, SECOND
from k3watch.sample.rollout import first_rollout, pod_body
from k3watch.sample.versions import IMAGES, UA_HELM
from k3watch.sample.workloads import (
    SYSTEM_WORKLOADS,
    TRAEFIK,
    TRAEFIK_CHART,
    TRAEFIK_CRD_CHART,
    Workload,
    helm_install_spec,
    svclb_spec,
)
from k3watch.sample.writes import applied, create, simple

TRAEFIK_CLUSTER_IP = "10.43.182.194"


def boot(w: World) -> Process:
    """The K3s boot burst at the start of the stream, then day-0 provisioning."""
    c, rng = w.cluster, w.rng
    t = w.start
    yield t
    api = c.apiserver()
    for body in addons.bootstrap_objects():
        create(w, t, api, body, manager="k3s")
        t += rng.randint(1_000, 9_000)
    t += 3 * SECOND
    yield t

    # The supervisor registers its CRDs and secrets, the server's kubelet its node.
    core = c.supervisor()
    for body in addons.supervisor_crds():
        create(w, t, core, body, manager="k3s-supervisor@server-1")
        t += rng.randint(5_000, 30_000)
    for secret in ("k3s-serving", f"{c.server.name}.node-password.k3s"):
        create(w, t, core, simple("Secret", secret, "kube-system"))
        t += rng.randint(5_000, 30_000)
    _register_node(w, t, 0)
    t += 2 * SECOND
    yield t

    # The deploy controller applies /var/lib/rancher/k3s/server/manifests.
    deploy = c.supervisor("deploy")
    for addon, bodies in addons.addon_manifests().items():
        source = f"/var/lib/rancher/k3s/server/manifests/{addon}.yaml"
        spec = {"source": source, "checksum": hex_digest(rng)}
        create(w, t, deploy, simple("Addon", addon, "kube-system", spec=spec))
        t += rng.randint(10_000, 60_000)
        for body in bodies:
            applied(w, body, addons.ADDON_GVK, addon)
            create(w, t, deploy, body, manager=f"deploy@{c.server.name}")
            t += rng.randint(3_000, 25_000)
        t += rng.randint(50_000, 300_000)
    yield t

    # Controllers react: default service accounts, root CA config maps, first pods.
    for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
        create(
            w,
            t,
            c.controller("service-account-controller"),
            simple("ServiceAccount", "default", ns),
        )
        ca = simple("ConfigMap", "kube-root-ca.crt", ns)
        create(w, t + rng.randint(1_000, 9_000), c.controller("root-ca-cert-publisher"), ca)
        t += rng.randint(5_000, 20_000)
    for wl in SYSTEM_WORKLOADS:
        first_rollout(w, t, wl)
        t += rng.randint(50_000, 400_000)
    yield t

    # The helm controller installs the Traefik charts through helm-install Jobs.
    for chart in ("traefik-crd", "traefik"):
        t = yield from _helm_chart(w, t, chart)

    # Traefik runs, and the cloud controller's ServiceLB exposes it on every node.
    first_rollout(w, t, TRAEFIK)
    t += rng.randint(1, 3) * SECOND
    _servicelb(w, t)
    t += 5 * SECOND
    yield t

    # Agents join over the next minute.
    for index in range(1, len(c.nodes)):
        t += rng.randint(10, 40) * SECOND
        yield t
        create(
            w, t, core, simple("Secret", f"{c.nodes[index].name}.node-password.k3s", "kube-system")
        )
        _register_node(w, t + rng.randint(1, 3) * SECOND, index)
        _start_svclb_pod(w, t + 5 * SECOND, index)

    # Day-0 provisioning by the admin on the server (an Ansible play using k3s.yaml).
    t += 5 * MINUTE
    yield t
    provision(w, t)


def _register_node(w: World, t: int, index: int) -> None:
    c = w.cluster
    node = c.nodes[index]
    kubelet = c.kubelet(node)
    c.next_rv()
    body = patches.node_object(node, hex_digest(w.rng, 52).upper())
    w.log.request(t, kubelet, "create", "nodes", name=node.name, body=body, reason="")
    w.log.request(
        t + w.rng.randint(20_000, 200_000),
        kubelet,
        "create",
        "leases",
        namespace="kube-node-lease",
        name=node.name,
        group="coordination.k8s.io",
        reason="",
    )
    roles = ("control-plane", "etcd", "master") if node.is_server else ()
    labels = {f"node-role.kubernetes.io/{role}": "true" for role in roles}
    patch = {"metadata": {"labels": labels}, "spec": {"taints": None}}
    w.log.request(
        t + w.rng.randint(500_000, 2_000_000),
        c.cloud_controller(),
        "patch",
        "nodes",
        name=node.name,
        body=patch,
    )


def _helm_chart(w: World, t: int, chart: str) -> Generator[int, None, int]:
    """The helm controller's Job for ``chart``; ``helm install`` runs in its pod. Returns end."""
    c, rng = w.cluster, w.rng
    helm = c.supervisor("helm-controller")
    manager = f"helm-controller@{c.server.name}"
    for body in addons.helm_controller_objects(chart):
        create(w, t, helm, applied(w, body, addons.HELM_GVK, chart), manager=manager)
        t += rng.randint(3_000, 20_000)
    name, sa = f"helm-install-{chart}", f"helm-{chart}"
    chart_url = TRAEFIK_CRD_CHART if chart == "traefik-crd" else TRAEFIK_CHART
    job = Workload(
        name,
        "kube-system",
        "Job",
        name,
        sa,
        (("helm", IMAGES["klipper-helm"]),),
        1,
        True,
        lambda: helm_install_spec(chart_url, chart),
    )
    labels = {"helmcharts.helm.cattle.io/chart": chart}
    body = o.workload(
        "Job",
        o.meta(name, "kube-system", labels=labels),
        o.template(labels, job.spec()),
        extra_spec={"backoffLimit": 1000},
    )
    create(w, t, helm, applied(w, body, addons.HELM_GVK, chart), manager=manager)
    t += rng.randint(20_000, 80_000)
    pod = c.add_pod(f"{name}-{suffix(rng)}", "kube-system", c.server, sa, name, job.containers)
    job_ctl = c.controller("job-controller")
    start_pod(w, t, job_ctl, pod, pod_body(w, job, "Job", name, labels, job.spec()), owner=name)
    t += rng.randint(6, 12) * SECOND
    yield t
    reason = rbac_reason(
        f"helm-kube-system-{chart}", "cluster-admin", sa_subject_text(sa, "kube-system")
    )
    _helm_install(w, t, c.pod_actor(pod, UA_HELM, reason), chart)
    t += rng.randint(8, 20) * SECOND
    c.remove_pod(pod)
    w.log.request(
        t,
        job_ctl,
        "update",
        "jobs",
        namespace="kube-system",
        name=name,
        subresource="status",
        group="batch",
    )
    record_event(w, t + 3_000, job_ctl, "kube-system", name)
    w.log.request(
        t + rng.randint(20_000, 90_000),
        helm,
        "update",
        "helmcharts",
        namespace="kube-system",
        name=chart,
        subresource="status",
        group="helm.cattle.io",
    )
    t += 2 * SECOND
    yield t
    return t


def _helm_install(w: World, t: int, client: Actor, release: str) -> None:
    """What ``helm install`` sends from the helm-install pod, release secret last."""
    for body in addons.helm_release_objects(release):
        create(w, t, client, body, manager="helm")
        t += w.rng.randint(20_000, 120_000)
    secret = f"sh.helm.release.v1.{release}.v1"
    create(w, t, client, simple("Secret", secret, "kube-system"), manager="helm")
    w.log.request(
        t + w.rng.randint(1, 4) * SECOND,
        client,
        "update",
        "secrets",
        namespace="kube-system",
        name=secret,
    )


def svclb_name(w: World) -> str:
    """ServiceLB names its DaemonSet after the service and the first 8 characters of its uid."""
    return f"svclb-traefik-{w.cluster.uid('Service/kube-system/traefik')[:8]}"


def _svclb_labels(name: str) -> dict[str, str]:
    return {
        "app": name,
        "svccontroller.k3s.cattle.io/svcname": "traefik",
        "svccontroller.k3s.cattle.io/svcnamespace": "kube-system",
    }


def _servicelb(w: World, t: int) -> None:
    c = w.cluster
    name = svclb_name(w)
    ds_labels = {
        "svccontroller.k3s.cattle.io/nodeselector": "false",
        "svccontroller.k3s.cattle.io/svcname": "traefik",
        "svccontroller.k3s.cattle.io/svcnamespace": "kube-system",
    }
    strategy = {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}}
    template = o.template(_svclb_labels(name), svclb_spec(name, TRAEFIK_CLUSTER_IP))
    ds = o.workload(
        "DaemonSet",
        o.meta(name, "kube-system", labels=ds_labels),
        template,
        selector={"app": name},
        extra_spec=strategy,
    )
    ccm = c.cloud_controller()
    create(
        w, t, ccm, applied(w, ds, "/v1, Kind=Service", "traefik"), manager="service-lb-controller"
    )
    record_event(w, t + 5_000, ccm, "kube-system", "traefik")
    _start_svclb_pod(w, t + w.rng.randint(20_000, 80_000), 0)


def _start_svclb_pod(w: World, t: int, index: int) -> None:
    c = w.cluster
    name = svclb_name(w)
    node = c.nodes[index]
    containers = (("lb-tcp-80", IMAGES["klipper-lb"]), ("lb-tcp-443", IMAGES["klipper-lb"]))
    wl = Workload(
        name,
        "kube-system",
        "DaemonSet",
        name,
        "svclb",
        containers,
        1,
        False,
        lambda: svclb_spec(name, TRAEFIK_CLUSTER_IP),
    )
    labels = {
        **_svclb_labels(name),
        "controller-revision-hash": hex_digest(w.rng, 10),
        "pod-template-generation": "1",
    }
    spec = o.pinned_to(wl.spec(), node.name)
    pod = c.add_pod(
        f"{name}-{suffix(w.rng)}",
        "kube-system",
        node,
        "svclb",
        name,
        containers,
        projected_token=False,
    )
    body = pod_body(w, wl, "DaemonSet", name, labels, spec)
    start_pod(w, t, c.controller("daemon-set-controller"), pod, body, owner=name)
