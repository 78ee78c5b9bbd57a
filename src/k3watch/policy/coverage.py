"""``k3watch policy coverage``: the detection rules a policy blinds, and what each one misses.

For each detection rule and each probe request (``policy.probes``: every resource request and
endpoint, by a person, the admin, a workload, a kubelet, an anonymous and an unauthenticated
client), the rule's detection is partially evaluated on what the probe fixes (verb, resource,
subresource, group, namespace, user, groups, and the URL of a non-resource request), exactly
as the engine's index does per event key. What is left tells whether the rule looks at that
request at all and which fields it then reads: the request body (Request), the response
(RequestResponse) or only metadata. The policy's decision for the same request gives the level
the rule would see. A rule is blind where that level is lower, or the request is not logged.

A correlation is blind where one of its inputs is. Heartbeat traffic (``probes.is_routine``)
is not counted against a rule that names no resource. A gap that could only be closed by
logging credential-bearing bodies (secrets, config maps, tokens) is reported as accepted.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from k3watch.policy.evaluate import Decision, RequestAttributes, evaluate
from k3watch.policy.model import LEVEL_RANK, Policy
from k3watch.policy.probes import IDENTITIES, Probe, is_routine, resource_requests
from k3watch.policy.resources import (
    KINDS,
    NON_RESOURCE_PATHS,
    SENSITIVE_RESOURCES,
    ResourceKind,
    kind_of,
)
from k3watch.rules.compile import Predicate, build_predicate
from k3watch.rules.ir import (
    Exists,
    FieldRef,
    Leaf,
    Node,
    Residual,
    audit_needs,
    is_key_only,
    partial,
)
from k3watch.rules.model import CorrelationRule, EventRule, RuleSet

# What a probe fixes, first for the request kind, then for the caller and namespace.
_KIND_FIELDS = frozenset(
    {"verb", "objectRef.resource", "objectRef.subresource", "objectRef.apiGroup"}
)
_PROBE_FIELDS = _KIND_FIELDS | {"user.username", "user.groups", "objectRef.namespace"}
# A non-resource request has no objectRef at all, which decides every test on it.
_PATH_FIELDS = frozenset(
    {
        "verb",
        "requestURI",
        "user.username",
        "user.groups",
        "objectRef",
        "objectRef.resource",
        "objectRef.subresource",
        "objectRef.apiGroup",
        "objectRef.namespace",
        "objectRef.name",
    }
)


@dataclass(frozen=True, slots=True)
class BlindSpot:
    """Requests a detection rule looks at that the policy logs below what the rule reads.

    ``resource`` is ``pods``, ``pods/exec`` or a URL path; ``needed`` the level the rule reads
    at, ``given`` what the policy logs (``None``: not logged), decided by policy rule
    ``policy_rule`` (``None``: no rule matched). ``via`` names the blinded input of a
    correlation. ``accepted``: only a credential-bearing body would close the gap.
    """

    rule_id: str
    title: str
    kind: str
    resource: str
    api_group: str
    verbs: tuple[str, ...]
    needed: str
    given: str
    policy_rule: int | None
    identities: tuple[str, ...]
    via: str | None = None
    accepted: bool = False

    @property
    def severity(self) -> str:
        return "info" if self.accepted else "error"

    @property
    def message(self) -> str:
        group = f" ({self.api_group})" if self.api_group else ""
        by = (
            f"policy rules[{self.policy_rule}]"
            if self.policy_rule is not None
            else "no policy rule"
        )
        logged = "not logged" if self.given == "None" else f"logged at {self.given}"
        who = (
            "any caller" if len(self.identities) == len(IDENTITIES) else ", ".join(self.identities)
        )
        text = (
            f"{'/'.join(self.verbs)} {self.resource}{group} by {who}: "
            f"needs {self.needed}, {logged} ({by})"
        )
        if self.via:
            text = f"input '{self.via}': {text}"
        if self.accepted:
            text += "; accepted: the policy must not log credential-bearing bodies"
        return text

    def __str__(self) -> str:
        return f"{self.severity}: {self.title} [{self.rule_id[:8]}]: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "rule": self.rule_id,
            "title": self.title,
            "type": self.kind,
            "resource": self.resource,
            "api_group": self.api_group,
            "verbs": list(self.verbs),
            "needed": self.needed,
            "given": self.given,
            "policy_rule": self.policy_rule,
            "identities": list(self.identities),
            "via": self.via,
            "accepted": self.accepted,
            "message": self.message,
        }


def coverage(policy: Policy, ruleset: RuleSet) -> list[BlindSpot]:
    """Every blind spot ``policy`` gives the rules of ``ruleset`` (empty: it blinds none)."""
    checker = _Checker(policy, ruleset)
    by_rule: dict[str, list[BlindSpot]] = {}
    for rule in ruleset.event_rules:
        if _reads_audit_log(rule):
            by_rule[rule.id] = checker.blind_spots(rule)
    for corr in ruleset.correlations:  # dependency order: inputs come first
        spots = []
        for source in corr.inputs:
            for spot in by_rule.get(source.id, ()):
                spots.append(
                    BlindSpot(
                        corr.id,
                        corr.info.title,
                        corr.type,
                        spot.resource,
                        spot.api_group,
                        spot.verbs,
                        spot.needed,
                        spot.given,
                        spot.policy_rule,
                        spot.identities,
                        spot.via or source.info.title,
                        spot.accepted,
                    )
                )
        by_rule[corr.id] = spots
    return [spot for rule in ruleset.all() for spot in by_rule.get(rule.id, ())]


def blinded_rules(spots: list[BlindSpot], accepted: bool = False) -> list[str]:
    """Titles of the rules with blind spots (accepted ones too when ``accepted``)."""
    seen: dict[str, None] = {}
    for spot in spots:
        if accepted or not spot.accepted:
            seen.setdefault(spot.title)
    return list(seen)


def _reads_audit_log(rule: EventRule | CorrelationRule) -> bool:
    source = rule.info.logsource
    return not source or "audit" in source


class _Checker:
    """The probes and the policy's decisions, shared by every rule of one coverage run."""

    def __init__(self, policy: Policy, ruleset: RuleSet) -> None:
        self.policy = policy
        self.decisions: dict[RequestAttributes, Decision] = {}
        self.tests: dict[int, Predicate | None] = {}
        # Whether a test reads only what a probe fixes, by (test, field set); IR nodes live as
        # long as the rule set, so their ids are stable keys for one run.
        self.key_only: dict[tuple[int, int], bool] = {}
        self.probes: dict[tuple[str, ...], list[tuple[Probe, dict[str, Any]]]] = {}
        self.kinds = list(KINDS) + _unknown_kinds(ruleset, policy)

    def decision(self, request: RequestAttributes) -> Decision:
        found = self.decisions.get(request)
        if found is None:
            found = self.decisions[request] = evaluate(self.policy, request)
        return found

    def residual(self, node: Node, event: dict[str, Any], fields: frozenset[str]) -> Residual:
        def decide(leaf: Node) -> bool | None:
            if not isinstance(leaf, Leaf | Exists | FieldRef):
                return None
            key = id(leaf)
            known = self.key_only.get((key, id(fields)))
            if known is None:
                known = self.key_only[key, id(fields)] = is_key_only(leaf, fields)
            if not known:
                return None
            if key not in self.tests:
                self.tests[key] = build_predicate(leaf)
            test = self.tests[key]
            return None if test is None else test(event)

        return partial(node, decide)

    def blind_spots(self, rule: EventRule) -> list[BlindSpot]:
        found: dict[tuple[str, str, str, str, int | None], tuple[set[str], set[str]]] = defaultdict(
            lambda: (set(), set())
        )
        named = {r for r in rule.requires.get("objectRef.resource", ()) if r}
        declared = rule.info.audit_level
        for kind_event, probes, fields in self._candidates(rule):
            first = self.residual(rule.ir, kind_event, fields[0])
            if first is False:
                continue
            for probe, event in probes:
                request = probe.request
                if is_routine(request) and request.resource not in named:
                    continue
                rest = self.residual(first, event, fields[1]) if first is not True else True
                if rest is False:
                    continue
                needed = "Metadata" if rest is True else audit_needs(rest, {})[0]
                # Never above what the rule declares (k3watch.audit_level may lower it).
                needed = min(needed, declared, key=LEVEL_RANK.__getitem__)
                decision = self.decision(request)
                given = decision.effective_level(request.long_running)
                if LEVEL_RANK[given] >= LEVEL_RANK[needed]:
                    continue
                key = (request.api_group, request.kind, needed, given, decision.rule)
                verbs, who = found[key]
                verbs.add(request.verb)
                who.add(probe.identity.label)
        spots = []
        for (group, resource, needed, given, index), (verbs, who) in found.items():
            accepted = resource in SENSITIVE_RESOURCES and LEVEL_RANK[needed] >= 2
            spots.append(
                BlindSpot(
                    rule.id,
                    rule.info.title,
                    rule.info.kind,
                    resource,
                    group,
                    tuple(sorted(verbs)),
                    needed,
                    given,
                    index,
                    tuple(sorted(who)),
                    None,
                    accepted,
                )
            )
        return sorted(spots, key=lambda s: (s.accepted, s.resource, s.api_group, s.given))

    def _probes(
        self, key: tuple[str, ...], factory: Callable[..., Callable[[], Iterator[Probe]]]
    ) -> list[tuple[Probe, dict[str, Any]]]:
        """The probes of one request kind with their events, built once per run."""
        found = self.probes.get(key)
        if found is None:
            found = self.probes[key] = [(p, p.event()) for p in factory(*key)()]
        return found

    def _candidates(self, rule: EventRule) -> Iterator[_Candidate]:
        """(event for the kind, its probes, the fields each stage decides), pre-filtered by
        the values the rule's index requires."""
        req = rule.requires
        resources, subs, verbs = (
            req.get("objectRef.resource"),
            req.get("objectRef.subresource"),
            req.get("verb"),
        )
        for kind in self.kinds:
            if resources is not None and kind.name not in resources:
                continue
            for sub, verb in kind.requests():
                if subs is not None and (sub or None) not in subs:
                    continue
                # A rule naming resources but no subresource means the objects themselves,
                # not their status or scale writes (its declared audit_resources say so too).
                if subs is None and resources is not None and sub:
                    continue
                if verbs is not None and verb not in verbs:
                    continue
                for group in kind.groups:
                    yield (
                        _kind_event(kind.name, sub, verb, group),
                        self._probes((kind.name, sub, verb, group), _probe_factory),
                        (_KIND_FIELDS, _PROBE_FIELDS),
                    )
        if resources is not None and None not in resources:
            return  # the rule only looks at resource requests
        for path in NON_RESOURCE_PATHS:
            if verbs is not None and "get" not in verbs:
                continue
            yield (
                {"verb": "get", "requestURI": path},
                self._probes((path,), _path_factory),
                (_PATH_FIELDS, _PATH_FIELDS),
            )


