"""People at the keyboard: kubectl sessions of the platform team and a developer.

* ``alice@example.com`` (OIDC, group ``platform-admins``, bound to cluster-admin) works from the
  office network 192.0.2.0/24 (laptop 192.0.2.23, some days 192.0.2.41) on weekdays
  08:00–18:00 UTC: lists, describes, logs, ``top``, and now and then an interactive
  ``kubectl exec`` (WebSocket, so verb ``get`` on ``pods/exec``) into a shop pod.
* ``bob@example.com`` (group ``developers``, ``edit`` in ``shop`` only) works from
  192.0.2.77 on weekdays 09:00–17:00 and sometimes looks where he may not (403s, a handful a
  day — well under any brute-force threshold).
* ``system:admin`` (the K3s admin kubeconfig) is used on the server itself (127.0.0.1) a few
  times a day, any day, for node and add-on checks.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote

from k3watch.sample.cluster import Actor, Pod
from k3watch.sample.engine import Process, World
from k3watch.sample.records import DAY, HOUR, MINUTE, SECOND
from k3watch.sample.system import component_actor

ALICE_IPS = ("192.0.2.23", "192.0.2.41")
BOB_IP = "192.0.2.77"


def weekday(t: int) -> int:
    """Monday is 0 (1970-01-01 was a Thursday)."""
    return (t // DAY + 3) % 7


def hour_of_day(t: int) -> int:
    """Hour of the day (UTC) of epoch microseconds ``t``."""
    return (t % DAY) // HOUR


def poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method; fine for the small hourly means used here."""
    if mean <= 0:
        return 0
    if mean > 30:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def hourly(
    w: World, first: int, rate: Callable[[int], float], action: Callable[[World, int], None]
) -> Process:
    """Run ``action`` at Poisson times whose hourly mean is ``rate(hour start) * scale``."""
    t = first - first % HOUR
    while True:
        yield t
        count = poisson(w.rng, rate(t) * w.scale)
        for at in sorted(t + w.rng.randrange(HOUR) for _ in range(count)):
            yield at
            action(w, at)
        t += HOUR


def office_rate(per_hour: float, begin: int, end: int) -> Callable[[int], float]:
    """``per_hour`` on weekdays between ``begin`` and ``end`` o'clock UTC, else nothing."""

    def rate(t: int) -> float:
        return per_hour if weekday(t) < 5 and begin <= hour_of_day(t) < end else 0.0

    return rate


@dataclass(slots=True)
class Desk:
    """Per-person state: which address the laptop has today, when discovery was cached."""

    ips: dict[int, str] = field(default_factory=dict)
    discovered: dict[str, int] = field(default_factory=dict)


def _alice(w: World, desk: Desk, t: int) -> Actor:
    day = t // DAY
    ip = desk.ips.get(day)
    if ip is None:
        ip = desk.ips[day] = ALICE_IPS[0] if w.rng.random() < 0.8 else ALICE_IPS[1]
    return w.cluster.alice(ip)


def _discovery(w: World, desk: Desk, actor: Actor, t: int) -> int:
    """kubectl refreshes its discovery cache (~/.kube/cache) every six hours."""
    last = desk.discovered.get(actor.username, -DAY)
    if t - last < 6 * HOUR:
        return t
    desk.discovered[actor.username] = t
    w.log.nonresource(t, actor, "/api?timeout=32s")
    w.log.nonresource(t + w.rng.randint(20_000, 90_000), actor, "/apis?timeout=32s")
    return t + w.rng.randint(100_000, 300_000)


def _shop_pod(w: World) -> Pod | None:
    pods = [p for p in w.cluster.pods.values() if p.namespace == "shop" and p.app in ("web", "api")]
    return w.rng.choice(pods) if pods else None


