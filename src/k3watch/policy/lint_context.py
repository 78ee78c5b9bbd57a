"""What every lint check shares: the policy, its decisions for the probe set, message helpers."""

from __future__ import annotations

from dataclasses import dataclass

from k3watch.policy.evaluate import Decision, evaluate
from k3watch.policy.findings import PolicyFinding
from k3watch.policy.model import Policy, PolicyRule
from k3watch.policy.probes import Probe, all_probes
from k3watch.policy.resources import RESOURCE_VERBS

# Resources shown first when naming unlogged requests: the ones an intruder goes for.
NOTABLE = (
    "pods",
    "pods/exec",
    "secrets",
    "clusterrolebindings",
    "clusterroles",
    "nodes",
    "namespaces",
    "deployments",
)


def notable(kind: str) -> tuple[bool, int, str]:
    """Sort key: notable resources first, other resources, then URL paths."""
    rank = NOTABLE.index(kind) if kind in NOTABLE else len(NOTABLE)
    return (kind.startswith("/"), rank, kind)


@dataclass(slots=True)
class LintContext:
    """The policy being linted and its decisions for the shared probe set (computed once)."""

    policy: Policy
    probes: list[tuple[Probe, Decision]]

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.probes = [(p, evaluate(policy, p.request)) for p in all_probes()]

    def finding(
        self,
        severity: str,
        code: str,
        message: str,
        rule: PolicyRule | None = None,
        fix: str = "",
        line: int | None = None,
    ) -> PolicyFinding:
        if line is None and rule is not None:
            line = rule.line
        index = rule.index if rule is not None else None
        return PolicyFinding(severity, code, message, self.policy.source, line, index, fix)

    def rule(self, index: int | None) -> PolicyRule | None:
        return self.policy.rules[index] if index is not None else None

    def who(self, decision: Decision) -> str:
        if decision.rule is None:
            return "no rule (not logged)"
        return f"rules[{decision.rule}] at {decision.level}"


def verbs_text(verbs: set[str]) -> str:
    return "any request on" if len(verbs) >= len(RESOURCE_VERBS) else "/".join(ordered(verbs))


def ordered(verbs: set[str]) -> list[str]:
    order = {v: i for i, v in enumerate(RESOURCE_VERBS)}
    return sorted(verbs, key=lambda v: (order.get(v, 99), v))


def join(items: list[str]) -> str:
    return ", ".join(items)
