"""Versions, user agents and images of the simulated K3s v1.31 cluster.

Every Kubernetes component runs inside the one ``k3s`` binary, so kubelet, kube-proxy, the
controller manager and the scheduler all send ``k3s/<version> (linux/amd64)
kubernetes/<commit>`` (as seen in real K3s logs); the controller manager appends the service
account of each controller, the scheduler ``/scheduler``. K3s's own controllers (core,
deploy/AddOn, helm) send ``<controller>@<node>/<version> (linux/amd64) k3s/<commit>``.
Programs built with client-go that never set a user agent send
``<binary>/v0.0.0 (linux/amd64) kubernetes/$Format``.
"""

from __future__ import annotations

K3S_VERSION = "v1.31.4+k3s1"
# Commit printed by `k3s --version` for the release; Kubernetes user agents carry its first
# seven characters because K3s builds the Kubernetes components with its own commit. Treat the
# value as illustrative: nothing parses it.
K3S_COMMIT = "a562d090"
_KUBE_UA_TAIL = f"{K3S_VERSION} (linux/amd64) kubernetes/{K3S_COMMIT[:7]}"
UA_K3S = f"k3s/{_KUBE_UA_TAIL}"
UA_KUBECTL_K3S = f"kubectl/{_KUBE_UA_TAIL}"
UA_HELM = "Helm/3.16.3"
# client-go programs that never set a user agent send "<binary>/v0.0.0 ... kubernetes/$Format".
UA_COREDNS = "coredns/v0.0.0 (linux/amd64) kubernetes/$Format"
UA_METRICS = "metrics-server/v0.0.0 (linux/amd64) kubernetes/$Format"
UA_TRAEFIK = "traefik/v0.0.0 (linux/amd64) kubernetes/$Format"
UA_LOCAL_PATH = "local-path-provisioner/v0.0.0 (linux/amd64) kubernetes/$Format"
UA_BUILD_RUNNER = "build-runner/v0.0.0 (linux/amd64) kubernetes/$Format"
# Upstream kubectl builds used from outside the cluster (commits illustrative).
UA_KUBECTL_ALICE = "kubectl/v1.32.2 (darwin/arm64) kubernetes/67a30c0"
UA_KUBECTL_BOB = "kubectl/v1.31.6 (windows/amd64) kubernetes/5c3a8f1"
UA_KUBECTL_CI = "kubectl/v1.31.4 (linux/amd64) kubernetes/a78aa47"
UA_ATTACKER = "python-requests/2.32.3"
UA_GITLAB_RUNNER = "gitlab-runner 17.6.0 (17-6-stable; go1.23.2; linux/amd64)"


def ua_component(suffix: str) -> str:
    """User agent of an in-process component client that appends a name (controllers, scheduler)."""
    return f"{UA_K3S}/{suffix}"


def ua_supervisor(controller: str, node: str) -> str:
    """User agent of a K3s supervisor controller (``core``, ``deploy``, ``helm``) on ``node``."""
    return f"{controller}@{node}/{K3S_VERSION} (linux/amd64) k3s/{K3S_COMMIT}"


IMAGES = {
    "coredns": "rancher/mirrored-coredns-coredns:1.12.0",
    "local-path": "rancher/local-path-provisioner:v0.0.30",
    "metrics-server": "rancher/mirrored-metrics-server:v0.7.2",
    "traefik": "rancher/mirrored-library-traefik:2.11.10",
    "klipper-helm": "rancher/klipper-helm:v0.9.3-build20241008",
    "klipper-lb": "rancher/klipper-lb:v0.4.9",
    "busybox": "rancher/mirrored-library-busybox:1.36.1",
    "web": "docker.io/library/nginx:1.27",
    "api": "ghcr.io/example/shop-api:1.8.3",
    "postgres": "docker.io/library/postgres:16.6",
    "kaniko": "gcr.io/kaniko-project/executor:v1.23.2",
    "runner": "docker.io/gitlab/gitlab-runner:v17.6.0",
    "build-runner": "ghcr.io/example/build-runner:0.9.2",
}
