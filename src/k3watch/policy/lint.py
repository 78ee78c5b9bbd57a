"""``k3watch policy lint``: what the API server refuses, and the mistakes it lets through.

Every check that is about what a policy *logs* asks the policy itself, with kube-apiserver's
first-match semantics (``policy.evaluate``), about representative requests
(``policy.probes``): reading secrets by a person, a workload and a node, in a namespace and
cluster-wide; every resource and endpoint by every kind of caller. A rule written in an odd
way but doing the right thing passes; a harmless-looking rule that lets secrets through is
caught, whatever its wording.
"""

from __future__ import annotations

from collections import defaultdict

from k3watch.policy.evaluate import (
    RequestAttributes,
    evaluate,
)
from k3watch.policy.findings import PolicyFinding
from k3watch.policy.lint_context import LintContext, join, notable, ordered, verbs_text
from k3watch.policy.lint_rules import (
    cluster_scoped,
    literal_wildcards,
    managed_fields,
    subresources,
)
from k3watch.policy.model import LEVEL_RANK, Policy, decode_policy
from k3watch.policy.probes import (
    ADMIN,
    ANONYMOUS,
    IDENTITIES,
    NAMESPACES,
    NODE,
    PERSON,
    WORKLOAD,
    Identity,
    resource_requests,
)
from k3watch.policy.resources import (
    READ_VERBS,
    RESOURCE_VERBS,
    WRITE_VERBS,
)
from k3watch.policy.shadow import shadowing_rules

__all__ = ["PolicyFinding", "lint_policy", "lint_policy_text"]

METADATA_FIX = (
    "put a rule before it: '- level: Metadata' with resources [{group: \"\", resources: "
    "[secrets, configmaps, serviceaccounts/token]}, {group: authentication.k8s.io, resources: "
    "[tokenreviews]}]"
)


def lint_policy_text(text: str, source: str) -> list[PolicyFinding]:
    """Every finding about the policy in ``text``: API-server refusals, then known mistakes."""
    policy, findings = decode_policy(text, source)
    if policy is not None and policy.rules:
        findings.extend(lint_policy(policy))
    return sorted(findings, key=lambda f: f.sort_key)


def lint_policy(policy: Policy) -> list[PolicyFinding]:
    """The semantic checks on a decoded policy (see docs/policy.md for each)."""
    ctx = LintContext(policy)
    out: list[PolicyFinding] = []
    out += _secret_leaks(ctx)
    out += _no_catch_all(ctx)
    out += _request_received(ctx)
    out += subresources(ctx)
    out += cluster_scoped(ctx)
    out += _responses_on_reads(ctx)
    out += _shadowed(ctx)
    out += literal_wildcards(ctx)
    out += managed_fields(ctx)
    return out


