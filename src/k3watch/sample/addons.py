"""The objects K3s creates for itself: bootstrap RBAC, packaged manifests, Traefik's charts.

Only bodies live here (what the deploy and helm controllers, Helm and the API server send);
``boot`` decides who sends them and when.
"""

from __future__ import annotations

from typing import Any

from k3watch.sample import objects as o
from k3watch.sample import workloads as wls
from k3watch.sample.workloads import SYSTEM_WORKLOADS, TRAEFIK, Workload
from k3watch.sample.writes import simple

ADDON_GVK = "k3s.cattle.io/v1, Kind=Addon"
HELM_GVK = "helm.cattle.io/v1, Kind=HelmChart"
RBAC = "rbac.authorization.k8s.io"
TRAEFIK_CRDS = (
    "ingressroutes",
    "ingressroutetcps",
    "ingressrouteudps",
    "middlewares",
    "middlewaretcps",
    "serverstransports",
    "serverstransporttcps",
    "tlsoptions",
    "tlsstores",
    "traefikservices",
)
TRAEFIK_VALUES = """\
deployment:
  podAnnotations:
    prometheus.io/port: "8082"
    prometheus.io/scrape: "true"
providers:
  kubernetesIngress:
    publishedService:
      enabled: true
priorityClassName: "system-cluster-critical"
image:
  repository: "rancher/mirrored-library-traefik"
  tag: "2.11.10"
"""
_PRIORITY_TEXT = (
    "Used for system critical pods that must run in the cluster, but can be moved to another "
    "node if necessary."
)
_READ = ["get", "list", "watch"]


def user(name: str) -> dict[str, Any]:
    return {"apiGroup": RBAC, "kind": "User", "name": name}


def group(name: str) -> dict[str, Any]:
    return {"apiGroup": RBAC, "kind": "Group", "name": name}


def crd(api_group: str, plural: str, kind: str, version: str = "v1") -> dict[str, Any]:
    schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    names = {"plural": plural, "singular": plural[:-1], "kind": kind, "listKind": f"{kind}List"}
    version_spec = {
        "name": version,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": schema},
        "subresources": {"status": {}},
    }
    spec = {
        "group": api_group,
        "names": names,
        "scope": "Namespaced",
        "versions": [version_spec],
        "conversion": {"strategy": "None"},
    }
    return simple("CustomResourceDefinition", f"{plural}.{api_group}", spec=spec)


def service_account(name: str, namespace: str) -> dict[str, Any]:
    return simple("ServiceAccount", name, namespace)


def service(
    name: str, namespace: str, selector: dict[str, str], port: int, **spec: Any
) -> dict[str, Any]:
    ports = [{"name": "http", "port": port, "protocol": "TCP", "targetPort": port}]
    return simple("Service", name, namespace, spec={"ports": ports, "selector": selector, **spec})


def workload_body(wl: Workload) -> dict[str, Any]:
    """The Deployment or StatefulSet manifest of ``wl``."""
    labels = dict(wl.labels)
    metadata = o.meta(wl.name, wl.namespace, labels=dict(labels))
    kind = "StatefulSet" if wl.kind == "StatefulSet" else "Deployment"
    extra = {"serviceName": wl.name} if kind == "StatefulSet" else {"revisionHistoryLimit": 0}
    return o.workload(
        kind,
        metadata,
        o.template(labels, wl.spec()),
        replicas=wl.replicas,
        selector=labels,
        extra_spec=extra,
    )


