"""The API resources a K3s cluster serves that matter to auditing: group, scope, subresources.

A policy names resources by group, and a detection rule names them without one; this table
joins the two (``ingresses`` is ``networking.k8s.io``, ``helmcharts`` is ``helm.cattle.io``).
It also says which requests exist at all (``tokenreviews`` are only created, ``pods/exec`` is
``create`` or ``get``), so lint and coverage probe real requests, not impossible ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

# The verbs a resource request can have (RequestInfo): reads, writes and deletes.
RESOURCE_VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")
READ_VERBS = ("get", "list", "watch")
WRITE_VERBS = ("create", "update", "patch")
# Non-resource requests carry the lower-cased HTTP method as their verb.
NON_RESOURCE_VERBS = ("get", "post", "put", "patch", "delete", "head", "options")

# The verbs of each subresource (exec over a websocket is a GET, with kubectl a POST).
SUBRESOURCE_VERBS = {
    "exec": ("create", "get"),
    "attach": ("create", "get"),
    "portforward": ("create", "get"),
    "proxy": ("get", "create", "update", "patch", "delete"),
    "log": ("get",),
    "token": ("create",),
    "status": ("get", "update", "patch"),
    "ephemeralcontainers": ("get", "update", "patch"),
    "approval": ("get", "update", "patch"),
    "scale": ("get", "update", "patch"),
    "binding": ("create",),
    "eviction": ("create",),
    "finalize": ("update",),
}


@dataclass(frozen=True, slots=True)
class ResourceKind:
    """A resource: its API groups (most have one), scope, subresources and verbs."""

    name: str
    groups: tuple[str, ...]
    namespaced: bool = True
    subresources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = RESOURCE_VERBS

    def requests(self) -> Iterator[tuple[str, str]]:
        """Every (subresource, verb) pair a request on this resource can have."""
        for verb in self.verbs:
            yield "", verb
        for sub in self.subresources:
            for verb in SUBRESOURCE_VERBS.get(sub, ("get", "update", "patch")):
                yield sub, verb


_CREATE_ONLY = ("create",)
_STATUS = ("status",)

# name, groups, namespaced, subresources, verbs
KINDS: tuple[ResourceKind, ...] = (
    ResourceKind(
        "pods",
        ("",),
        True,
        (
            "exec",
            "attach",
            "portforward",
            "proxy",
            "log",
            "ephemeralcontainers",
            "status",
            "binding",
            "eviction",
        ),
    ),
    ResourceKind("services", ("",), True, ("proxy", "status")),
    ResourceKind("nodes", ("",), False, ("proxy", "status")),
    ResourceKind("namespaces", ("",), False, ("status", "finalize")),
    ResourceKind("secrets", ("",)),
    ResourceKind("configmaps", ("",)),
    ResourceKind("serviceaccounts", ("",), True, ("token",)),
    ResourceKind("events", ("", "events.k8s.io")),
    ResourceKind("endpoints", ("",)),
    ResourceKind("persistentvolumeclaims", ("",), True, _STATUS),
    ResourceKind("persistentvolumes", ("",), False, _STATUS),
    ResourceKind("replicationcontrollers", ("",), True, ("scale", "status")),
    ResourceKind("resourcequotas", ("",), True, _STATUS),
    ResourceKind("limitranges", ("",)),
    ResourceKind("deployments", ("apps",), True, ("scale", "status")),
    ResourceKind("daemonsets", ("apps",), True, _STATUS),
    ResourceKind("statefulsets", ("apps",), True, ("scale", "status")),
    ResourceKind("replicasets", ("apps",), True, ("scale", "status")),
    ResourceKind("controllerrevisions", ("apps",)),
    ResourceKind("jobs", ("batch",), True, _STATUS),
    ResourceKind("cronjobs", ("batch",), True, _STATUS),
    ResourceKind("roles", ("rbac.authorization.k8s.io",)),
    ResourceKind("rolebindings", ("rbac.authorization.k8s.io",)),
    ResourceKind("clusterroles", ("rbac.authorization.k8s.io",), False),
    ResourceKind("clusterrolebindings", ("rbac.authorization.k8s.io",), False),
    ResourceKind("ingresses", ("networking.k8s.io",), True, _STATUS),
    ResourceKind("ingressclasses", ("networking.k8s.io",), False),
    ResourceKind("networkpolicies", ("networking.k8s.io",)),
    ResourceKind("adminnetworkpolicies", ("policy.networking.k8s.io",), False, _STATUS),
    ResourceKind("baselineadminnetworkpolicies", ("policy.networking.k8s.io",), False, _STATUS),
    ResourceKind("ciliumnetworkpolicies", ("cilium.io",), True, _STATUS),
    ResourceKind("ciliumclusterwidenetworkpolicies", ("cilium.io",), False, _STATUS),
    ResourceKind("globalnetworkpolicies", ("crd.projectcalico.org",), False),
    ResourceKind("mutatingwebhookconfigurations", ("admissionregistration.k8s.io",), False),
    ResourceKind("validatingwebhookconfigurations", ("admissionregistration.k8s.io",), False),
    ResourceKind("validatingadmissionpolicies", ("admissionregistration.k8s.io",), False, _STATUS),
    ResourceKind("validatingadmissionpolicybindings", ("admissionregistration.k8s.io",), False),
    ResourceKind(
        "certificatesigningrequests", ("certificates.k8s.io",), False, ("approval", "status")
    ),
    ResourceKind("tokenreviews", ("authentication.k8s.io",), False, (), _CREATE_ONLY),
    ResourceKind("selfsubjectreviews", ("authentication.k8s.io",), False, (), _CREATE_ONLY),
    ResourceKind("subjectaccessreviews", ("authorization.k8s.io",), False, (), _CREATE_ONLY),
    ResourceKind("selfsubjectaccessreviews", ("authorization.k8s.io",), False, (), _CREATE_ONLY),
    ResourceKind("selfsubjectrulesreviews", ("authorization.k8s.io",), False, (), _CREATE_ONLY),
    ResourceKind("localsubjectaccessreviews", ("authorization.k8s.io",), True, (), _CREATE_ONLY),
    ResourceKind("leases", ("coordination.k8s.io",)),
    ResourceKind("endpointslices", ("discovery.k8s.io",)),
    ResourceKind("storageclasses", ("storage.k8s.io",), False),
    ResourceKind("priorityclasses", ("scheduling.k8s.io",), False),
    ResourceKind("customresourcedefinitions", ("apiextensions.k8s.io",), False, _STATUS),
    ResourceKind("apiservices", ("apiregistration.k8s.io",), False, _STATUS),
    ResourceKind("helmcharts", ("helm.cattle.io",), True, _STATUS),
    ResourceKind("helmchartconfigs", ("helm.cattle.io",)),
    ResourceKind("addons", ("k3s.cattle.io",)),
    ResourceKind("etcdsnapshotfiles", ("k3s.cattle.io",), False, _STATUS),
    ResourceKind("middlewares", ("traefik.io", "traefik.containo.us")),
    ResourceKind("ingressroutes", ("traefik.io", "traefik.containo.us")),
)

# Resources whose objects hold credentials: their bodies must never reach the audit log.
SENSITIVE_RESOURCES = ("secrets", "configmaps", "serviceaccounts/token", "tokenreviews")

# Non-resource paths clients call: discovery, health, version, metrics, logs, debugging.
NON_RESOURCE_PATHS = (
    "/",
    "/api",
    "/apis",
    "/version",
    "/healthz",
    "/livez",
    "/readyz",
    "/metrics",
    "/openapi/v2",
    "/openapi/v3",
    "/logs",
    "/debug/pprof",
    "/.well-known/openid-configuration",
    "/openid/v1/jwks",
)


@cache
def _by_name() -> dict[str, ResourceKind]:
    return {kind.name: kind for kind in KINDS}


def kind_of(resource: str) -> ResourceKind | None:
    """The table's entry for a resource name (``pods``), ``None`` when unknown."""
    return _by_name().get(resource)


def groups_of(resource: str) -> tuple[str, ...]:
    """The API groups serving ``resource``; empty when the table does not know it."""
    kind = kind_of(resource)
    return kind.groups if kind is not None else ()


def is_cluster_scoped(resource: str) -> bool:
    kind = kind_of(resource)
    return kind is not None and not kind.namespaced


def has_subresource(resource: str, sub: str) -> bool:
    kind = kind_of(resource)
    return kind is not None and sub in kind.subresources


def split_resource(text: str) -> tuple[str, str]:
    """``pods/exec`` → (``pods``, ``exec``); ``pods`` → (``pods``, ``""``)."""
    resource, _, sub = text.partition("/")
    return resource, sub
