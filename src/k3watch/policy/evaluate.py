"""Which rule of a policy decides a request, with kube-apiserver's first-match semantics.

This follows ``k8s.io/apiserver/pkg/audit/policy/checker.go``: the first rule whose every
non-empty list matches decides the level; no matching rule means ``None``. Users, groups,
verbs, namespaces and resource names match exactly (no wildcards); resources match as
``pods``, ``pods/exec``, ``*``, ``pods/*`` (pods and every subresource) and ``*/status``;
a rule with namespaces or resources never matches a non-resource request, and cluster-scoped
requests have the empty namespace. The stages a decision omits are the policy's plus the
rule's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from k3watch.event import Event
from k3watch.policy.model import LEVEL_RANK, Policy, PolicyRule

# Requests the API server logs at ResponseStarted too (their response streams): watches and
# the streaming subresources.
LONG_RUNNING_SUBRESOURCES = frozenset({"exec", "attach", "portforward", "proxy", "log"})


@dataclass(frozen=True, slots=True)
class RequestAttributes:
    """What a policy rule can look at in a request (the authorizer attributes).

    ``user`` is ``None`` for a request whose authentication failed (the API server evaluates
    the policy with no user then). ``resource`` is ``None`` for a non-resource request, whose
    ``path`` is the URL path; ``api_group`` ``""`` is the core group; cluster-scoped requests
    have ``namespace`` ``""``.
    """

    verb: str
    user: str | None = None
    groups: tuple[str, ...] = ()
    api_group: str = ""
    resource: str | None = None
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""

    @property
    def is_resource(self) -> bool:
        return self.resource is not None

    @property
    def kind(self) -> str:
        """``pods/exec``, ``pods`` or the path of a non-resource request."""
        if self.resource is None:
            return self.path
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource

    @property
    def long_running(self) -> bool:
        return self.verb == "watch" or self.subresource in LONG_RUNNING_SUBRESOURCES

    def describe(self) -> str:
        """``create pods/exec in shop by alice``: a request in a few words."""
        if self.resource is None:
            target = f"{self.verb.upper()} {self.path}"
        else:
            group = f" ({self.api_group})" if self.api_group else ""
            where = f" in {self.namespace}" if self.namespace else ""
            target = f"{self.verb} {self.kind}{group}{where}"
        who = self.user if self.user is not None else "an unauthenticated client"
        return f"{target} by {who}"


@dataclass(frozen=True, slots=True)
class Decision:
    """The policy's answer for one request: the deciding rule (``None``: no rule matched), the
    level, the stages not logged and whether managedFields are left out of bodies."""

    rule: int | None
    level: str
    omit_stages: frozenset[str]
    omit_managed_fields: bool

    @property
    def rank(self) -> int:
        return LEVEL_RANK.get(self.level, 0)

    def logs_stage(self, stage: str | None) -> bool:
        """Whether an event of ``stage`` is written at all."""
        return self.level != "None" and (stage is None or stage not in self.omit_stages)

    def effective_level(self, long_running: bool) -> str:
        """The level detection sees: ``None`` when the stages it reads are all omitted.

        Detection reads ResponseComplete (and ResponseStarted for streaming requests); a
        request logged only at RequestReceived reaches no rule.
        """
        omitted = self.omit_stages
        if "ResponseComplete" in omitted and (not long_running or "ResponseStarted" in omitted):
            return "None"
        return self.level


def evaluate(policy: Policy, request: RequestAttributes) -> Decision:
    """The decision of ``policy`` for ``request`` (first matching rule wins)."""
    for rule in policy.rules:
        if rule_matches(rule, request):
            managed = policy.omit_managed_fields
            if rule.omit_managed_fields is not None:
                managed = rule.omit_managed_fields
            stages = frozenset(policy.omit_stages) | frozenset(rule.omit_stages)
            return Decision(rule.index, rule.level, stages, managed)
    return Decision(None, "None", frozenset(policy.omit_stages), policy.omit_managed_fields)


def rule_matches(rule: PolicyRule, request: RequestAttributes) -> bool:
    """Whether ``rule`` matches ``request`` (checker.go's ruleMatches)."""
    if rule.users and (request.user is None or request.user not in rule.users):
        return False
    if rule.user_groups and (
        request.user is None or not any(g in rule.user_groups for g in request.groups)
    ):
        return False
    if rule.verbs and request.verb not in rule.verbs:
        return False
    if rule.namespaces or rule.resources:
        return _matches_resource(rule, request)
    if rule.non_resource_urls:
        return request.resource is None and any(
            path_matches(request.path, spec) for spec in rule.non_resource_urls
        )
    return True


def _matches_resource(rule: PolicyRule, request: RequestAttributes) -> bool:
    resource = request.resource
    if resource is None:
        return False
    if rule.namespaces and request.namespace not in rule.namespaces:
        return False
    if not rule.resources:
        return True
    sub = request.subresource
    combined = f"{resource}/{sub}" if sub else resource
    for group in rule.resources:
        if group.group != request.api_group:
            continue
        if not group.resources:
            return True
        if group.resource_names and request.name not in group.resource_names:
            continue
        for spec in group.resources:
            if resource_matches(spec, resource, sub, combined):
                return True
    return False


def resource_matches(spec: str, resource: str, sub: str, combined: str | None = None) -> bool:
    """Whether a policy resource entry (``pods``, ``pods/*``, ``*/scale``, ``*``) matches."""
    if combined is None:
        combined = f"{resource}/{sub}" if sub else resource
    if spec in ("*", combined):
        return True
    if sub and spec.startswith("*/") and sub == spec[2:]:
        return True
    # "pods/*" matches pods itself as well as its subresources (checker.go does not look at
    # the subresource here).
    return spec.endswith("/*") and resource == spec[:-2]


def path_matches(path: str, spec: str) -> bool:
    """A non-resource URL entry: ``*``, an exact path, or a prefix ending in ``*``."""
    if spec in ("*", path):
        return True
    return spec.endswith("*") and path.startswith(spec.rstrip("*"))


def attributes_from_event(event: Event | Mapping[str, Any]) -> RequestAttributes:
    """The request attributes an audit event records (``Event`` or the raw event dict).

    The event's ``user`` is the authenticated user (impersonation happens after the policy is
    evaluated), and a request with an ``objectRef.resource`` is a resource request.
    """
    raw: Mapping[str, Any] = event.raw if isinstance(event, Event) else event
    user_obj = raw.get("user")
    user: str | None = None
    groups: tuple[str, ...] = ()
    if isinstance(user_obj, Mapping):
        name = user_obj.get("username")
        user = name if isinstance(name, str) and name else None
        found = user_obj.get("groups")
        if isinstance(found, list):
            groups = tuple(g for g in found if isinstance(g, str))
    verb = raw.get("verb")
    verb = verb if isinstance(verb, str) else ""
    ref = raw.get("objectRef")
    if isinstance(ref, Mapping) and isinstance(ref.get("resource"), str) and ref["resource"]:
        return RequestAttributes(
            verb=verb,
            user=user,
            groups=groups,
            api_group=_text(ref.get("apiGroup")),
            resource=ref["resource"],
            subresource=_text(ref.get("subresource")),
            namespace=_text(ref.get("namespace")),
            name=_text(ref.get("name")),
        )
    uri = raw.get("requestURI")
    path = urlsplit(uri).path if isinstance(uri, str) else ""
    return RequestAttributes(verb=verb, user=user, groups=groups, path=path)


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""
