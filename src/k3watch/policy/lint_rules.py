"""Lint checks on how single rules are written: subresources a resource does not cover,
namespaces that cannot match cluster-scoped objects, literal stars, managed fields in bodies."""

from __future__ import annotations

from dataclasses import replace

from k3watch.policy.evaluate import RequestAttributes, evaluate, resource_matches, rule_matches
from k3watch.policy.findings import PolicyFinding
from k3watch.policy.lint_context import LintContext, join, notable
from k3watch.policy.model import PolicyRule
from k3watch.policy.probes import PERSON
from k3watch.policy.resources import SUBRESOURCE_VERBS, is_cluster_scoped

# Subresources a rule on the parent resource is often meant to cover, and which verb to probe.
_SUBRESOURCES = {
    "pods": ("exec", "attach", "portforward", "proxy", "ephemeralcontainers"),
    "nodes": ("proxy",),
    "services": ("proxy",),
}
_BODY_SUBRESOURCES = frozenset({"ephemeralcontainers"})  # the others stream: no body to lose


def subresources(ctx: LintContext) -> list[PolicyFinding]:
    """A rule on ``pods`` does not match ``pods/exec``: the subresources fall to later rules."""
    out = []
    for rule in ctx.policy.rules:
        if rule.rank == 0:
            continue
        lost: list[str] = []
        for resource, subs in _SUBRESOURCES.items():
            for sub in subs:
                text = _lost_subresource(ctx, rule, resource, sub)
                if text:
                    lost.append(text)
        if lost:
            out.append(
                ctx.finding(
                    "warning",
                    "subresources",
                    f"logs {', '.join(sorted({t.split('/')[0] for t in lost}))} at {rule.level}, "
                    f"but a resource does not match its subresources: {'; '.join(lost)}",
                    rule,
                    "add the subresources you meant (pods/exec, pods/attach, pods/portforward, "
                    "pods/ephemeralcontainers…) or 'pods/*' to its resources",
                )
            )
    return out


def _lost_subresource(ctx: LintContext, rule: PolicyRule, resource: str, sub: str) -> str:
    names_parent = any(gr.group == "" and resource in gr.resources for gr in rule.resources)
    if not names_parent or _names(rule, resource, sub):
        return ""
    verbs = [v for v in SUBRESOURCE_VERBS[sub] if not rule.verbs or v in rule.verbs]
    if not verbs:
        return ""
    user = rule.users[0] if rule.users else PERSON.user
    groups = (rule.user_groups[0],) if rule.user_groups else PERSON.groups
    namespace = rule.namespaces[0] if rule.namespaces else "shop"
    if is_cluster_scoped(resource):
        namespace = ""
    parent = RequestAttributes(
        verb=verbs[0],
        user=user,
        groups=groups,
        resource=resource,
        namespace=namespace,
        name="probe",
    )
    if evaluate(ctx.policy, parent).rule != rule.index:
        return ""  # the parent request itself does not reach this rule
    decision = evaluate(ctx.policy, replace(parent, subresource=sub))
    if decision.rule == rule.index:
        return ""
    deciding = ctx.rule(decision.rule)
    if decision.level == "None" and (deciding is None or not _names(deciding, resource, sub)):
        return f"{resource}/{sub} is decided by {ctx.who(decision)}"
    if (
        sub in _BODY_SUBRESOURCES
        and decision.rank < rule.rank
        and (deciding is None or not _names(deciding, resource, sub))
    ):
        return f"{resource}/{sub} is decided by {ctx.who(decision)}"
    return ""


def _names(rule: PolicyRule, resource: str, sub: str) -> bool:
    """Whether ``rule`` names the subresource itself (``pods/exec``, ``pods/*``, ``*/exec``)."""
    return any(
        spec != "*" and resource_matches(spec, resource, sub)
        for gr in rule.resources
        if gr.group == ""
        for spec in gr.resources
    )


