"""An ``audit.k8s.io/v1`` Policy, read exactly as kube-apiserver reads ``--audit-policy-file``.

kube-apiserver decodes the file strictly, falls back to lenient decoding when the only problems
are unknown or duplicate keys (it logs a warning and ignores them), insists on the
``audit.k8s.io/v1`` group version, validates the policy (``k8s.io/apiserver``'s
``ValidatePolicy``) and refuses a policy with no rules. A refused policy keeps K3s from
starting, so every refusal is an error here, with the line to fix; what the API server only
warns about is a warning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from k3watch.errors import K3watchError, Location
from k3watch.policy.findings import PolicyFinding
from k3watch.policy.validate import API_VERSION, LEVELS, validate_policy
from k3watch.policy.yamltree import (
    YamlSyntaxError,
    YList,
    YMap,
    YNode,
    YScalar,
    load_first_document,
)

LEVEL_RANK = {name: rank for rank, name in enumerate(LEVELS)}

# Keys of each object, exactly as the API types spell them (decoding is case-sensitive).
POLICY_KEYS = ("apiVersion", "kind", "metadata", "rules", "omitStages", "omitManagedFields")
RULE_KEYS = (
    "level",
    "users",
    "userGroups",
    "verbs",
    "resources",
    "namespaces",
    "nonResourceURLs",
    "omitStages",
    "omitManagedFields",
)
GROUP_KEYS = ("group", "resources", "resourceNames")


@dataclass(frozen=True, slots=True)
class GroupResources:
    """Resources of one API group (``""`` is the core group); empty ``resources``: all of it."""

    group: str = ""
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()
    line: int | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class PolicyRule:
    """One rule. An empty list means "any"; ``omit_managed_fields`` ``None`` follows the policy.

    ``index`` is the rule's position (0-based, as the API server counts), ``line`` where its
    list item starts, ``field_lines`` where each of its keys is.
    """

    level: str
    users: tuple[str, ...] = ()
    user_groups: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ()
    resources: tuple[GroupResources, ...] = ()
    namespaces: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()
    omit_stages: tuple[str, ...] = ()
    omit_managed_fields: bool | None = None
    index: int = 0
    line: int | None = field(default=None, compare=False)
    field_lines: tuple[tuple[str, int], ...] = field(default=(), compare=False)

    def line_of(self, key: str) -> int | None:
        """The line of ``key`` in this rule, or the rule's own line."""
        return dict(self.field_lines).get(key, self.line)

    @property
    def rank(self) -> int:
        return LEVEL_RANK.get(self.level, 0)


@dataclass(frozen=True, slots=True)
class Policy:
    """A decoded policy. ``lines`` holds the line of each top-level key (``rules``…)."""

    rules: tuple[PolicyRule, ...]
    omit_stages: tuple[str, ...] = ()
    omit_managed_fields: bool = False
    api_version: str = API_VERSION
    kind: str = "Policy"
    source: str = "<policy>"
    lines: tuple[tuple[str, int], ...] = ()

    def line_of(self, key: str) -> int | None:
        return dict(self.lines).get(key)


class PolicyError(K3watchError):
    """A policy the API server would refuse; ``findings`` lists every reason (errors first)."""

    def __init__(self, findings: list[PolicyFinding]) -> None:
        errors = [f for f in findings if f.severity == "error"]
        first = errors[0]
        more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
        super().__init__(first.message + more, Location(first.source, first.line), first.fix)
        self.findings = findings


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    """The policy in ``text``; raises :class:`PolicyError` when kube-apiserver would refuse it."""
    policy, findings = decode_policy(text, source)
    if policy is None or any(f.severity == "error" for f in findings):
        raise PolicyError(findings)
    return policy


def decode_policy(text: str, source: str = "<policy>") -> tuple[Policy | None, list[PolicyFinding]]:
    """Decode and validate ``text`` without raising: the policy and every finding.

    The policy is returned even when the API server would refuse it for a validation error (so
    lint can still explain the rest); it is ``None`` only when the text cannot be decoded.
    """
    decoder = _Decoder(source)
    try:
        root, extra_documents = load_first_document(text)
    except YamlSyntaxError as exc:
        decoder.error("yaml-syntax", f"not valid YAML: {exc}", exc.line, fix="fix the YAML syntax")
        return None, decoder.findings
    if extra_documents:
        decoder.warn(
            "extra-document",
            "only the first YAML document is read; the others are ignored",
            None,
            fix="keep one policy per file",
        )
    if not isinstance(root, YMap):
        line = root.line if root is not None else None
        decoder.error(
            "not-a-policy",
            "the file is not a mapping (an audit Policy object)",
            line,
            fix=f"start with 'apiVersion: {API_VERSION}' and 'kind: Policy'",
        )
        return None, decoder.findings
    policy = decoder.policy(root)
    if policy is None:
        return None, decoder.findings
    decoder.findings.extend(validate_policy(policy))
    return policy, decoder.findings


