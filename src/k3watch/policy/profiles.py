"""``k3watch policy generate``: three audit policies for K3s, each rule commented.

* ``minimal`` — every request at Metadata, minus heartbeat traffic. No request bodies, so the
  rules that read pod specs, RBAC rules or CSRs cannot fire; the smallest log that still shows
  who did what.
* ``recommended`` — ``minimal`` plus Request bodies for exactly the resources the built-in
  detection rules read (taken from the rules' own declared audit level and resources), with
  secrets, config maps and tokens held at Metadata. Blinds no built-in rule except where a
  rule would need a credential-bearing body (see ``policy.coverage``).
* ``forensic`` — for an investigation: bodies and responses of every write
  (RequestResponse), reads at Metadata, only lease renewals dropped, managedFields kept (they
  record which client set which field). Still never logs secret, config map or token values.

``--webhook URL`` does not change the rules: kube-apiserver applies one policy to every
backend (log file and webhook alike). It is recorded in the header, where the reader of the
file learns that the same events also leave the node.
"""

from __future__ import annotations

from collections import defaultdict
from functools import cache
from urllib.parse import urlsplit

from k3watch.policy.render import RuleSpec, render_policy
from k3watch.policy.resources import (
    RESOURCE_VERBS,
    SENSITIVE_RESOURCES,
    WRITE_VERBS,
    groups_of,
    has_subresource,
    split_resource,
)
from k3watch.rules.model import RuleSet

PROFILES = ("minimal", "recommended", "forensic")

# K3s's control-plane identities whose watches are routine (they re-open them all day).
CONTROL_PLANE_USERS = (
    "system:kube-proxy",
    "system:kube-controller-manager",
    "system:kube-scheduler",
    "system:k3s-controller",
    "k3s-cloud-controller-manager",
    "system:apiserver",
)

# Bodies worth keeping although no built-in rule reads them: what an investigator needs to see
# after a webhook or add-on alert (where the webhook sends objects, what an Addon deploys).
EXTRA_BODIES = {
    "mutatingwebhookconfigurations": "where the webhook sends every object it intercepts",
    "validatingwebhookconfigurations": "where the webhook sends every object it intercepts",
    "addons": "what a manifest from the auto-deploy directory creates",
}

# Why a resource's body matters, for the comment next to it in the generated policy.
BODY_REASONS = {
    "pods": "pod specs: privileged, host namespaces, hostPath, capabilities, images",
    "roles": "RBAC: the rules a role grants, the subjects a binding names",
    "certificatesigningrequests": "the signer and the identity a certificate would carry",
    "services": "service type, external IPs, ExternalName targets",
    "ingresses": "whether TLS is configured",
    "middlewares": "Traefik redirects and forward-auth targets",
    "helmcharts": "the chart, its repository and the values it runs with",
}

_HEARTBEAT_WHY = "heartbeats, not activity"


class ProfileError(ValueError):
    """An unknown profile or a webhook URL that is not http(s)."""


def generate_policy(profile: str, webhook: str | None = None) -> str:
    """The policy ``profile`` (``minimal``, ``recommended``, ``forensic``) as commented YAML."""
    if profile not in PROFILES:
        raise ProfileError(f"unknown profile {profile!r}: choose {', '.join(PROFILES)}")
    if webhook is not None:
        parts = urlsplit(webhook)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ProfileError(f"webhook {webhook!r} is not an http(s) URL")
    if profile == "forensic":
        rules = _forensic()
    else:
        rules = _quiet_rules()
        if profile == "recommended":
            rules += (_sensitive(), _streams(), *_bodies(_builtin_rules()))
        rules += (_catch_all("Metadata"),)
    header = _header(profile, webhook)
    managed = profile != "forensic"
    managed_why = (
        "Bodies without metadata.managedFields: field ownership is half of an object's size "
        "and no rule reads it."
        if managed
        else "Forensic keeps metadata.managedFields: they record which client set which field."
    )
    stage_why = (
        "Every request is logged again when it completes: the RequestReceived copy "
        "doubles the log and tells nothing more."
    )
    return render_policy(header, rules, ("RequestReceived",), managed, stage_why, managed_why)