def cluster_scoped(ctx: LintContext) -> list[PolicyFinding]:
    """``namespaces`` never matches cluster-scoped requests (their namespace is empty)."""
    out = []
    for rule in ctx.policy.rules:
        if not rule.namespaces or "" in rule.namespaces:
            continue
        named = sorted(
            {
                spec
                for gr in rule.resources
                for spec in gr.resources
                if is_cluster_scoped(spec.split("/")[0])
            }
        )
        if named:
            out.append(
                ctx.finding(
                    "warning",
                    "namespaces-cluster-scoped",
                    f"names cluster-scoped resources ({', '.join(named)}) but also namespaces: a "
                    "cluster-scoped request has no namespace, so this part of the rule never "
                    "matches",
                    rule,
                    'add "" to namespaces, or move those resources to a rule without namespaces',
                )
            )
            continue
        if rule.rank == 0:
            continue
        unrestricted = replace(rule, namespaces=())
        dropped = sorted(
            {
                probe.request.resource or ""
                for probe, decision in ctx.probes
                if decision.level == "None"
                and probe.request.is_resource
                and probe.request.namespace == ""
                and _cluster_request(probe.request)
                and rule_matches(unrestricted, probe.request)
            }
        )
        if dropped:
            out.append(
                ctx.finding(
                    "warning",
                    "namespaces-cluster-scoped",
                    f"restricts {rule.level} logging to namespaces {', '.join(rule.namespaces)}; "
                    f"cluster-scoped requests never match it and are then not logged at all: "
                    f"{join(sorted(dropped, key=notable)[:8])}{' …' if len(dropped) > 8 else ''}",
                    rule,
                    'add "" to namespaces (the namespace of cluster-scoped requests) or add a '
                    "rule for cluster-scoped resources",
                )
            )
    return out


def _cluster_request(request: RequestAttributes) -> bool:
    return request.resource is not None and (
        is_cluster_scoped(request.resource) or request.resource == "namespaces"
    )


def literal_wildcards(ctx: LintContext) -> list[PolicyFinding]:
    """``*`` is a wildcard only in resources and nonResourceURLs."""
    out = []
    for rule in ctx.policy.rules:
        for field, values in (
            ("users", rule.users),
            ("userGroups", rule.user_groups),
            ("verbs", rule.verbs),
            ("namespaces", rule.namespaces),
            ("resourceNames", tuple(n for gr in rule.resources for n in gr.resource_names)),
        ):
            starred = [v for v in values if "*" in v]
            if starred:
                out.append(
                    ctx.finding(
                        "warning",
                        "literal-wildcard",
                        f"{field} {', '.join(repr(v) for v in starred)}: '*' is not a wildcard "
                        f"in {field}; the API server compares the text exactly, so this never "
                        "matches what it seems to",
                        rule,
                        f"list the exact values, or leave {field} out to match all",
                        line=rule.line_of("resources" if field == "resourceNames" else field),
                    )
                )
        odd = [
            spec
            for gr in rule.resources
            for spec in gr.resources
            if "*" in spec and spec != "*" and not spec.endswith("/*") and not spec.startswith("*/")
        ]
        if odd:
            out.append(
                ctx.finding(
                    "warning",
                    "literal-wildcard",
                    f"resources {', '.join(repr(s) for s in odd)}: only '*', 'name/*' and "
                    "'*/subresource' are wildcards; anything else is compared exactly",
                    rule,
                    "use one of the three wildcard forms",
                    line=rule.line_of("resources"),
                )
            )
    return out


def managed_fields(ctx: LintContext) -> list[PolicyFinding]:
    policy = ctx.policy
    bodies = [
        r
        for r in policy.rules
        if r.rank >= 2
        and not (
            r.omit_managed_fields
            if r.omit_managed_fields is not None
            else policy.omit_managed_fields
        )
    ]
    if not bodies:
        return []
    names = ", ".join(f"rules[{r.index}]" for r in bodies)
    return [
        ctx.finding(
            "info",
            "managed-fields",
            f"request bodies logged by {names} include metadata.managedFields, often half of an "
            "object's size and of no use to detection",
            None,
            "add 'omitManagedFields: true' at the top level (unless you want field ownership as "
            "evidence)",
            line=policy.line_of("omitManagedFields") or policy.line_of("rules"),
        )
    ]