def bootstrap_objects() -> list[dict[str, Any]]:
    """What kube-apiserver's bootstrap controllers create on a new datastore."""
    out = [
        simple("Namespace", ns, spec={}, status={"phase": "Active"})
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease")
    ]
    for name, value in (
        ("system-node-critical", 2000001000),
        ("system-cluster-critical", 2000000000),
    ):
        out.append(
            simple(
                "PriorityClass",
                name,
                value=value,
                description=_PRIORITY_TEXT,
                preemptionPolicy="PreemptLowerPriority",
            )
        )
    labels = {"kubernetes.io/bootstrapping": "rbac-defaults"}
    auto = {"rbac.authorization.kubernetes.io/autoupdate": "true"}
    for role in (
        "cluster-admin",
        "admin",
        "edit",
        "view",
        "system:discovery",
        "system:node",
        "system:node-proxier",
        "system:kube-controller-manager",
        "system:kube-scheduler",
        "system:kubelet-api-admin",
    ):
        wildcard = role == "cluster-admin"
        rules = [o.rule(["*"], ["*"], ["*"])] if wildcard else [o.rule([""], ["pods"], _READ)]
        out.append(o.cluster_role(role, rules, labels=labels))
    bindings = [
        ("cluster-admin", group("system:masters")),
        ("system:discovery", group("system:authenticated")),
        ("system:kube-controller-manager", user("system:kube-controller-manager")),
        ("system:kube-scheduler", user("system:kube-scheduler")),
        ("system:node-proxier", user("system:kube-proxy")),
    ]
    for controller in (
        "replicaset-controller",
        "deployment-controller",
        "daemon-set-controller",
        "job-controller",
        "endpointslice-controller",
        "namespace-controller",
    ):
        bindings.append(
            (f"system:controller:{controller}", o.sa_subject(controller, "kube-system"))
        )
    for name, subject in bindings:
        out.append(o.cluster_role_binding(name, name, [subject], labels=labels, annotations=auto))
    out.append(simple("ConfigMap", "extension-apiserver-authentication", "kube-system"))
    return out


def supervisor_crds() -> list[dict[str, Any]]:
    return [
        crd("k3s.cattle.io", "addons", "Addon"),
        crd("k3s.cattle.io", "etcdsnapshotfiles", "ETCDSnapshotFile"),
        crd("helm.cattle.io", "helmcharts", "HelmChart"),
        crd("helm.cattle.io", "helmchartconfigs", "HelmChartConfig"),
    ]


