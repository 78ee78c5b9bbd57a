"""The attack scenarios injected on the last day, and the benign look-alikes around them.

Rule authors tune against these descriptions, so they are part of the contract: names,
identities, addresses, times and counts change only with a note in the changelog. Times are
UTC offsets from midnight of the stream's last day (see ``attack_window`` in ``stream.py`` for
streams that end earlier than 15:00). ``rows`` are row numbers of
``shared/design/DETECTIONS.md`` that the scenario should trigger.
"""

from __future__ import annotations

from dataclasses import dataclass

from k3watch.sample.records import HOUR, MINUTE, SECOND
from k3watch.sample.versions import UA_ATTACKER, UA_KUBECTL_ALICE

ATTACKER_IP = "203.0.113.66"
ALICE_NEW_IP = "198.51.100.77"
BUILD_BOT = "system:serviceaccount:default:build-bot"
ALICE = "alice@example.com"
ESCAPE_POD = "kube-proxy-x7k2p"
ROGUE_BINDING = "k3s-node-maintenance"
ROGUE_DAEMONSET = "k3s-node-agent"
ROGUE_WEBHOOK = "k3s-pod-defaults"


@dataclass(frozen=True, slots=True)
class Scenario:
    """One injected attack: who, from where, when, what is logged and what should fire."""

    name: str
    title: str
    offset_us: int
    """Start, as microseconds after midnight UTC of the attack day."""
    username: str
    """``user.username`` of the attacker's events (``""``: rejected, ``user`` is ``{}``)."""
    source_ip: str
    user_agent: str
    events: str
    rows: tuple[int, ...]
    side_effects: str = ""

    @property
    def start(self) -> str:
        """``HH:MM:SS`` of the start on the attack day."""
        seconds = self.offset_us // SECOND
        return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _at(hours: int, minutes: int, seconds: int = 0) -> int:
    return hours * HOUR + minutes * MINUTE + seconds * SECOND


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "brute-force",
        "Token spraying against the API server",
        _at(14, 2),
        "",
        ATTACKER_IP,
        UA_ATTACKER,
        "40 requests in about two minutes (2.3–3.5 s apart), each rejected by authentication: "
        "stage ResponseStarted, user {}, responseStatus.code 401 with message "
        "'Authentication failed, attempted: bearer', no annotations. URIs rotate over list "
        "secrets in kube-system, list secrets (all namespaces), list pods in default, create "
        "selfsubjectrulesreviews and GET /apis (no objectRef).",
        (47, 48, 49),
    ),
    Scenario(
        "stolen-token",
        "Stolen build-bot token: permission check, discovery, secret harvest",
        _at(14, 6),
        BUILD_BOT,
        ATTACKER_IP,
        UA_ATTACKER,
        "14:06:00 and 14:06:05 create selfsubjectrulesreviews (spec.namespace default, then "
        "kube-system); 14:06:12 list namespaces; 14:06:20 list pods (all namespaces); 14:06:31 "
        "list secrets with no namespace (/api/v1/secrets); 14:06:40 list nodes → 403. From "
        "14:06:50, one secret get by name every 8–16 s across kube-system, shop, ci and default "
        "(14 + node-count distinct names, 17 with 3 nodes, all 200, done by about 14:11), "
        "with three 403s among them: "
        "create pods/exec on shop/postgres-0, get nodes/proxy, list clusterrolebindings. The "
        "token is the build-runner pod's projected token, so user.extra still names that pod "
        "and agent node although the requests come from the internet.",
        (24, 25, 26, 27, 28, 45, 46, 47, 50, 61, 64),
    ),
    Scenario(
        "alice-exec-new-ip",
        "Exec reading a service-account token, by alice from an address never seen before",
        _at(14, 20),
        ALICE,
        ALICE_NEW_IP,
        UA_KUBECTL_ALICE,
        "list pods in shop; get pod shop/api-…; get pods/exec on it (WebSocket: verb get) with "
        "requestURI command=sh&command=-c&command=cat+%2Fvar%2Frun%2Fsecrets%2Fkubernetes.io"
        "%2Fserviceaccount%2Ftoken&container=api&stderr=true&stdout=true; ResponseStarted and "
        "ResponseComplete (code 101) share the auditID. Before this alice only ever used "
        "192.0.2.23 and 192.0.2.41 (first-seen on user.username + sourceIPs).",
        (1, 3, 6),
    ),
    Scenario(
        "privileged-pod",
        "Node escape pod disguised as kube-proxy",
        _at(14, 25),
        BUILD_BOT,
        ATTACKER_IP,
        UA_ATTACKER,
        f"create pod kube-system/{ESCAPE_POD} (name in the body) pinned to server-1 with "
        "hostPID, hostNetwork, a privileged container image docker.io/library/alpine:3.20 "
        "running nsenter into PID 1, and hostPath / mounted at /host; annotation "
        "pod-security.kubernetes.io/enforce-policy privileged:latest.",
        (9, 11, 12, 13, 15, 17, 61),
        "server-1's kubelet then mints the pod's token, writes events and patches its status "
        "(identity system:node:server-1, source 127.0.0.1).",
    ),
    Scenario(
        "rbac-then-workload",
        "Self-granted cluster-admin, then a privileged DaemonSet",
        _at(14, 30),
        BUILD_BOT,
        ATTACKER_IP,
        UA_ATTACKER,
        f"14:30:00 create clusterrolebinding {ROGUE_BINDING} (RequestResponse) with roleRef "
        "ClusterRole cluster-admin and subject ServiceAccount default/build-bot; 14:31:20 "
        f"create daemonset kube-system/{ROGUE_DAEMONSET} whose pod template is privileged, "
        "hostPID, hostNetwork, hostPath / at /host, image docker.io/library/alpine:3.20.",
        (19, 20, 36, 37, 38, 42, 43, 61),
        "system:serviceaccount:kube-system:daemon-set-controller creates one such pod per node "
        f"({ROGUE_DAEMONSET}-xxxxx, Request level, would also match rows 9, 11–13, 15); the "
        "scheduler binds them and kubelets start them.",
    ),
    Scenario(
        "webhook",
        "Mutating admission webhook pointing outside the cluster",
        _at(14, 40),
        BUILD_BOT,
        ATTACKER_IP,
        UA_ATTACKER,
        f"create mutatingwebhookconfiguration {ROGUE_WEBHOOK} (RequestResponse): webhook "
        "defaults.k3s-pod.io on CREATE pods, clientConfig.url https://203.0.113.66:8443/mutate, "
        "failurePolicy Ignore.",
        (44, 61),
    ),
    Scenario(
        "delete-events",
        "Covering tracks: events deleted in kube-system",
        _at(14, 50),
        BUILD_BOT,
        ATTACKER_IP,
        UA_ATTACKER,
        "list events in kube-system, then 12 delete events in kube-system (one by one, 1–3 s "
        "apart), named after the escape pod, the rogue DaemonSet and other kube-system objects.",
        (23, 61),
    ),
)

