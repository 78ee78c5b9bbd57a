"""Policies written as YAML a person can review: one comment per rule saying why it is there.

PyYAML cannot write comments, and the policies are small and regular, so this writes the YAML
itself: block style, short lists in flow style, strings quoted unless plainly safe. The
output is read back by ``policy.model`` in the tests (and by ``policy lint``), which proves it
means what it says.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*")
# Plain scalars YAML 1.1 would read as something other than a string.
_NOT_TEXT = re.compile(r"(?i)(y|yes|n|no|true|false|on|off|null|~|[-+]?[0-9][0-9_.:e+-]*)")
_WIDTH = 100


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """A rule to write: why it exists (comment lines), then its fields.

    ``resources`` is a tuple of (group, resources, comment) entries; the comment is written
    after the entry's resources.
    """

    why: tuple[str, ...]
    level: str
    users: tuple[str, ...] = ()
    user_groups: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ()
    resources: tuple[tuple[str, tuple[str, ...], str], ...] = ()
    namespaces: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()
    omit_stages: tuple[str, ...] = ()


def render_policy(
    header: tuple[str, ...],
    rules: tuple[RuleSpec, ...],
    omit_stages: tuple[str, ...],
    omit_managed_fields: bool,
    stage_why: str,
    managed_why: str,
) -> str:
    """The policy as YAML text, comments included."""
    out = [text for line in header for text in _comment(line, "")]
    out += ["apiVersion: audit.k8s.io/v1", "kind: Policy"]
    out += _comment(stage_why, "")
    out.append(f"omitStages: {_flow(omit_stages)}")
    out += _comment(managed_why, "")
    out.append(f"omitManagedFields: {'true' if omit_managed_fields else 'false'}")
    out.append("rules:")
    for n, rule in enumerate(rules):
        if n:
            out.append("")
        out += _rule(rule)
    return "\n".join(out) + "\n"


def _rule(rule: RuleSpec) -> list[str]:
    out: list[str] = []
    for line in rule.why:
        out += _comment(line, "  ")
    out.append(f"  - level: {rule.level}")
    for key, values in (
        ("users", rule.users),
        ("userGroups", rule.user_groups),
        ("verbs", rule.verbs),
        ("namespaces", rule.namespaces),
        ("nonResourceURLs", rule.non_resource_urls),
    ):
        if values:
            out += _list_field(key, values, "    ")
    if rule.resources:
        out.append("    resources:")
        for group, names, comment in rule.resources:
            if comment:
                out += _comment(comment, "      ")
            out.append(f"      - group: {_scalar(group)}")
            out += _list_field("resources", names, "        ")
    if rule.omit_stages:
        out += _list_field("omitStages", rule.omit_stages, "    ")
    return out


def _list_field(key: str, values: tuple[str, ...], indent: str) -> list[str]:
    flow = f"{indent}{key}: {_flow(values)}"
    if len(flow) <= _WIDTH:
        return [flow]
    return [f"{indent}{key}:"] + [f"{indent}  - {_scalar(v)}" for v in values]


def _flow(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(_scalar(v) for v in values) + "]"


def _scalar(value: str) -> str:
    if _PLAIN.fullmatch(value) and not _NOT_TEXT.fullmatch(value):
        return value
    return json.dumps(value)  # a JSON string is a valid double-quoted YAML scalar


def _comment(text: str, indent: str) -> list[str]:
    """``text`` as comment lines wrapped to the width."""
    if not text:
        return []
    words = text.split()
    lines: list[str] = []
    current = ""
    width = _WIDTH - len(indent) - 2
    for word in words:
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    lines.append(current)
    return [f"{indent}# {line}" for line in lines]