def _secret_leaks(ctx: LintContext) -> list[PolicyFinding]:
    """Secret, config map and token values reachable at Request or RequestResponse."""
    by_rule: dict[int, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    levels: dict[int, str] = {}
    for request, leaks_at in _secret_requests(ctx.policy):
        decision = evaluate(ctx.policy, request)
        if decision.rule is None or decision.rank < LEVEL_RANK[leaks_at]:
            continue
        if len(decision.omit_stages) >= 4:
            continue  # every stage omitted: nothing is written
        by_rule[decision.rule][request.kind].add(request.verb)
        levels[decision.rule] = decision.level
    out = []
    for index, kinds in sorted(by_rule.items()):
        rule = ctx.policy.rules[index]
        what = "; ".join(f"{kind} ({', '.join(ordered(verbs))})" for kind, verbs in kinds.items())
        out.append(
            ctx.finding(
                "error",
                "leaks-secrets",
                f"logs secret values: at {levels[index]} it writes the bodies of {what} into the "
                "audit log, where everyone who can read the log (and every system it is shipped "
                "to) can read the credentials",
                rule,
                METADATA_FIX,
            )
        )
    return out


def _secret_requests(policy: Policy) -> list[tuple[RequestAttributes, str]]:
    """Requests whose bodies hold credentials, with the level from which they are logged.

    Sent by the usual callers and by every user and group the policy names, in the usual
    namespaces and every namespace it names: a rule for one user or namespace can leak too.
    """
    callers = [PERSON, ADMIN, WORKLOAD, NODE, ANONYMOUS]
    users = {u for r in policy.rules for u in r.users if "*" not in u}
    groups = {g for r in policy.rules for g in r.user_groups if "*" not in g}
    callers += [Identity(f"user {u}", u, ("system:authenticated",)) for u in sorted(users)]
    callers += [
        Identity(f"group {g}", "k3watch-probe", (g, "system:authenticated")) for g in sorted(groups)
    ]
    named = {n for r in policy.rules for n in r.namespaces if n and "*" not in n}
    namespaces = (*NAMESPACES, *sorted(named - set(NAMESPACES)))
    out: list[tuple[RequestAttributes, str]] = []
    for identity in callers:
        for resource in ("secrets", "configmaps"):
            for verb in RESOURCE_VERBS:
                # A write carries the object in the request; a read or delete returns it.
                leaks_at = "Request" if verb in WRITE_VERBS else "RequestResponse"
                out += [
                    (r, leaks_at)
                    for r in resource_requests(identity, resource, "", verb, "", namespaces)
                ]
        # A TokenRequest's response holds the token; a TokenReview's request does.
        out += [
            (r, "RequestResponse")
            for r in resource_requests(
                identity, "serviceaccounts", "token", "create", "", namespaces
            )
        ]
        out += [
            (r, "Request")
            for r in resource_requests(
                identity, "tokenreviews", "", "create", "authentication.k8s.io"
            )
        ]
    return out


def _no_catch_all(ctx: LintContext) -> list[PolicyFinding]:
    """Requests no rule matches are not logged at all (the API server's default is None)."""
    verbs: dict[str, set[str]] = defaultdict(set)
    callers: dict[str, set[str]] = defaultdict(set)
    for probe, decision in ctx.probes:
        if decision.rule is None:
            verbs[probe.request.kind].add(probe.request.verb)
            callers[probe.request.kind].add(probe.identity.label)
    if not verbs:
        return []

    kinds = sorted(verbs, key=notable)
    who = set().union(*callers.values())
    examples = "; ".join(f"{verbs_text(verbs[k])} {k}" for k in kinds[:6])
    by = "any caller" if len(who) == len(IDENTITIES) else join(sorted(who))
    more = f" and {len(kinds) - 6} more kinds" if len(kinds) > 6 else ""
    return [
        ctx.finding(
            "error",
            "no-catch-all",
            f"no catch-all rule: requests that match no rule are not logged at all, so an "
            f"intruder using them leaves no trace; unlogged here: {examples}{more} (by {by})",
            None,
            "end the rules with '- level: Metadata' (no other fields)",
            line=ctx.policy.line_of("rules"),
        )
    ]


def _request_received(ctx: LintContext) -> list[PolicyFinding]:
    """Logging RequestReceived writes every request twice."""
    policy = ctx.policy
    if "RequestReceived" in policy.omit_stages:
        return []
    logging = [r for r in policy.rules if r.rank > 0 and "RequestReceived" not in r.omit_stages]
    if not logging:
        return []
    names = ", ".join(f"rules[{r.index}]" for r in logging)
    return [
        ctx.finding(
            "warning",
            "request-received",
            f"the RequestReceived stage is not omitted ({names}): every request is written when it "
            "arrives and again when it completes, doubling the log for no information",
            None,
            "add 'omitStages: [RequestReceived]' at the top level of the policy",
            line=policy.line_of("omitStages") or policy.line_of("rules"),
        )
    ]


def _responses_on_reads(ctx: LintContext) -> list[PolicyFinding]:
    """RequestResponse on get/list/watch logs whole collections: the log's biggest cost."""
    reads: dict[int, set[str]] = defaultdict(set)
    for probe, decision in ctx.probes:
        request = probe.request
        if (
            decision.level == "RequestResponse"
            and decision.rule is not None
            and request.is_resource
            and request.verb in READ_VERBS
            and request.resource not in ("secrets", "configmaps")
        ):
            reads[decision.rule].add(request.kind)
    out = []
    for index, kinds in sorted(reads.items()):
        listed = join(sorted(kinds)[:6]) + (" …" if len(kinds) > 6 else "")
        out.append(
            ctx.finding(
                "warning",
                "response-on-reads",
                f"logs get, list and watch at RequestResponse ({listed}): every list writes the "
                "whole collection and every watch streams objects into the log, which multiplies "
                "its size for little security value",
                ctx.policy.rules[index],
                "give it verbs: [create, update, patch, delete, deletecollection] and let reads "
                "fall through to a Metadata rule",
            )
        )
    return out


def _shadowed(ctx: LintContext) -> list[PolicyFinding]:
    out = []
    rules = ctx.policy.rules
    for rule in rules[1:]:
        catchers = shadowing_rules(rule, rules[: rule.index])
        if catchers:
            names = ", ".join(f"rules[{i}]" for i in catchers)
            out.append(
                ctx.finding(
                    "warning",
                    "shadowed-rule",
                    f"is never used: every request it names is decided first by {names} (the "
                    "first matching rule wins)",
                    rule,
                    f"move it above {names.split(', ')[0]} or delete it",
                )
            )
    return out