def _header(profile: str, webhook: str | None) -> tuple[str, ...]:
    purpose = {
        "minimal": "every request at Metadata, heartbeats dropped; no bodies.",
        "recommended": "Metadata everywhere, request bodies where k3watch's rules read "
        "them, never secret values; heartbeats dropped.",
        "forensic": "bodies and responses of every write, reads at Metadata, never secret "
        "values; for investigations (large).",
    }[profile]
    lines = [
        f"k3watch audit policy, profile {profile}.",
        purpose[0].upper() + purpose[1:],
        "Generated by 'k3watch policy generate'; check it with 'k3watch policy lint' and",
        "'k3watch policy coverage'. Rules are tried in order: the first match decides.",
    ]
    if webhook:
        lines += [
            f"The API server also sends these events to the webhook {webhook}.",
            "It applies this one policy to the log file and the webhook alike.",
        ]
    return tuple(lines)


def _quiet_rules() -> tuple[RuleSpec, ...]:
    """Heartbeat traffic: most of a K3s audit log, and nothing a rule looks at."""
    return (
        RuleSpec(
            (
                "Lease renewals: every kubelet every 10 s, every leader-elected component "
                f"every 2 s; {_HEARTBEAT_WHY}.",
            ),
            "None",
            verbs=("get", "update", "patch"),
            resources=(("coordination.k8s.io", ("leases",), ""),),
        ),
        RuleSpec(
            (
                "Kubelets report node and pod status every few seconds; "
                f"{_HEARTBEAT_WHY}. Their other requests (secrets, tokens, changes to Node "
                "objects) stay logged.",
            ),
            "None",
            user_groups=("system:nodes",),
            verbs=("update", "patch"),
            resources=(("", ("nodes/status", "pods/status"), ""),),
        ),
        RuleSpec(
            ("Kubelets read their own Node before each status report.",),
            "None",
            user_groups=("system:nodes",),
            verbs=("get",),
            resources=(("", ("nodes",), ""),),
        ),
        RuleSpec(
            (
                "Watches of K3s's control plane (kube-proxy, controllers, scheduler, K3s's "
                "own controllers), re-opened all day; their writes stay logged.",
            ),
            "None",
            users=CONTROL_PLANE_USERS,
            verbs=("watch",),
        ),
        RuleSpec(
            (
                "The API server's own reconciliation of the kubernetes service endpoints, "
                "every 10 s.",
            ),
            "None",
            users=("system:apiserver",),
            verbs=("get",),
            resources=(("", ("endpoints",), ""), ("discovery.k8s.io", ("endpointslices",), "")),
        ),
        RuleSpec(
            (
                "Event objects written by every component; deleting events is still logged "
                "(covering tracks).",
            ),
            "None",
            verbs=("create", "update", "patch"),
            resources=(("", ("events",), ""), ("events.k8s.io", ("events",), "")),
        ),
        RuleSpec(
            ("Health, version and metrics endpoints polled by load balancers and monitoring.",),
            "None",
            non_resource_urls=(
                "/healthz*",
                "/livez*",
                "/readyz*",
                "/version",
                "/version/",
                "/metrics",
            ),
        ),
    )


def _sensitive() -> RuleSpec:
    return RuleSpec(
        (
            "Secrets, config maps, service-account tokens and token reviews carry credentials in "
            "their bodies or responses: Metadata only (who touched which one, never the value).",
        ),
        "Metadata",
        resources=(
            ("", ("secrets", "configmaps", "serviceaccounts/token"), ""),
            ("authentication.k8s.io", ("tokenreviews",), ""),
        ),
    )


def _streams() -> RuleSpec:
    return RuleSpec(
        (
            "exec, attach, port-forward and proxy: the command and target are in the request "
            "URI and the stream itself is never logged, so Metadata records all there is. Named "
            "here so that the pods rule below does not need pods/*.",
        ),
        "Metadata",
        resources=(
            (
                "",
                (
                    "pods/exec",
                    "pods/attach",
                    "pods/portforward",
                    "pods/proxy",
                    "services/proxy",
                    "nodes/proxy",
                ),
                "",
            ),
        ),
    )


def _bodies(ruleset: RuleSet) -> tuple[RuleSpec, ...]:
    """A RequestResponse rule for what rules read in responses, then a Request rule for every
    resource (and subresource) whose body a rule reads."""
    needs = body_needs(ruleset)
    out = []
    response = needs.get("RequestResponse")
    if response:
        resources, verbs = response
        out.append(
            RuleSpec(
                (
                    "Responses where k3watch's rules read the object as stored (a patch only shows "
                    "its change): RequestResponse, for these writes only.",
                ),
                "RequestResponse",
                verbs=tuple(v for v in RESOURCE_VERBS if v in verbs),
                resources=_entries(resources),
            )
        )
    resources, verbs = needs.get("Request", ({}, set()))
    resources = dict(resources)
    for resource in EXTRA_BODIES:
        resources.setdefault(resource, set())
    out.append(
        RuleSpec(
            (
                "Request bodies where k3watch's detection rules read them (rules with audit "
                "level Request, see 'k3watch rules list'), plus webhook configurations and K3s "
                "Addons for investigators. Writes only: reads have no request body.",
            ),
            "Request",
            verbs=tuple(v for v in RESOURCE_VERBS if v in verbs),
            resources=_entries(resources),
        )
    )
    return tuple(out)


