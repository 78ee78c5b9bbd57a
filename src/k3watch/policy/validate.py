"""kube-apiserver's checks on a decoded policy: the group version, ``ValidatePolicy``
(``k8s.io/apiserver/pkg/apis/audit/validation``) and the refusal of a policy with no rules."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from k3watch.policy.findings import PolicyFinding

if TYPE_CHECKING:  # model imports this module: only the annotations need its types
    from k3watch.policy.model import Policy, PolicyRule

API_VERSION = "audit.k8s.io/v1"
LEVELS = ("None", "Metadata", "Request", "RequestResponse")
STAGES = ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")

# validation.NameIsDNSSubdomain: lower-case RFC 1123 labels joined by dots, at most 253 chars.
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def validate_policy(policy: Policy) -> list[PolicyFinding]:
    """Every reason the API server would refuse ``policy`` after decoding it."""
    report = _Report(policy.source)
    _validate(policy, report)
    return report.findings


class _Report:
    def __init__(self, source: str) -> None:
        self.source = source
        self.findings: list[PolicyFinding] = []

    def error(
        self, code: str, message: str, line: int | None, rule: int | None = None, fix: str = ""
    ) -> None:
        self.findings.append(PolicyFinding("error", code, message, self.source, line, rule, fix))


def _validate(policy: Policy, d: _Report) -> None:
    """kube-apiserver's checks after decoding: group version, ValidatePolicy, at least one rule."""
    if policy.api_version != API_VERSION or policy.kind != "Policy":
        line = policy.line_of("apiVersion") or policy.line_of("kind") or 1
        got = f"{policy.api_version or '(no apiVersion)'}, kind {policy.kind or '(none)'}"
        why = (
            " (v1beta1 and v1alpha1 were removed in Kubernetes 1.24)"
            if (policy.api_version.startswith("audit.k8s.io/"))
            else ""
        )
        d.error(
            "api-version",
            f"the API server only reads apiVersion {API_VERSION}, kind "
            f"Policy; this file has {got}{why}",
            line,
            fix=f"set 'apiVersion: {API_VERSION}' and 'kind: Policy'",
        )
    _validate_stages(policy.omit_stages, "omitStages", policy.line_of("omitStages"), None, d)
    for rule in policy.rules:
        _validate_rule(rule, d)
    if not policy.rules:
        d.error(
            "no-rules",
            'the policy has no rules: the API server refuses it ("loaded illegal '
            'policy with 0 rules")',
            policy.line_of("rules") or 1,
            fix="add at least a catch-all rule: '- level: Metadata'",
        )


def _validate_rule(rule: PolicyRule, d: _Report) -> None:
    i, where = rule.index, f"rules[{rule.index}]"
    if not rule.level:
        d.error(
            "level-required",
            f"{where}.level is required",
            rule.line,
            i,
            "add 'level: Metadata' (or None, Request, RequestResponse)",
        )
    elif rule.level not in LEVELS:
        near = [lv for lv in LEVELS if lv.lower() == rule.level.lower()]
        d.error(
            "level-invalid",
            f"{where}.level '{rule.level}' is not one of {', '.join(LEVELS)}",
            rule.line_of("level"),
            i,
            f"write '{near[0]}' (levels are case-sensitive)"
            if near
            else "use None, Metadata, Request or RequestResponse",
        )
    for n, url in enumerate(rule.non_resource_urls):
        if url == "*":
            continue
        line = rule.line_of("nonResourceURLs")
        if not url.startswith("/"):
            d.error(
                "non-resource-url",
                f"{where}.nonResourceURLs[{n}] '{url}': non-resource URL "
                "rules must begin with a '/' character",
                line,
                i,
                f"write '/{url}'",
            )
        if url and "*" in url[:-1]:
            d.error(
                "non-resource-wildcard",
                f"{where}.nonResourceURLs[{n}] '{url}': a '*' wildcard must be the final character",
                line,
                i,
                "match a prefix with one trailing '*' ('/healthz*')",
            )
    for n, group in enumerate(rule.resources):
        line = group.line or rule.line_of("resources")
        if group.group and not _is_dns_subdomain(group.group):
            version = "/" in group.group
            d.error(
                "group-version" if version else "group-invalid",
                f"{where}.resources[{n}].group '{group.group}' is not a valid API group name"
                + (
                    ": write the group without its version"
                    if version
                    else " (lower-case DNS subdomain)"
                ),
                line,
                i,
                f"write group: {group.group.split('/')[0]}"
                if version
                else "use the group as in 'kubectl api-resources' (\"\" for the core group)",
            )
        if group.resource_names and not group.resources:
            d.error(
                "resource-names",
                f"{where}.resources[{n}]: using resourceNames requires at least one resource",
                line,
                i,
                "list the resources the names belong to",
            )
    _validate_stages(rule.omit_stages, f"{where}.omitStages", rule.line_of("omitStages"), i, d)
    if rule.non_resource_urls and (rule.resources or rule.namespaces):
        d.error(
            "mixed-urls",
            f"{where}: rules cannot apply to both regular resources and "
            "non-resource URLs (nonResourceURLs with resources or namespaces)",
            rule.line_of("nonResourceURLs"),
            i,
            "split it into two rules: one with nonResourceURLs, one with resources",
        )


def _validate_stages(
    stages: tuple[str, ...], where: str, line: int | None, rule: int | None, d: _Report
) -> None:
    for n, stage in enumerate(stages):
        if stage not in STAGES:
            d.error(
                "stage-invalid",
                f"{where}[{n}] '{stage}' is not a stage ({', '.join(STAGES)})",
                line,
                rule,
                "use one of the four stage names",
            )


def _is_dns_subdomain(name: str) -> bool:
    return len(name) <= 253 and _DNS_SUBDOMAIN.fullmatch(name) is not None