class _Decoder:
    """JSON-style decoding into the API types: wrong types are errors, as Go's decoder has them."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.findings: list[PolicyFinding] = []
        self.broken = False  # a type error: Go's decoder would have stopped

    def error(
        self, code: str, message: str, line: int | None, rule: int | None = None, fix: str = ""
    ) -> None:
        self.findings.append(PolicyFinding("error", code, message, self.source, line, rule, fix))

    def warn(
        self, code: str, message: str, line: int | None, rule: int | None = None, fix: str = ""
    ) -> None:
        self.findings.append(PolicyFinding("warning", code, message, self.source, line, rule, fix))

    def keys(self, node: YMap, allowed: tuple[str, ...], where: str, rule: int | None) -> None:
        for key, line in node.duplicates:
            self.warn(
                "duplicate-key",
                f"{where}: key '{key}' appears twice; the API server keeps the last value",
                line,
                rule,
                "remove one of them",
            )
        for key in node.items:
            if key in allowed:
                continue
            near = [k for k in allowed if k.lower() == key.lower()]
            hint = (
                f"write '{near[0]}' (keys are case-sensitive)"
                if near
                else (f"remove it; {where} knows {', '.join(allowed)}")
            )
            self.warn(
                "unknown-key",
                f"{where}: unknown key '{key}': the API server ignores it "
                "(a warning in its log) and the policy behaves as if it were absent",
                node.key_lines[key],
                rule,
                hint,
            )

    def type_error(self, what: str, expected: str, node: YNode, rule: int | None) -> None:
        self.broken = True
        got = _type_name(node)
        self.error(
            "type",
            f"{what} must be {expected}, not {got}: the API server cannot decode the policy",
            node.line,
            rule,
            f"write {what} as {expected}",
        )

    def string(self, node: YNode | None, what: str, rule: int | None) -> str:
        if node is None:
            return ""
        if isinstance(node, YScalar) and (node.value is None or isinstance(node.value, str)):
            return node.value or ""
        self.type_error(what, "a string", node, rule)
        return ""

    def strings(self, node: YNode | None, what: str, rule: int | None) -> tuple[str, ...]:
        if node is None or (isinstance(node, YScalar) and node.value is None):
            return ()
        if not isinstance(node, YList):
            self.type_error(what, "a list of strings", node, rule)
            return ()
        return tuple(self.string(item, f"{what} item", rule) for item in node.items)

    def boolean(self, node: YNode | None, what: str, rule: int | None) -> bool | None:
        if node is None or (isinstance(node, YScalar) and node.value is None):
            return None
        if isinstance(node, YScalar) and isinstance(node.value, bool):
            return node.value
        self.type_error(what, "true or false", node, rule)
        return None

    def policy(self, root: YMap) -> Policy | None:
        self.keys(root, POLICY_KEYS, "Policy", None)
        items = root.items
        api_version = self.string(items.get("apiVersion"), "apiVersion", None)
        kind = self.string(items.get("kind"), "kind", None)
        metadata = items.get("metadata")
        if metadata is not None and not isinstance(metadata, YMap) and not _is_null(metadata):
            self.type_error("metadata", "a mapping", metadata, None)
        rules_node = items.get("rules")
        rules: list[PolicyRule] = []
        if isinstance(rules_node, YList):
            for index, item in enumerate(rules_node.items):
                rule = self.rule(item, index)
                if rule is not None:
                    rules.append(rule)
        elif rules_node is not None and not _is_null(rules_node):
            self.type_error("rules", "a list of rules", rules_node, None)
        omit = self.strings(items.get("omitStages"), "omitStages", None)
        managed = self.boolean(items.get("omitManagedFields"), "omitManagedFields", None)
        if self.broken:
            return None
        return Policy(
            tuple(rules),
            omit,
            bool(managed),
            api_version,
            kind,
            self.source,
            tuple(root.key_lines.items()),
        )

    def rule(self, node: YNode, index: int) -> PolicyRule | None:
        where = f"rules[{index}]"
        if _is_null(node):
            node = YMap({}, {}, node.line)  # a bare "-" decodes as an empty rule (no level)
        if not isinstance(node, YMap):
            self.type_error(where, "a mapping", node, index)
            return None
        self.keys(node, RULE_KEYS, where, index)
        get = node.items.get
        groups: list[GroupResources] = []
        resources_node = get("resources")
        if isinstance(resources_node, YList):
            for item in resources_node.items:
                group = self.group_resources(item, f"{where}.resources", index)
                if group is not None:
                    groups.append(group)
        elif resources_node is not None and not _is_null(resources_node):
            self.type_error(
                f"{where}.resources", "a list of {group, resources}", resources_node, index
            )
        return PolicyRule(
            level=self.string(get("level"), f"{where}.level", index),
            users=self.strings(get("users"), f"{where}.users", index),
            user_groups=self.strings(get("userGroups"), f"{where}.userGroups", index),
            verbs=self.strings(get("verbs"), f"{where}.verbs", index),
            resources=tuple(groups),
            namespaces=self.strings(get("namespaces"), f"{where}.namespaces", index),
            non_resource_urls=self.strings(
                get("nonResourceURLs"), f"{where}.nonResourceURLs", index
            ),
            omit_stages=self.strings(get("omitStages"), f"{where}.omitStages", index),
            omit_managed_fields=self.boolean(
                get("omitManagedFields"), f"{where}.omitManagedFields", index
            ),
            index=index,
            line=node.line,
            field_lines=tuple(node.key_lines.items()),
        )

    def group_resources(self, node: YNode, where: str, index: int) -> GroupResources | None:
        if _is_null(node):
            return GroupResources(line=node.line)
        if not isinstance(node, YMap):
            self.type_error(f"{where} item", "a mapping {group, resources}", node, index)
            return None
        self.keys(node, GROUP_KEYS, f"{where} item", index)
        get = node.items.get
        return GroupResources(
            group=self.string(get("group"), f"{where}.group", index),
            resources=self.strings(get("resources"), f"{where}.resources", index),
            resource_names=self.strings(get("resourceNames"), f"{where}.resourceNames", index),
            line=node.line,
        )


def _is_null(node: YNode) -> bool:
    return isinstance(node, YScalar) and node.value is None


def _type_name(node: YNode) -> str:
    if isinstance(node, YMap):
        return "a mapping"
    if isinstance(node, YList):
        return "a list"
    value: Any = node.value
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    return f"{value!r}"
