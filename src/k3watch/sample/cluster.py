"""The simulated K3s cluster: nodes, addresses, identities and the pods that run on it.

Everything here is plain data plus a few counters (resourceVersion, pod IPs). The traffic
modules read it and the background modules change it (pods come and go); attack scenarios only
read it, so a stream with attacks has exactly the background of a stream without them.

Addresses: the server node's host clients (kubelet, kube-proxy, the control plane) reach the
API server on 127.0.0.1; agents come from their node address (10.0.0.1N); pods from their pod
address (10.42.<node>.<n>). K3s's own controllers act as ``system:k3s-supervisor``
(``system:masters``); user agents are in ``versions``.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import Any

from k3watch.sample.versions import (
    UA_K3S,
    UA_KUBECTL_ALICE,
    UA_KUBECTL_BOB,
    UA_KUBECTL_K3S,
    ua_component,
    ua_supervisor,
)

# Suffix alphabet of generateName and pod-template-hash: no vowels, no look-alike characters.
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def new_uuid(rng: random.Random) -> str:
    """A version-4 UUID drawn from ``rng`` (``uuid.uuid4`` would use the OS entropy pool)."""
    return uuid_text(rng.getrandbits(128))


def uuid_text(n: int) -> str:
    """The 128-bit number ``n`` as a version-4 UUID string."""
    n = (n & ~(0xF000 << 64)) | (4 << 76)
    n = (n & ~(0xC000 << 48)) | (0x8000 << 48)
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def suffix(rng: random.Random, length: int = 5) -> str:
    """A generateName-style random suffix."""
    return "".join(rng.choice(_ALPHABET) for _ in range(length))


def hex_digest(rng: random.Random, chars: int = 64) -> str:
    """Random lowercase hex, for container IDs and image digests."""
    return f"{rng.getrandbits(chars * 4):0{chars}x}"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who sends a request: the audit ``user`` object, client address and user agent.

    ``reason`` is the ``authorization.k8s.io/reason`` the authorizer gives for an allowed request
    (empty for ``system:masters`` and for the Node authorizer, as the API server writes it).
    """

    user: dict[str, Any]
    ip: str
    ua: str
    reason: str = ""

    @property
    def username(self) -> str:
        return str(self.user.get("username", ""))


def rbac_reason(
    binding: str,
    role: str,
    subject: str,
    namespace: str | None = None,
    role_kind: str = "ClusterRole",
) -> str:
    """The RBAC authorizer's allow reason, as the API server writes it in the annotation.

    ``rbac_reason("view", "view", 'Group "dev"', "shop")`` gives
    ``RBAC: allowed by RoleBinding "view/shop" of ClusterRole "view" to Group "dev"``.
    """
    if namespace:
        return (
            f'RBAC: allowed by RoleBinding "{binding}/{namespace}" of {role_kind} "{role}" '
            f"to {subject}"
        )
    return f'RBAC: allowed by ClusterRoleBinding "{binding}" of ClusterRole "{role}" to {subject}'


def sa_subject_text(name: str, namespace: str) -> str:
    """How the RBAC reason names a service account: ``ServiceAccount "name/namespace"``."""
    return f'ServiceAccount "{name}/{namespace}"'


@dataclass(slots=True)
class Node:
    """A K3s node: ``server-1`` (control plane, embedded etcd, also runs pods) or ``agent-N``."""

    name: str
    ip: str
    index: int
    uid: str
    next_host: int = 2

    @property
    def is_server(self) -> bool:
        return self.index == 0

    @property
    def api_ip(self) -> str:
        """Address the API server sees for host-level clients (kubelet, kube-proxy) of this node."""
        return "127.0.0.1" if self.is_server else self.ip

    @property
    def pod_cidr(self) -> str:
        return f"10.42.{self.index}.0/24"

    def next_pod_ip(self) -> str:
        ip = f"10.42.{self.index}.{self.next_host}"
        # Wrap inside the /24 like host-local IPAM does once old addresses are released.
        self.next_host = self.next_host + 1 if self.next_host < 250 else 2
        return ip


@dataclass(slots=True)
class Pod:
    """A running pod: enough to write its kubelet traffic and its service-account tokens."""

    name: str
    namespace: str
    node: Node
    ip: str
    uid: str
    service_account: str
    app: str
    containers: tuple[tuple[str, str], ...]  # (name, image)
    host_network: bool = False
    projected_token: bool = True
    jti: str = ""
    started: int = 0
    """When its containers started (epoch µs), once the kubelet has reported it."""
    container_ids: tuple[str, ...] = ()


