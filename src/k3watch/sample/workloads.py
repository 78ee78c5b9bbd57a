"""What K3s runs for itself: its packaged components and their helper pods.

Each ``Workload`` knows its pod template (as stored, hence defaulted) so that controllers can
send realistic pod creations. The packaged components mirror what K3s v1.31 deploys from
``/var/lib/rancher/k3s/server/manifests``: CoreDNS, local-path-provisioner, metrics-server and
Traefik (through the helm controller), plus the ServiceLB (svclb) DaemonSet that the K3s cloud
controller creates for Traefik's LoadBalancer service.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from k3watch.sample import objects as o
from k3watch.sample.versions import IMAGES

TRAEFIK_CHART = "https://%{KUBERNETES_API}%/static/charts/traefik-27.0.201+up27.0.2.tgz"
TRAEFIK_CRD_CHART = "https://%{KUBERNETES_API}%/static/charts/traefik-crd-27.0.201+up27.0.2.tgz"
STORAGE_DIR = "/var/lib/rancher/k3s/storage"


@dataclass(frozen=True, slots=True)
class Workload:
    """A Deployment, StatefulSet or DaemonSet and the pods its controller creates."""

    name: str
    namespace: str
    kind: str
    app: str
    service_account: str
    containers: tuple[tuple[str, str], ...]
    replicas: int
    on_server: bool
    spec: Callable[[], dict[str, Any]]
    labels_key: str = "app"

    @property
    def labels(self) -> dict[str, str]:
        return {self.labels_key: self.app}


def probe(path: str, port: int | str) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": port, "scheme": "HTTP"},
        "timeoutSeconds": 1,
        "periodSeconds": 10,
        "successThreshold": 1,
        "failureThreshold": 3,
    }


def tcp_port(name: str, port: int, protocol: str = "TCP") -> dict[str, Any]:
    return {"name": name, "containerPort": port, "protocol": protocol}


def config_map_volume(name: str, config_map: str, *, optional: bool = False) -> dict[str, Any]:
    source: dict[str, Any] = {"name": config_map, "defaultMode": 420}
    if optional:
        source["optional"] = True
    return {"name": name, "configMap": source}


def coredns_spec() -> dict[str, Any]:
    security = {
        "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["all"]},
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
    }
    c = o.container(
        "coredns",
        IMAGES["coredns"],
        args=["-conf", "/etc/coredns/Corefile"],
        ports=[tcp_port("dns", 53, "UDP"), tcp_port("dns-tcp", 53), tcp_port("metrics", 9153)],
        resources={"limits": {"memory": "170Mi"}, "requests": {"cpu": "100m", "memory": "70Mi"}},
        mounts=[
            o.volume_mount("config-volume", "/etc/coredns", read_only=True),
            o.volume_mount("custom-config-volume", "/etc/coredns/custom", read_only=True),
        ],
        probes={"livenessProbe": probe("/health", 8080), "readinessProbe": probe("/ready", 8181)},
        security=security,
    )
    spec = o.pod_spec(
        [c],
        volumes=[
            config_map_volume("config-volume", "coredns"),
            config_map_volume("custom-config-volume", "coredns-custom", optional=True),
        ],
        service_account="coredns",
        priority_class="system-cluster-critical",
        tolerations=o.tolerations_control_plane(),
        node_selector={"kubernetes.io/os": "linux"},
    )
    spec["dnsPolicy"] = "Default"
    return spec


def local_path_spec() -> dict[str, Any]:
    c = o.container(
        "local-path-provisioner",
        IMAGES["local-path"],
        command=["local-path-provisioner", "start", "--config", "/etc/config/config.json"],
        env=[
            {
                "name": "POD_NAMESPACE",
                "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}},
            },
            {"name": "CONFIG_MOUNT_PATH", "value": "/etc/config/"},
        ],
        mounts=[o.volume_mount("config-volume", "/etc/config/")],
    )
    return o.pod_spec(
        [c],
        volumes=[config_map_volume("config-volume", "local-path-config")],
        service_account="local-path-provisioner-service-account",
        priority_class="system-node-critical",
        tolerations=o.tolerations_control_plane(),
    )


def metrics_server_spec() -> dict[str, Any]:
    security = {
        "capabilities": {"drop": ["ALL"]},
        "runAsUser": 1000,
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    c = o.container(
        "metrics-server",
        IMAGES["metrics-server"],
        args=[
            "--cert-dir=/tmp",
            "--secure-port=10250",
            "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
            "--kubelet-use-node-status-port",
            "--metric-resolution=15s",
        ],
        ports=[{"name": "https", "containerPort": 10250, "protocol": "TCP"}],
        resources={"requests": {"cpu": "100m", "memory": "70Mi"}},
        mounts=[o.volume_mount("tmp-dir", "/tmp")],
        probes={
            "readinessProbe": probe("/readyz", "https"),
            "livenessProbe": probe("/livez", "https"),
        },
        security=security,
    )
    return o.pod_spec(
        [c],
        volumes=[{"name": "tmp-dir", "emptyDir": {}}],
        service_account="metrics-server",
        priority_class="system-node-critical",
        tolerations=o.tolerations_control_plane(),
    )


def traefik_spec() -> dict[str, Any]:
    args = [
        "--global.checknewversion",
        "--global.sendanonymoususage",
        "--entryPoints.metrics.address=:9100/tcp",
        "--entryPoints.traefik.address=:9000/tcp",
        "--entryPoints.web.address=:8000/tcp",
        "--entryPoints.websecure.address=:8443/tcp",
        "--api.dashboard=true",
        "--ping=true",
        "--metrics.prometheus=true",
        "--metrics.prometheus.entrypoint=metrics",
        "--providers.kubernetescrd",
        "--providers.kubernetesingress",
        "--providers.kubernetesingress.ingressendpoint.publishedservice=kube-system/traefik",
        "--entryPoints.websecure.http.tls=true",
        "--log.level=INFO",
    ]
    c = o.container(
        "traefik",
        IMAGES["traefik"],
        args=args,
        ports=[
            tcp_port("metrics", 9100),
            tcp_port("traefik", 9000),
            tcp_port("web", 8000),
            tcp_port("websecure", 8443),
        ],
        mounts=[o.volume_mount("data", "/data"), o.volume_mount("tmp", "/tmp")],
        probes={"readinessProbe": probe("/ping", 9000), "livenessProbe": probe("/ping", 9000)},
        security={
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
        },
    )
    return o.pod_spec(
        [c],
        volumes=[{"name": "data", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}],
        service_account="traefik",
        priority_class="system-cluster-critical",
        tolerations=o.tolerations_control_plane(),
        security={"runAsGroup": 65532, "runAsNonRoot": True, "runAsUser": 65532},
    )


def svclb_spec(daemonset: str, cluster_ip: str) -> dict[str, Any]:
    """ServiceLB (klipper-lb) pods: one container per port, NET_ADMIN, hostPort; no token."""
    containers = []
    for port in (80, 443):
        name = f"lb-tcp-{port}"
        containers.append(
            o.container(
                name,
                IMAGES["klipper-lb"],
                ports=[{"name": name, "hostPort": port, "containerPort": port, "protocol": "TCP"}],
                env=[
                    {"name": "SRC_PORT", "value": str(port)},
                    {"name": "SRC_RANGES", "value": "0.0.0.0/0"},
                    {"name": "DEST_PROTO", "value": "TCP"},
                    {"name": "DEST_PORT", "value": str(port)},
                    {"name": "DEST_IPS", "value": cluster_ip},
                ],
                security={"capabilities": {"add": ["NET_ADMIN"]}},
            )
        )
    tolerations = [
        {"key": "node-role.kubernetes.io/master", "operator": "Exists", "effect": "NoSchedule"},
        {
            "key": "node-role.kubernetes.io/control-plane",
            "operator": "Exists",
            "effect": "NoSchedule",
        },
        {"key": "CriticalAddonsOnly", "operator": "Exists"},
    ]
    return o.pod_spec(
        containers,
        service_account="svclb",
        automount=False,
        security={"sysctls": [{"name": "net.ipv4.ip_forward", "value": "1"}]},
        tolerations=tolerations,
        priority_class="system-node-critical",
    )


def helm_install_spec(chart: str, name: str) -> dict[str, Any]:
    """The helm controller's ``helm-install-<name>`` Job pod (klipper-helm runs ``helm``)."""
    env = [
        {"name": "NAME", "value": name},
        {"name": "VERSION"},
        {"name": "REPO"},
        {"name": "HELM_DRIVER", "value": "secret"},
        {"name": "CHART_NAMESPACE", "value": "kube-system"},
        {"name": "CHART", "value": chart},
        {"name": "HELM_VERSION"},
        {"name": "TARGET_NAMESPACE", "value": "kube-system"},
        {"name": "AUTH_PASS_CREDENTIALS", "value": "false"},
        {"name": "BOOTSTRAP", "value": "false"},
        {"name": "NO_PROXY", "value": ".svc,.cluster.local,10.42.0.0/16,10.43.0.0/16"},
    ]
    c = o.container(
        "helm",
        IMAGES["klipper-helm"],
        args=["install"],
        env=env,
        mounts=[
            o.volume_mount("klipper-helm", "/home/klipper-helm/.helm"),
            o.volume_mount("klipper-cache", "/home/klipper-helm/.cache"),
            o.volume_mount("klipper-config", "/home/klipper-helm/.config"),
            o.volume_mount("tmp", "/tmp"),
            o.volume_mount("values", "/config"),
            o.volume_mount("content", "/chart"),
        ],
        security={"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True},
    )
    empty = [
        {"name": n, "emptyDir": {"medium": "Memory"}}
        for n in ("klipper-helm", "klipper-cache", "klipper-config", "tmp")
    ]
    return o.pod_spec(
        [c],
        volumes=[
            *empty,
            {
                "name": "values",
                "secret": {"secretName": f"chart-values-{name}", "defaultMode": 420},
            },
            config_map_volume("content", f"chart-content-{name}"),
        ],
        service_account=f"helm-{name}",
        restart_policy="OnFailure",
        node_selector={"kubernetes.io/os": "linux"},
        tolerations=o.tolerations_control_plane(),
        security={"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
    )


def local_path_helper(action: str, pv: str, node: str, size: int) -> dict[str, Any]:
    """A local-path-provisioner helper pod: creates or removes a volume directory on a node.

    The provisioner writes it from code (not from a stored template, so no defaults) with a
    hostPath volume on the storage directory and a privileged container, in kube-system.
    """
    path = f"{STORAGE_DIR}/{pv}"
    c = o.container(
        "helper-pod",
        IMAGES["busybox"],
        defaulted=False,
        command=["/bin/sh", f"/script/{'setup' if action == 'create' else 'teardown'}"],
        args=["-p", path, "-s", str(size), "-m", "Filesystem", "-a", action],
        env=[
            {"name": "VOL_DIR", "value": path},
            {"name": "VOL_MODE", "value": "Filesystem"},
            {"name": "VOL_SIZE_BYTES", "value": str(size)},
        ],
        mounts=[
            o.volume_mount("script", "/script"),
            o.volume_mount("helper-data-volume", f"{STORAGE_DIR}/"),
        ],
        resources={},
        security={"privileged": True},
    )
    volumes = [
        {
            "name": "script",
            "configMap": {
                "name": "local-path-config",
                "items": [
                    {"key": "setup", "path": "setup"},
                    {"key": "teardown", "path": "teardown"},
                ],
            },
        },
        o.host_path_volume("helper-data-volume", f"{STORAGE_DIR}/", "DirectoryOrCreate"),
    ]
    return o.pod_spec(
        [c],
        defaulted=False,
        volumes=volumes,
        service_account="local-path-provisioner-service-account",
        node_name=node,
        restart_policy="Never",
        tolerations=[{"operator": "Exists"}],
        priority_class="system-node-critical",
    )


SYSTEM_WORKLOADS = (
    Workload(
        "coredns",
        "kube-system",
        "Deployment",
        "kube-dns",
        "coredns",
        (("coredns", IMAGES["coredns"]),),
        1,
        True,
        coredns_spec,
        "k8s-app",
    ),
    Workload(
        "local-path-provisioner",
        "kube-system",
        "Deployment",
        "local-path-provisioner",
        "local-path-provisioner-service-account",
        (("local-path-provisioner", IMAGES["local-path"]),),
        1,
        True,
        local_path_spec,
    ),
    Workload(
        "metrics-server",
        "kube-system",
        "Deployment",
        "metrics-server",
        "metrics-server",
        (("metrics-server", IMAGES["metrics-server"]),),
        1,
        True,
        metrics_server_spec,
        "k8s-app",
    ),
)
TRAEFIK = Workload(
    "traefik",
    "kube-system",
    "Deployment",
    "traefik",
    "traefik",
    (("traefik", IMAGES["traefik"]),),
    1,
    True,
    traefik_spec,
    "app.kubernetes.io/name",
)
