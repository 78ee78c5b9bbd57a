"""Representative requests to run through a policy: who asks, for what, where.

Lint and coverage do not read a policy's text for what it logs; they ask it, with the policy's
own first-match semantics, about requests a cluster really sees: a person, the admin, a
workload's service account, a kubelet, an anonymous client and a client that failed to
authenticate, each on every resource of ``policy.resources`` (and its subresources) in a
workload namespace, in kube-system and cluster-wide, plus the non-resource endpoints.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

from k3watch.policy.evaluate import RequestAttributes
from k3watch.policy.resources import (
    KINDS,
    NON_RESOURCE_PATHS,
    ResourceKind,
    kind_of,
)


@dataclass(frozen=True, slots=True)
class Identity:
    """Who sends a probe: a label for messages, the user name (None: unauthenticated), groups."""

    label: str
    user: str | None
    groups: tuple[str, ...]


PERSON = Identity("a person", "alice", ("system:authenticated",))
ADMIN = Identity(
    "the admin (system:admin)", "system:admin", ("system:masters", "system:authenticated")
)
WORKLOAD = Identity(
    "a workload's service account",
    "system:serviceaccount:shop:api",
    ("system:serviceaccounts", "system:serviceaccounts:shop", "system:authenticated"),
)
NODE = Identity("a node (kubelet)", "system:node:agent-1", ("system:nodes", "system:authenticated"))
ANONYMOUS = Identity("an anonymous client", "system:anonymous", ("system:unauthenticated",))
UNAUTHENTICATED = Identity("a client that failed to authenticate", None, ())

IDENTITIES = (PERSON, ADMIN, WORKLOAD, NODE, ANONYMOUS, UNAUTHENTICATED)
NAMESPACES = ("shop", "kube-system")
PROBE_NAME = "probe"

# Verbs that address one object by name (the others address a collection).
_NAMED_VERBS = frozenset({"get", "update", "patch", "delete"})


@dataclass(frozen=True, slots=True)
class Probe:
    """A request and the identity that sends it."""

    request: RequestAttributes
    identity: Identity

    def event(self) -> dict[str, object]:
        """The request as a minimal audit event, for evaluating detection rules on it."""
        r = self.request
        event: dict[str, object] = {"verb": r.verb}
        user: dict[str, object] = {}
        if r.user is not None:
            user = {"username": r.user, "groups": list(r.groups)}
        event["user"] = user
        if r.resource is None:
            event["requestURI"] = r.path
            return event
        ref: dict[str, str] = {"resource": r.resource}
        if r.subresource:
            ref["subresource"] = r.subresource
        if r.api_group:
            ref["apiGroup"] = r.api_group
        if r.namespace:
            ref["namespace"] = r.namespace
        event["objectRef"] = ref
        return event


def resource_requests(
    identity: Identity,
    resource: str,
    sub: str,
    verb: str,
    group: str,
    namespaces: Iterable[str] = NAMESPACES,
) -> Iterator[RequestAttributes]:
    """The requests ``identity`` can send for one (resource, subresource, verb, group).

    Namespaced resources are asked for in each of ``namespaces`` and, for collection reads,
    across all namespaces (the empty namespace); cluster-scoped ones have no namespace, except
    a namespace object, whose namespace is its own name.
    """
    kind = kind_of(resource)
    named = bool(sub) or verb in _NAMED_VERBS
    name = PROBE_NAME if named else ""
    base = RequestAttributes(
        verb=verb,
        user=identity.user,
        groups=identity.groups,
        api_group=group,
        resource=resource,
        subresource=sub,
        name=name,
    )
    if resource == "namespaces":
        yield replace(
            base, namespace=NAMESPACES[0] if named else "", name=NAMESPACES[0] if named else ""
        )
        return
    if kind is not None and not kind.namespaced:
        yield base
        return
    for namespace in namespaces:
        yield replace(base, namespace=namespace)
    if verb in ("list", "watch", "deletecollection") and not sub:
        yield base


def kind_probes(
    kind: ResourceKind,
    identities: Iterable[Identity] = IDENTITIES,
    namespaces: Iterable[str] = NAMESPACES,
) -> Iterator[Probe]:
    """Every request on ``kind`` (and its subresources), by each of ``identities``."""
    spaces = tuple(namespaces)
    for identity in identities:
        for group in kind.groups:
            for sub, verb in kind.requests():
                for request in resource_requests(identity, kind.name, sub, verb, group, spaces):
                    yield Probe(request, identity)


def path_probes(
    identities: Iterable[Identity] = IDENTITIES, paths: Iterable[str] = NON_RESOURCE_PATHS
) -> Iterator[Probe]:
    """GET requests on the non-resource endpoints."""
    for identity in identities:
        for path in paths:
            yield Probe(
                RequestAttributes(
                    verb="get", user=identity.user, groups=identity.groups, path=path
                ),
                identity,
            )


def all_probes(
    identities: Iterable[Identity] = IDENTITIES, namespaces: Iterable[str] = NAMESPACES
) -> list[Probe]:
    """Every probe: each identity, each resource request of the table, each endpoint."""
    people = tuple(identities)
    spaces = tuple(namespaces)
    out = [p for kind in KINDS for p in kind_probes(kind, people, spaces)]
    out.extend(path_probes(people))
    return out


# Traffic every sane policy drops because it is heartbeat, not activity: lease renewals, event
# writes, status reports (and kubelets reading their Node), health, version and metrics
# scrapes. Coverage does not count these against a generic rule (one that names no resource).
_ROUTINE_PATHS = ("/healthz", "/livez", "/readyz", "/version", "/metrics")


def is_routine(request: RequestAttributes) -> bool:
    """Whether ``request`` is heartbeat traffic (see ``_ROUTINE_PATHS`` and the comment)."""
    if request.resource is None:
        return request.path.startswith(_ROUTINE_PATHS)
    if request.resource == "leases":
        return True
    if request.resource == "events" and request.verb in ("create", "update", "patch"):
        return True
    if request.subresource == "status":
        return True
    # A kubelet reads its own Node before each status report.
    return (
        request.resource == "nodes" and request.verb == "get" and "system:nodes" in request.groups
    )