@dataclass(slots=True)
class Cluster:
    """State shared by the traffic generators: nodes, pods, uids and the resourceVersion clock."""

    rng: random.Random
    nodes: list[Node]
    pods: dict[tuple[str, str], Pod] = field(default_factory=dict)
    uids: dict[str, str] = field(default_factory=dict)
    rv: int = 1_000
    template_hashes: dict[str, str] = field(default_factory=dict)
    salt: str = ""

    @classmethod
    def build(cls, rng: random.Random, node_count: int) -> Cluster:
        if node_count < 1:
            raise ValueError("a K3s cluster needs at least one node (the server)")
        nodes = [Node("server-1", "10.0.0.11", 0, new_uuid(rng))]
        nodes += [
            Node(f"agent-{i}", f"10.0.0.{11 + i}", i, new_uuid(rng)) for i in range(1, node_count)
        ]
        return cls(rng=rng, nodes=nodes, salt=f"{rng.getrandbits(64):016x}")

    @property
    def server(self) -> Node:
        return self.nodes[0]

    @property
    def workers(self) -> list[Node]:
        """Nodes that run application pods (the agents, or the server when it is alone)."""
        return self.nodes[1:] or self.nodes

    def next_rv(self) -> str:
        """A fresh resourceVersion: the store revision moves on with every write."""
        self.rv += self.rng.randint(1, 9)
        return str(self.rv)

    def uid(self, key: str) -> str:
        """The stable uid of the object named ``key`` (``kind/namespace/name``).

        Derived from the key rather than drawn from the random source, so that looking up an
        identity (which attack scenarios do) never changes what the background draws next.
        """
        value = self.uids.get(key)
        if value is None:
            digest = hashlib.sha256(f"{self.salt}/{key}".encode()).digest()[:16]
            value = self.uids[key] = uuid_text(int.from_bytes(digest))
        return value

    def template_hash(self, workload: str) -> str:
        """The current pod-template-hash of a Deployment (changes on every rollout)."""
        value = self.template_hashes.get(workload)
        if value is None:
            value = self.template_hashes[workload] = self.new_template_hash()
        return value

    def new_template_hash(self) -> str:
        return suffix(self.rng, self.rng.choice((9, 10)))

    def add_pod(
        self,
        name: str,
        namespace: str,
        node: Node,
        service_account: str,
        app: str,
        containers: tuple[tuple[str, str], ...],
        *,
        host_network: bool = False,
        projected_token: bool = True,
    ) -> Pod:
        pod = Pod(
            name=name,
            namespace=namespace,
            node=node,
            ip=node.ip if host_network else node.next_pod_ip(),
            uid=new_uuid(self.rng),
            service_account=service_account,
            app=app,
            containers=containers,
            host_network=host_network,
            projected_token=projected_token,
            jti=new_uuid(self.rng),
        )
        self.pods[(namespace, name)] = pod
        return pod

    def remove_pod(self, pod: Pod) -> None:
        self.pods.pop((pod.namespace, pod.name), None)

    def pods_of(self, namespace: str, app: str) -> list[Pod]:
        return [p for p in self.pods.values() if p.namespace == namespace and p.app == app]

    def pick_worker(self) -> Node:
        return self.rng.choice(self.workers)

    # --- identities -------------------------------------------------------------------------

    def kubelet(self, node: Node) -> Actor:
        return Actor(
            {
                "username": f"system:node:{node.name}",
                "groups": ["system:nodes", "system:authenticated"],
            },
            node.api_ip,
            UA_K3S,
        )

    def kube_proxy(self, node: Node) -> Actor:
        return Actor(
            {"username": "system:kube-proxy", "groups": ["system:authenticated"]},
            node.api_ip,
            UA_K3S,
            rbac_reason("system:node-proxier", "system:node-proxier", 'User "system:kube-proxy"'),
        )

    def k3s_controller(self, node: Node) -> Actor:
        """The agent's own client (flannel, network-policy controller) on ``node``."""
        return Actor(
            {"username": "system:k3s-controller", "groups": ["system:authenticated"]},
            node.api_ip,
            UA_K3S,
            rbac_reason(
                "system:k3s-controller", "system:k3s-controller", 'User "system:k3s-controller"'
            ),
        )

    def apiserver(self) -> Actor:
        return Actor(
            {
                "username": "system:apiserver",
                "uid": self.uid("user/system:apiserver"),
                "groups": ["system:masters"],  # the loopback client, as real logs show it
            },
            "127.0.0.1",
            UA_K3S,
        )

    def controller_manager(self, suffix_: str = "leader-election") -> Actor:
        return Actor(
            {"username": "system:kube-controller-manager", "groups": ["system:authenticated"]},
            "127.0.0.1",
            ua_component(suffix_),
            rbac_reason(
                "system:kube-controller-manager",
                "system:kube-controller-manager",
                'User "system:kube-controller-manager"',
            ),
        )

    def scheduler(self, suffix_: str = "scheduler") -> Actor:
        return Actor(
            {"username": "system:kube-scheduler", "groups": ["system:authenticated"]},
            "127.0.0.1",
            ua_component(suffix_),
            rbac_reason(
                "system:kube-scheduler", "system:kube-scheduler", 'User "system:kube-scheduler"'
            ),
        )

    def controller(self, name: str) -> Actor:
        """A kube-controller-manager controller with its own service account credentials.

        K3s runs the controller manager with ``--use-service-account-credentials``: each
        controller authenticates with a token of ``kube-system:<name>`` minted for itself (so the
        token is bound to no pod and carries only a credential id).
        """
        username = f"system:serviceaccount:kube-system:{name}"
        return Actor(
            {
                "username": username,
                "uid": self.uid(f"serviceaccount/kube-system/{name}"),
                "groups": [
                    "system:serviceaccounts",
                    "system:serviceaccounts:kube-system",
                    "system:authenticated",
                ],
                "extra": {
                    "authentication.kubernetes.io/credential-id": [
                        f"JTI={self.uid(f'jti/kube-system/{name}')}"
                    ]
                },
            },
            "127.0.0.1",
            ua_component(username),
            rbac_reason(
                f"system:controller:{name}",
                f"system:controller:{name}",
                f'ServiceAccount "{name}/kube-system"',
            ),
        )

    def supervisor(self, controller: str = "k3s-supervisor") -> Actor:
        return Actor(
            {
                "username": "system:k3s-supervisor",
                "groups": ["system:masters", "system:authenticated"],
            },
            "127.0.0.1",
            ua_supervisor(controller, self.server.name),
        )

    def cloud_controller(self) -> Actor:
        return Actor(
            {"username": "k3s-cloud-controller-manager", "groups": ["system:authenticated"]},
            "127.0.0.1",
            ua_component("cloud-controller-manager"),
            rbac_reason(
                "k3s-cloud-controller-manager",
                "k3s-cloud-controller-manager",
                'User "k3s-cloud-controller-manager"',
            ),
        )

    def pod_actor(self, pod: Pod, ua: str, reason: str = "", *, jti: str | None = None) -> Actor:
        """A pod's projected service-account token in use (pod and node are in ``user.extra``)."""
        sa, ns = pod.service_account, pod.namespace
        return Actor(
            {
                "username": f"system:serviceaccount:{ns}:{sa}",
                "uid": self.uid(f"serviceaccount/{ns}/{sa}"),
                "groups": [
                    "system:serviceaccounts",
                    f"system:serviceaccounts:{ns}",
                    "system:authenticated",
                ],
                "extra": {
                    "authentication.kubernetes.io/credential-id": [f"JTI={jti or pod.jti}"],
                    "authentication.kubernetes.io/node-name": [pod.node.name],
                    "authentication.kubernetes.io/node-uid": [pod.node.uid],
                    "authentication.kubernetes.io/pod-name": [pod.name],
                    "authentication.kubernetes.io/pod-uid": [pod.uid],
                },
            },
            pod.ip,
            ua,
            reason,
        )

    def admin(self) -> Actor:
        """The K3s admin kubeconfig (``/etc/rancher/k3s/k3s.yaml``) used on the server itself."""
        return Actor(
            {"username": "system:admin", "groups": ["system:masters", "system:authenticated"]},
            "127.0.0.1",
            UA_KUBECTL_K3S,
        )

    def alice(self, ip: str) -> Actor:
        """Platform engineer authenticated by OIDC (username claim ``email``)."""
        return Actor(
            {
                "username": "alice@example.com",
                "groups": ["platform-admins", "system:authenticated"],
            },
            ip,
            UA_KUBECTL_ALICE,
            rbac_reason("platform-admins", "cluster-admin", 'Group "platform-admins"'),
        )

    def bob(self, ip: str) -> Actor:
        """Developer allowed in the ``shop`` namespace only."""
        return Actor(
            {"username": "bob@example.com", "groups": ["developers", "system:authenticated"]},
            ip,
            UA_KUBECTL_BOB,
            rbac_reason("shop-developers", "edit", 'Group "developers"', "shop"),
        )