def _entries(resources: dict[str, set[str]]) -> tuple[tuple[str, tuple[str, ...], str], ...]:
    """Resources grouped by API group (core first), each group with why its bodies matter."""
    by_group: dict[str, list[str]] = defaultdict(list)
    for resource in sorted(resources):
        name, _ = split_resource(resource)
        for group in groups_of(name) or ("",):
            by_group[group].append(resource)
    entries = []
    for group in sorted(by_group, key=lambda g: (g != "", g)):
        names = tuple(by_group[group])
        reasons = sorted({r for n in names if (r := _reason(n))})
        entries.append((group, names, "; ".join(reasons)))
    return tuple(entries)


def body_needs(ruleset: RuleSet) -> dict[str, tuple[dict[str, set[str]], set[str]]]:
    """By level (Request, RequestResponse): the resources (``pods``,
    ``pods/ephemeralcontainers``) whose bodies the rules need, each with the titles of the
    rules needing it, and the verbs those rules look at.

    From each event rule's declared ``audit_level`` and ``audit_resources``; a rule that also
    accepts a subresource (its index requires ``objectRef.subresource`` among values that
    include none) needs that subresource too. Credential-bearing resources are left out.
    """
    out: dict[str, tuple[dict[str, set[str]], set[str]]] = {}
    for rule in ruleset.event_rules:
        level = rule.info.audit_level
        if level not in ("Request", "RequestResponse"):
            continue
        wanted, verbs = out.setdefault(level, (defaultdict(set), set()))
        subs = sorted(s for s in rule.requires.get("objectRef.subresource", ()) if s)
        needed: set[str] = set()
        for resource in rule.info.audit_resources:
            needed.add(resource)
            if "/" not in resource:
                needed.update(f"{resource}/{s}" for s in subs if has_subresource(resource, s))
        for resource in needed - set(SENSITIVE_RESOURCES):
            wanted[resource].add(rule.info.title)
        found = {v for v in rule.requires.get("verb", ()) if v in RESOURCE_VERBS}
        verbs |= found or set(WRITE_VERBS)
    return out


def _reason(resource: str) -> str:
    name, _ = split_resource(resource)
    if name in EXTRA_BODIES:
        return EXTRA_BODIES[name]
    for key, reason in BODY_REASONS.items():
        if (
            name == key
            or (key == "pods" and name in _WORKLOADS)
            or (key == "roles" and "role" in name)
        ):
            return reason
    return ""


_WORKLOADS = frozenset(
    {
        "deployments",
        "daemonsets",
        "statefulsets",
        "replicasets",
        "jobs",
        "cronjobs",
        "replicationcontrollers",
    }
)


def _catch_all(level: str) -> RuleSpec:
    why = {
        "Metadata": "Everything else at Metadata: who did what to which object, from where, "
        "with what result. Without this rule unmatched requests are not logged.",
        "RequestResponse": "Every other request (writes) with its body and the API server's "
        "answer.",
    }[level]
    return RuleSpec((why,), level)


def _forensic() -> tuple[RuleSpec, ...]:
    return (
        RuleSpec(
            (f"Lease renewals: {_HEARTBEAT_WHY}; the only traffic dropped.",),
            "None",
            verbs=("get", "update", "patch"),
            resources=(("coordination.k8s.io", ("leases",), ""),),
        ),
        _sensitive(),
        RuleSpec(
            (
                "Events and kubelet status reports without bodies: high volume, and the "
                "objects they describe are logged with theirs.",
            ),
            "Metadata",
            verbs=("create", "update", "patch"),
            resources=(
                ("", ("events", "nodes/status", "pods/status"), ""),
                ("events.k8s.io", ("events",), ""),
            ),
        ),
        RuleSpec(
            ("Reads at Metadata: a list or watch response holds whole collections.",),
            "Metadata",
            verbs=("get", "list", "watch"),
        ),
        _catch_all("RequestResponse"),
    )


@cache
def _builtin_rules() -> RuleSet:
    from k3watch.rules.loader import load_rules

    return load_rules(builtin=True)