_Candidate = tuple[
    dict[str, Any], list[tuple[Probe, dict[str, Any]]], tuple[frozenset[str], frozenset[str]]
]


def _kind_event(resource: str, sub: str, verb: str, group: str) -> dict[str, Any]:
    ref = {"resource": resource}
    if sub:
        ref["subresource"] = sub
    if group:
        ref["apiGroup"] = group
    return {"verb": verb, "objectRef": ref}


def _probe_factory(resource: str, sub: str, verb: str, group: str) -> Callable[[], Iterator[Probe]]:
    def probes() -> Iterator[Probe]:
        for identity in IDENTITIES:
            for request in resource_requests(identity, resource, sub, verb, group):
                yield Probe(request, identity)

    return probes


def _path_factory(path: str) -> Callable[[], Iterator[Probe]]:
    def probes() -> Iterator[Probe]:
        for identity in IDENTITIES:
            request = RequestAttributes(
                verb="get", user=identity.user, groups=identity.groups, path=path
            )
            yield Probe(request, identity)

    return probes


def _unknown_kinds(ruleset: RuleSet, policy: Policy) -> list[ResourceKind]:
    """Resources rules name that the table does not know, in the groups the policy gives them
    (or the core group): so a rule on a custom resource is still checked."""
    named: set[str] = set()
    for rule in ruleset.event_rules:
        named |= {r for r in rule.requires.get("objectRef.resource", ()) if r}
    out = []
    for name in sorted(named):
        if kind_of(name) is not None:
            continue
        groups = sorted(
            {
                gr.group
                for r in policy.rules
                for gr in r.resources
                if any(s.split("/")[0] == name for s in gr.resources)
            }
        )
        out.append(ResourceKind(name, tuple(groups) or ("",)))
    return out
