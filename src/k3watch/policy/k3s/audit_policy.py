"""The audit policy side of set-up and check, through ``k3watch.policy``.

Set-up and check see a policy the way ``k3watch policy lint`` and ``k3watch policy coverage``
do: this module is the one place that calls them, so the commands agree. It adds the areas
CIS 3.2.2 names ("Ensure that the audit policy covers key security concerns"), asked of the
policy with the API server's own first-match evaluation (``policy.evaluate``):

- secrets, config maps and token reviews logged, at Metadata only (never their values);
- changes to pods and deployments logged;
- ``pods/exec``, ``pods/portforward``, ``pods/proxy`` and ``services/proxy`` logged.

Each is asked for a person and for a workload's service account, the callers an attack
comes from; a policy may drop K3s's own system traffic without failing.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from k3watch.errors import K3watchError

if TYPE_CHECKING:
    from k3watch.policy.model import Policy
    from k3watch.rules.model import RuleSet


@dataclass(frozen=True, slots=True)
class LintFinding:
    """One lint finding, reduced to what the K3s reports show."""

    severity: str  # "error", "warning" or "info"
    line: int | None
    message: str
    text: str  # the finding's own one-line rendering

    def to_json(self) -> dict[str, Any]:
        return {"severity": self.severity, "line": self.line, "message": self.message}


@dataclass(slots=True)
class PolicyReview:
    """What lint, the CIS 3.2.2 areas and the rule coverage say about one policy file."""

    source: str
    parse_error: str | None = None
    findings: list[LintFinding] = field(default_factory=list)
    concerns: list[str] = field(default_factory=list)  # CIS 3.2.2 areas not covered
    blind: list[str] = field(default_factory=list)  # blind spots of built-in rules
    blind_rules: list[str] = field(default_factory=list)  # the rules those spots belong to
    accepted: list[str] = field(default_factory=list)  # gaps only secret bodies would close
    coverage_error: str | None = None

    @property
    def errors(self) -> list[LintFinding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[LintFinding]:
        return [f for f in self.findings if f.severity == "warning"]


def generate(profile: str, webhook: str | None) -> str:
    """The policy text of a profile (``minimal``, ``recommended`` or ``forensic``)."""
    from k3watch.policy.profiles import generate_policy

    return generate_policy(profile, webhook=webhook)


def lint(text: str, source: str) -> list[LintFinding]:
    """The lint findings of a policy text, errors first."""
    from k3watch.policy.lint import lint_policy_text

    order = {"error": 0, "warning": 1, "info": 2}
    findings = [
        LintFinding(f.severity, f.line, f.message, str(f)) for f in lint_policy_text(text, source)
    ]
    return sorted(findings, key=lambda f: (order.get(f.severity, 3), f.line or 0))


def review(text: str, source: str, coverage: bool = True) -> PolicyReview:
    """Parse and lint the policy; check the CIS 3.2.2 areas and (``coverage``) the rules."""
    from k3watch.policy.model import parse_policy

    result = PolicyReview(source)
    result.findings = lint(text, source)
    try:
        policy = parse_policy(text, source)
    except K3watchError as exc:
        result.parse_error = str(exc)
        return result
    result.concerns = uncovered_concerns(policy)
    if coverage:
        from k3watch.policy.coverage import coverage as blind_spots

        try:
            spots = blind_spots(policy, _builtin_rules())
        except K3watchError as exc:
            result.coverage_error = str(exc)
        else:
            result.blind = [str(s) for s in spots if not s.accepted]
            # One line per rule for people; the spots themselves go to JSON.
            titles = (f"{s.title} [{s.rule_id[:8]}]" for s in spots if not s.accepted)
            result.blind_rules = list(dict.fromkeys(titles))
            result.accepted = [str(s) for s in spots if s.accepted]
    return result


# (what CIS calls it, verbs, API group, resource, subresource, the most the policy may log)
_CONCERNS: tuple[tuple[str, tuple[str, ...], str, str, str, str | None], ...] = (
    ("access to secrets", ("get", "list", "watch"), "", "secrets", "", "Metadata"),
    ("access to config maps", ("get", "list", "watch"), "", "configmaps", "", "Metadata"),
    ("token reviews", ("create",), "authentication.k8s.io", "tokenreviews", "", "Metadata"),
    ("changes to pods", ("create", "update", "patch", "delete"), "", "pods", "", None),
    (
        "changes to deployments",
        ("create", "update", "patch", "delete"),
        "apps",
        "deployments",
        "",
        None,
    ),
    ("pods/exec", ("create", "get"), "", "pods", "exec", None),
    ("pods/portforward", ("create", "get"), "", "pods", "portforward", None),
    ("pods/proxy", ("get", "create"), "", "pods", "proxy", None),
    ("services/proxy", ("get", "create"), "", "services", "proxy", None),
)
_CALLERS = (
    ("a person", "alice@example.com", ("system:authenticated",)),
    (
        "a service account",
        "system:serviceaccount:default:app",
        ("system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"),
    ),
)


def uncovered_concerns(policy: Policy) -> list[str]:
    """The CIS 3.2.2 areas the policy leaves unlogged or logs with bodies it must not.

    One line per area: the first request of it that is wrong, and the policy rule deciding.
    """
    problems = []
    for label, verbs, group, resource, sub, ceiling in _CONCERNS:
        problem = _first_problem(policy, label, verbs, group, resource, sub, ceiling)
        if problem:
            problems.append(problem)
    return problems


def _first_problem(
    policy: Policy,
    label: str,
    verbs: tuple[str, ...],
    group: str,
    resource: str,
    sub: str,
    ceiling: str | None,
) -> str:
    from k3watch.policy.evaluate import RequestAttributes, evaluate
    from k3watch.policy.model import LEVEL_RANK

    for who, user, groups in _CALLERS:
        for verb in verbs:
            request = RequestAttributes(
                verb=verb,
                user=user,
                groups=groups,
                api_group=group,
                resource=resource,
                subresource=sub,
                namespace="default",
                name="x",
            )
            decision = evaluate(policy, request)
            where = f"policy rules[{decision.rule}]" if decision.rule is not None else "no rule"
            if decision.effective_level(request.long_running) == "None":
                return f"{label}: {verb} by {who} is not logged ({where})"
            if ceiling is not None and decision.rank > LEVEL_RANK[ceiling]:
                return (
                    f"{label}: {verb} by {who} is logged at {decision.level}, which records "
                    f"the values; use {ceiling} ({where})"
                )
    return ""


@functools.cache
def _builtin_rules() -> RuleSet:
    """The built-in rule library, loaded once per process (loading takes a second or two)."""
    from k3watch.rules.loader import load_rules

    return load_rules()
