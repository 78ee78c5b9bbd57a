"""``k3watch rules lint``: problems a rule author wants to hear about before a rule ships."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from k3watch.errors import Location
from k3watch.rules.ir import fields_used, requirements
from k3watch.rules.model import CorrelationRule, EventRule, RuleSet

# Fields of an audit.k8s.io/v1 (and v1beta1) Event. Paths under an open prefix are free-form
# (object bodies, annotations, extra user info).
AUDIT_FIELDS = frozenset(
    {
        "kind", "apiVersion", "level", "auditID", "stage", "requestURI", "verb",
        "user.username", "user.uid", "user.groups",
        "impersonatedUser.username", "impersonatedUser.uid", "impersonatedUser.groups",
        "sourceIPs", "userAgent",
        "objectRef.resource", "objectRef.namespace", "objectRef.name", "objectRef.uid",
        "objectRef.apiGroup", "objectRef.apiVersion", "objectRef.resourceVersion",
        "objectRef.subresource",
        "responseStatus.status", "responseStatus.message", "responseStatus.reason",
        "responseStatus.code",
        "requestReceivedTimestamp", "stageTimestamp", "timestamp",
        "k3watch.exec.command", "k3watch.exec.argv", "k3watch.exec.container",
        "k3watch.object.name",
    }
)  # fmt: skip
OPEN_PREFIXES = (
    "requestObject", "responseObject", "annotations", "user.extra", "impersonatedUser.extra",
    "responseStatus.details", "responseStatus.metadata", "metadata",
    "k3watch.pod.spec", "k3watch.pod.containers", "k3watch.csr",
)  # fmt: skip
# Fields that hold one value per event: contradictory requirements on them can never match.
SCALAR_FIELDS = frozenset(
    f for f in AUDIT_FIELDS if f not in ("user.groups", "impersonatedUser.groups", "sourceIPs")
)


@dataclass(frozen=True, slots=True)
class Finding:
    severity: str  # error, warning, info
    message: str
    location: Location | None = None
    rule_id: str | None = None
    hint: str = ""

    def __str__(self) -> str:
        text = f"{self.location}: {self.message}" if self.location else self.message
        return f"{text} ({self.hint})" if self.hint else text

    def to_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "message": self.message,
            "location": str(self.location) if self.location else None,
            "rule_id": self.rule_id,
            "hint": self.hint,
        }


def is_known_field(name: str) -> bool:
    if name in AUDIT_FIELDS:
        return True
    return any(name == p or name.startswith(p + ".") for p in OPEN_PREFIXES)


def lint(ruleset: RuleSet) -> list[Finding]:
    findings = [Finding("error", e.message, e.location, hint=e.hint) for e in ruleset.errors]
    findings += [Finding("warning", w.message, w.location, hint=w.hint) for w in ruleset.warnings]
    for rule in ruleset.event_rules:
        findings.extend(_lint_event_rule(rule))
    for correlation in ruleset.correlations:
        findings.extend(_lint_correlation(correlation))
    return findings


def _lint_event_rule(rule: EventRule) -> list[Finding]:
    info = rule.info
    out: list[Finding] = []

    def add(severity: str, message: str, hint: str = "") -> None:
        out.append(Finding(severity, f"{info.title}: {message}", info.location, info.id, hint))

    audit = info.logsource in ("", "kubernetes/audit") or info.logsource.startswith(
        "kubernetes/audit"
    )
    if audit:
        for name in sorted(set(fields_used(rule.ir))):
            if not is_known_field(name):
                add(
                    "warning",
                    f"field '{name}' is not a field of audit.k8s.io/v1 events",
                    _suggest(name),
                )
    for name, values in requirements(rule.ir, SCALAR_FIELDS).items():
        if not values:
            add("error", f"can never match: contradictory values required for '{name}'")
    for name in _unused_detections(rule):
        add("warning", f"detection '{name}' is not used by the condition")
    out.extend(_lint_metadata(rule))
    return out


def _lint_correlation(rule: CorrelationRule) -> list[Finding]:
    out = _lint_metadata(rule)
    if rule.timespan > 7 * 86400:
        out.append(
            Finding(
                "warning",
                f"{rule.info.title}: timespan over 7 days keeps a lot of state in memory",
                rule.info.location,
                rule.id,
            )
        )
    return out


def _lint_metadata(rule: EventRule | CorrelationRule) -> list[Finding]:
    info = rule.info
    out: list[Finding] = []

    def add(severity: str, message: str) -> None:
        out.append(Finding(severity, f"{info.title}: {message}", info.location, info.id))

    if len(info.id) != 36:
        add("warning", "no UUID 'id': alerts cannot be tracked across rule edits")
    if not rule.tests:
        add("warning", "no embedded tests (k3watch.tests.match / nomatch)")
    else:
        if not any(t.must_fire for t in rule.tests):
            add("warning", "no test event that must fire")
        if not any(not t.must_fire for t in rule.tests):
            add("warning", "no near-miss test event that must not fire")
    if rule.generate and not info.attack_ids:
        add("info", "no ATT&CK technique tag (attack.tNNNN)")
    if rule.generate and info.builtin and not info.response:
        add("warning", "no 'k3watch.response' (what the responder should do)")
    return out


_TOKEN = re.compile(r"[A-Za-z0-9_*-]+")
_KEYWORDS = {"and", "or", "not", "of", "1", "all", "any", "them"}


def _unused_detections(rule: EventRule) -> list[str]:
    sigma = rule.sigma
    if sigma is None:
        return []
    names = [n for n in sigma.detection.detections if not n.startswith("_filt_")]
    tokens: set[str] = set()
    uses_them = False
    for condition in sigma.detection.condition:
        for token in _TOKEN.findall(condition):
            if token == "them":
                uses_them = True
            elif token not in _KEYWORDS:
                tokens.add(token)
    if uses_them:
        return []
    patterns = [re.compile(t.replace("*", ".*")) for t in tokens if "*" in t]
    return [n for n in names if n not in tokens and not any(p.fullmatch(n) for p in patterns)]


def _suggest(name: str) -> str:
    leaf = name.rsplit(".", 1)[-1].lower()
    candidates = [f for f in sorted(AUDIT_FIELDS) if f.rsplit(".", 1)[-1].lower() == leaf]
    if candidates:
        return f"did you mean {' or '.join(candidates)}?"
    return "check the spelling, or map it with a processing pipeline"