SCENARIO_NAMES = tuple(s.name for s in SCENARIOS)


@dataclass(frozen=True, slots=True)
class LookAlike:
    """Benign traffic in every stream that resembles an attack (rules must not fire)."""

    name: str
    identities: str
    what: str
    rows: tuple[int, ...]


BENIGN_LOOKALIKES: tuple[LookAlike, ...] = (
    LookAlike(
        "helm-controller cluster-admin bindings",
        "system:k3s-supervisor (UA helm-controller@server-1/…)",
        "At boot: clusterrolebindings helm-kube-system-traefik and helm-kube-system-traefik-crd "
        "bind ServiceAccounts kube-system/helm-traefik* to cluster-admin.",
        (36, 37, 38),
    ),
    LookAlike(
        "bootstrap and day-0 RBAC",
        "system:apiserver; system:k3s-supervisor (UA deploy@server-1/…); system:admin",
        "cluster-admin bound to group system:masters; system:controller:* bindings; "
        "platform-admins group bound to cluster-admin; the build-bot ClusterRole with bind.",
        (36, 37, 38, 39),
    ),
    LookAlike(
        "helm-install Job pods",
        "system:serviceaccount:kube-system:job-controller; helm-traefik* (UA Helm/3.16.3)",
        "helm-install-traefik* pods in kube-system; Helm creating CRDs and the traefik "
        "Deployment, Service (LoadBalancer) and ClusterRoleBinding.",
        (15, 21),
    ),
    LookAlike(
        "ServiceLB pods",
        "k3s-cloud-controller-manager; system:serviceaccount:kube-system:daemon-set-controller",
        "DaemonSet svclb-traefik-<uid8> and its pods: image rancher/klipper-lb:v0.4.9, "
        "capabilities.add NET_ADMIN, hostPort 80/443, in kube-system.",
        (10, 15, 20),
    ),
    LookAlike(
        "local-path helper pods",
        "system:serviceaccount:kube-system:local-path-provisioner-service-account",
        "helper-pod-create-pvc-* / helper-pod-delete-pvc-* in kube-system, privileged, hostPath "
        "/var/lib/rancher/k3s/storage/, busybox image; at day 0 (postgres volume) and daily "
        "around 02:00 (pg-backup ephemeral volume).",
        (9, 11, 15, 17),
    ),
    LookAlike(
        "CoreDNS capability",
        "system:serviceaccount:kube-system:replicaset-controller",
        "coredns pods add NET_BIND_SERVICE (not a dangerous capability).",
        (10,),
    ),
    LookAlike(
        "TokenRequests",
        "system:node:<node> (kubelet); system:kube-controller-manager",
        "create serviceaccounts/token for every pod's projected token (~every 48 min) and for "
        "the controllers' own service accounts.",
        (32,),
    ),
    LookAlike(
        "routine exec and attach",
        "alice@example.com from 192.0.2.23/41; system:serviceaccount:ci:gitlab-runner",
        "alice's occasional interactive 'kubectl exec -it … -- sh' (get pods/exec); the GitLab "
        "runner's create pods/attach on its job pods in ci.",
        (1, 2),
    ),
    LookAlike(
        "deployments changed by CI",
        "system:serviceaccount:ci:deployer (UA kubectl/v1.31.4)",
        "patch deployments shop/api (kubectl set image) and shop/web (rollout restart) from "
        "CI job pods, several times per weekday.",
        (19,),
    ),
    LookAlike(
        "jobs and secrets by automation",
        "build-bot in-cluster (UA build-runner/v0.0.0); cronjob-controller; gitlab-runner",
        "build-bot reads default/registry-credentials and creates kaniko Jobs hourly on "
        "weekdays; the pg-backup CronJob creates a Job nightly; the runner creates and deletes "
        "a secret per CI job.",
        (21, 27, 30),
    ),
    LookAlike(
        "a developer's denials",
        "bob@example.com from 192.0.2.77",
        "A few 403s a day (list pods in ci or cluster-wide, list nodes).",
        (48, 49),
    ),
)