def kubectl_session(w: World, t: int, actor: Actor, *, admin: bool) -> None:
    """One kubectl command of an administrator (cluster-wide rights)."""
    rng, log = w.rng, w.log
    pod = _shop_pod(w)
    choice = rng.random()
    if choice < 0.25 or pod is None:
        log.request(t, actor, "list", "pods", namespace="shop", query="limit=500")
    elif choice < 0.40:
        log.request(t, actor, "get", "pods", namespace="shop", name=pod.name)
        selector = quote(
            f"involvedObject.name={pod.name},involvedObject.namespace=shop,involvedObject.uid={pod.uid}",
            safe="",
        )
        log.request(
            t + rng.randint(20_000, 60_000),
            actor,
            "list",
            "events",
            namespace="shop",
            query=f"fieldSelector={selector}&limit=500",
        )
    elif choice < 0.55:
        container = pod.containers[0][0]
        log.request(
            t,
            actor,
            "get",
            "pods",
            namespace="shop",
            name=pod.name,
            subresource="log",
            query=f"container={container}&tailLines=200",
            duration_us=rng.randint(30_000, 900_000),
        )
    elif choice < 0.65:
        log.request(
            t, actor, "list", "deployments", namespace="shop", group="apps", query="limit=500"
        )
    elif choice < 0.73:
        log.request(t, actor, "list", "nodes", query="limit=500")
    elif choice < 0.80:
        log.request(t, actor, "list", "pods", query="limit=500")
    elif choice < 0.88:
        log.request(
            t, actor, "list", "pods", namespace="shop", group="metrics.k8s.io", version="v1beta1"
        )
        metrics = component_actor(w, "metrics-server")
        if metrics is not None:
            log.request(
                t + rng.randint(1_000, 5_000),
                metrics,
                "create",
                "subjectaccessreviews",
                group="authorization.k8s.io",
            )
    elif choice < 0.93:
        log.request(
            t,
            actor,
            "list",
            "helmcharts",
            namespace="kube-system",
            group="helm.cattle.io",
            query="limit=500",
        )
    elif choice < 0.97:
        log.request(t, actor, "list", "secrets", namespace="shop", query="limit=500")
    elif not admin:
        interactive_exec(w, t, actor, pod)
    else:
        log.request(t, actor, "list", "nodes", query="limit=500")


def interactive_exec(w: World, t: int, actor: Actor, pod: Pod) -> None:
    """``kubectl exec -it <pod> -- sh`` with kubectl ≥ 1.30 (WebSocket: an HTTP GET)."""
    container = pod.containers[0][0]
    w.log.request(t, actor, "get", "pods", namespace=pod.namespace, name=pod.name)
    query = f"command=sh&container={container}&stdin=true&stdout=true&tty=true"
    w.log.request(
        t + w.rng.randint(30_000, 120_000),
        actor,
        "get",
        "pods",
        namespace=pod.namespace,
        name=pod.name,
        subresource="exec",
        query=query,
        duration_us=w.rng.randint(1, 15) * MINUTE,
    )


def alice_process(w: World, first: int) -> Process:
    """alice's kubectl commands: about four an hour in office hours."""
    desk = Desk()

    def act(w: World, t: int) -> None:
        actor = _alice(w, desk, t)
        t = _discovery(w, desk, actor, t)
        kubectl_session(w, t, actor, admin=False)

    return hourly(w, first, office_rate(4.0, 8, 18), act)


def bob_process(w: World, first: int) -> Process:
    """bob's kubectl commands: about 1.5 an hour, a few denied."""
    desk = Desk()

    def act(w: World, t: int) -> None:
        rng, log = w.rng, w.log
        actor = w.cluster.bob(BOB_IP)
        t = _discovery(w, desk, actor, t)
        pod = _shop_pod(w)
        choice = rng.random()
        if choice < 0.45 or pod is None:
            log.request(t, actor, "list", "pods", namespace="shop", query="limit=500")
        elif choice < 0.75:
            container = pod.containers[0][0]
            log.request(
                t,
                actor,
                "get",
                "pods",
                namespace="shop",
                name=pod.name,
                subresource="log",
                query=f"container={container}&follow=true",
                duration_us=rng.randint(20, 600) * SECOND,
            )
        elif choice < 0.85:
            log.request(t, actor, "list", "pods", namespace="ci", query="limit=500", code=403)
        elif choice < 0.93:
            log.request(t, actor, "list", "pods", query="limit=500", code=403)
        else:
            log.request(t, actor, "list", "nodes", query="limit=500", code=403)

    return hourly(w, first, office_rate(1.5, 9, 17), act)


def admin_process(w: World, first: int) -> Process:
    """The admin on the server: a command every three hours or so, 07:00–19:00, any day."""

    def rate(t: int) -> float:
        return 0.35 if 7 <= hour_of_day(t) < 19 else 0.0

    def act(w: World, t: int) -> None:
        kubectl_session(w, t, w.cluster.admin(), admin=True)

    return hourly(w, first, rate, act)
