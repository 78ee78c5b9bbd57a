"""Day-0 provisioning: what the admin creates with ``system:admin`` right after the install.

It includes two things rules will see again: the ``platform-admins`` group bound to
``cluster-admin`` (benign), and the over-broad ``build-bot`` ClusterRole — get/list on every
secret, pod creation anywhere, and the right to bind ``clusterroles`` — that the attack
scenarios abuse with the stolen token.
"""

from __future__ import annotations

from typing import Any

from k3watch.sample import objects as o
from k3watch.sample.addons import group, service, service_account, workload_body
from k3watch.sample.apps import APP_WORKLOADS
from k3watch.sample.engine import World
from k3watch.sample.lifecycle import start_pod
from k3watch.sample.rollout import first_rollout, place, pod_body
from k3watch.sample.storage import provision_volume
from k3watch.sample.workloads import Workload
from k3watch.sample.writes import create, simple

# Secrets the admin creates (the stolen-token scenario reads them all).
SECRETS = (
    (
        "shop",
        ("api-secrets", "stripe-api-key", "postgres-credentials", "smtp-credentials", "tls-shop"),
    ),
    ("default", ("registry-credentials",)),
    ("ci", ("gitlab-runner-token", "deploy-key", "sonar-token")),
)
BUILD_BOT_RULES = [
    o.rule([""], ["namespaces", "pods", "secrets", "configmaps"], ["get", "list"]),
    o.rule([""], ["pods", "events"], ["create", "delete"]),
    o.rule(["batch"], ["jobs"], ["get", "list", "create", "delete"]),
    # "Provision build namespaces": the binding rights that make this role cluster-admin.
    o.rule(["rbac.authorization.k8s.io"], ["clusterrolebindings", "rolebindings"], ["create"]),
    o.rule(["rbac.authorization.k8s.io"], ["clusterroles"], ["bind"]),
]
_CRUD = ["get", "list", "watch", "create", "delete", "patch", "update"]


def _role_binding(
    name: str, namespace: str, subject: dict[str, Any], kind: str, role: str
) -> dict[str, Any]:
    ref = {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role}
    return simple("RoleBinding", name, namespace, subjects=[subject], roleRef=ref)


def manifests() -> list[dict[str, Any]]:
    """Everything the admin applies, in order."""
    active = {"phase": "Active"}
    runner_rules = [
        o.rule([""], ["pods", "pods/attach", "pods/exec", "secrets", "configmaps"], _CRUD)
    ]
    bodies: list[dict[str, Any]] = [
        simple("Namespace", "shop", spec={}, status=active),
        simple("Namespace", "ci", spec={}, status=active),
        o.cluster_role_binding("platform-admins", "cluster-admin", [group("platform-admins")]),
        _role_binding("shop-developers", "shop", group("developers"), "ClusterRole", "edit"),
        service_account("deployer", "ci"),
        simple(
            "Role",
            "deployer",
            "shop",
            rules=[o.rule(["apps"], ["deployments"], ["get", "list", "watch", "patch"])],
        ),
        _role_binding("ci-deployer", "shop", o.sa_subject("deployer", "ci"), "Role", "deployer"),
        service_account("gitlab-runner", "ci"),
        simple("Role", "gitlab-runner", "ci", rules=runner_rules),
        _role_binding(
            "gitlab-runner", "ci", o.sa_subject("gitlab-runner", "ci"), "Role", "gitlab-runner"
        ),
        service_account("build-bot", "default"),
        o.cluster_role("build-bot", BUILD_BOT_RULES),
        o.cluster_role_binding("build-bot", "build-bot", [o.sa_subject("build-bot", "default")]),
    ]
    for ns, names in SECRETS:
        bodies += [simple("Secret", name, ns) for name in names]
    bodies += [
        simple("ConfigMap", "build-config", "default"),
        simple("ConfigMap", "gitlab-runner", "ci"),
    ]
    bodies += [workload_body(wl) for wl in APP_WORKLOADS]
    bodies += [
        service("web", "shop", {"app": "web"}, 80),
        service("api", "shop", {"app": "api"}, 8080),
        service("postgres", "shop", {"app": "postgres"}, 5432, clusterIP="None"),
    ]
    backend = {"service": {"name": "web", "port": {"number": 80}}}
    rule = {
        "host": "shop.example.com",
        "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]},
    }
    tls = [{"hosts": ["shop.example.com"], "secretName": "tls-shop"}]
    bodies.append(
        simple(
            "Ingress",
            "shop",
            "shop",
            spec={"ingressClassName": "traefik", "tls": tls, "rules": [rule]},
        )
    )
    cron = {
        "schedule": "0 2 * * *",
        "concurrencyPolicy": "Forbid",
        "successfulJobsHistoryLimit": 1,
        "jobTemplate": {"spec": {"ttlSecondsAfterFinished": 86400}},
    }
    bodies.append(simple("CronJob", "pg-backup", "shop", spec=cron))
    return bodies


def provision(w: World, t: int) -> None:
    """Apply ``manifests()`` as ``system:admin`` from the server; controllers start the pods."""
    admin = w.cluster.admin()
    w.log.nonresource(t, admin, "/api?timeout=32s")
    w.log.nonresource(t + 4_000, admin, "/apis?timeout=32s")
    t += 40_000
    for body in manifests():
        create(w, t, admin, body)
        t += w.rng.randint(15_000, 90_000)
    for wl in APP_WORKLOADS:
        if wl.kind == "StatefulSet":
            _statefulset(w, t, wl)
        else:
            first_rollout(w, t, wl)
        t += w.rng.randint(100_000, 600_000)


def _statefulset(w: World, t: int, wl: Workload) -> None:
    """A StatefulSet pod and its volume claim, provisioned by local-path through a helper pod."""
    c = w.cluster
    claim = f"data-{wl.name}-0"
    sts = c.controller("statefulset-controller")
    claim_spec = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "8Gi"}},
        "storageClassName": "local-path",
    }
    create(w, t, sts, simple("PersistentVolumeClaim", claim, wl.namespace, spec=claim_spec))
    node = place(w, wl)
    t = provision_volume(w, t + w.rng.randint(100_000, 900_000), claim, wl.namespace, node, 8 << 30)
    labels = {
        **wl.labels,
        "apps.kubernetes.io/pod-index": "0",
        "statefulset.kubernetes.io/pod-name": f"{wl.name}-0",
    }
    spec = wl.spec()
    spec["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]
    spec["hostname"] = f"{wl.name}-0"
    spec["subdomain"] = wl.name
    pod = c.add_pod(f"{wl.name}-0", wl.namespace, node, wl.service_account, wl.app, wl.containers)
    body = pod_body(w, wl, "StatefulSet", wl.name, labels, spec, name=pod.name)
    start_pod(w, t, sts, pod, body, owner=wl.name, service="postgres")