def addon_manifests() -> dict[str, list[dict[str, Any]]]:
    """``/var/lib/rancher/k3s/server/manifests/<name>.yaml`` → the objects in it."""
    sa = o.sa_subject
    coredns, local_path, metrics = SYSTEM_WORKLOADS
    lp_sa = "local-path-provisioner-service-account"
    metrics_api = {
        "group": "metrics.k8s.io",
        "version": "v1beta1",
        "insecureSkipTLSVerify": True,
        "groupPriorityMinimum": 100,
        "versionPriority": 100,
        "service": {"name": "metrics-server", "namespace": "kube-system", "port": 443},
    }
    ccm = "k3s-cloud-controller-manager"
    return {
        "ccm": [
            o.cluster_role(ccm, [o.rule([""], ["nodes", "services"], ["*"])]),
            o.cluster_role_binding(ccm, ccm, [user(ccm)]),
        ],
        "coredns": [
            service_account("coredns", "kube-system"),
            o.cluster_role(
                "system:coredns",
                [o.rule([""], ["endpoints", "services", "pods", "namespaces"], ["list", "watch"])],
            ),
            o.cluster_role_binding(
                "system:coredns", "system:coredns", [sa("coredns", "kube-system")]
            ),
            simple("ConfigMap", "coredns", "kube-system"),
            workload_body(coredns),
            service("kube-dns", "kube-system", {"k8s-app": "kube-dns"}, 53, clusterIP="10.43.0.10"),
        ],
        "local-storage": [
            service_account(lp_sa, "kube-system"),
            o.cluster_role(
                "local-path-provisioner-role",
                [
                    o.rule(
                        [""],
                        ["nodes", "persistentvolumeclaims", "configmaps", "pods", "pods/log"],
                        _READ,
                    ),
                    o.rule([""], ["persistentvolumes", "pods"], ["*"]),
                ],
            ),
            o.cluster_role_binding(
                "local-path-provisioner-bind",
                "local-path-provisioner-role",
                [sa(lp_sa, "kube-system")],
            ),
            workload_body(local_path),
            simple(
                "StorageClass",
                "local-path",
                provisioner="rancher.io/local-path",
                reclaimPolicy="Delete",
                volumeBindingMode="WaitForFirstConsumer",
            ),
            simple("ConfigMap", "local-path-config", "kube-system"),
        ],
        "metrics-server": [
            service_account("metrics-server", "kube-system"),
            o.cluster_role(
                "system:metrics-server", [o.rule([""], ["nodes/metrics", "pods", "nodes"], _READ)]
            ),
            o.cluster_role_binding(
                "system:metrics-server",
                "system:metrics-server",
                [sa("metrics-server", "kube-system")],
            ),
            o.cluster_role_binding(
                "metrics-server:system:auth-delegator",
                "system:auth-delegator",
                [sa("metrics-server", "kube-system")],
            ),
            workload_body(metrics),
            service("metrics-server", "kube-system", {"k8s-app": "metrics-server"}, 443),
            simple("APIService", "v1beta1.metrics.k8s.io", spec=metrics_api),
        ],
        "rolebindings": [
            o.cluster_role(
                "system:k3s-controller",
                [
                    o.rule([""], ["nodes", "namespaces", "pods"], _READ),
                    o.rule(["networking.k8s.io"], ["networkpolicies"], ["list", "watch"]),
                ],
            ),
            o.cluster_role_binding(
                "system:k3s-controller", "system:k3s-controller", [user("system:k3s-controller")]
            ),
            o.cluster_role_binding(
                "kube-apiserver-kubelet-admin", "system:kubelet-api-admin", [user("kube-apiserver")]
            ),
        ],
        "runtimes": [
            simple("RuntimeClass", name, handler=name)
            for name in ("crun", "nvidia", "nvidia-experimental", "wasmedge")
        ],
        "traefik": [
            simple(
                "HelmChart", "traefik-crd", "kube-system", spec={"chart": wls.TRAEFIK_CRD_CHART}
            ),
            simple(
                "HelmChart",
                "traefik",
                "kube-system",
                spec={"chart": wls.TRAEFIK_CHART, "valuesContent": TRAEFIK_VALUES},
            ),
        ],
    }


def helm_controller_objects(chart: str) -> list[dict[str, Any]]:
    """What the helm controller creates to install ``chart``: its own cluster-admin SA."""
    sa = f"helm-{chart}"
    return [
        service_account(sa, "kube-system"),
        o.cluster_role_binding(
            f"helm-kube-system-{chart}", "cluster-admin", [o.sa_subject(sa, "kube-system")]
        ),
        simple("Secret", f"chart-values-{chart}", "kube-system"),
        simple("ConfigMap", f"chart-content-{chart}", "kube-system"),
    ]


def helm_release_objects(release: str) -> list[dict[str, Any]]:
    """What ``helm install`` creates for ``release`` (before its release secret)."""
    if release == "traefik-crd":
        return [
            crd("traefik.io", plural, plural[:-1].capitalize(), "v1alpha1")
            for plural in TRAEFIK_CRDS
        ]
    role = "traefik-kube-system"
    return [
        service_account("traefik", "kube-system"),
        o.cluster_role(role, [o.rule(["", "networking.k8s.io", "traefik.io"], ["*"], _READ)]),
        o.cluster_role_binding(role, role, [o.sa_subject("traefik", "kube-system")]),
        workload_body(TRAEFIK),
        service(
            "traefik", "kube-system", {"app.kubernetes.io/name": "traefik"}, 80, type="LoadBalancer"
        ),
        simple("IngressClass", "traefik", spec={"controller": "traefik.io/ingress-controller"}),
    ]
