"""Rules as data (``rules list --format json``) and as a table for people."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text

from k3watch.alerting.sinks.console import SEVERITY_STYLES
from k3watch.rules.ir import fields_used
from k3watch.rules.model import EventRule, Rule, RuleSet


def rule_as_dict(rule: Rule) -> dict[str, Any]:
    """Everything a user or a tool may want to know about one rule."""
    info = rule.info
    out: dict[str, Any] = {
        "id": info.id,
        "name": info.name,
        "title": info.title,
        "severity": info.severity.label,
        "type": info.kind,
        "tags": list(info.tags),
        "attack": info.attack_ids,
        "tactics": info.tactics,
        "description": info.description,
        "falsepositives": list(info.falsepositives),
        "response": info.response,
        "status": info.status,
        "builtin": info.builtin,
        "location": str(info.location),
        "alerts": rule.generate,
        "tests": len(rule.tests),
        # The audit policy level the rule needs; none for rules over component logs.
        "audit": {
            "level": None if info.reads_component_logs else info.audit_level,
            "resources": list(info.audit_resources),
        },
    }
    if isinstance(rule, EventRule):
        out["logsource"] = info.logsource
        out["fields"] = sorted(set(fields_used(rule.ir)))
        # The values each indexed field must have (null: the field must be absent).
        out["index"] = {
            k: sorted(v, key=lambda x: (x is None, x or "")) for k, v in rule.requires.items()
        }
        out["group_by"] = list(rule.group_by)
        if rule.first_seen is not None:
            out["first_seen"] = {
                "fields": list(rule.first_seen.fields),
                "learning_seconds": rule.first_seen.learning,
                "forget_seconds": rule.first_seen.forget,
            }
    else:
        out["correlation"] = {
            "type": rule.type,
            "rules": [r.id for r in rule.inputs],
            "group_by": list(rule.group_by),
            "timespan_seconds": rule.timespan,
            "condition": {
                rule.op: rule.threshold,
                **({"field": rule.value_field} if rule.value_field else {}),
            },
        }
    return out


def rules_as_dicts(ruleset: RuleSet) -> list[dict[str, Any]]:
    return [rule_as_dict(rule) for rule in ruleset.all()]


def rule_table(ruleset: RuleSet) -> Table:
    table = Table(title=f"{len(ruleset)} rules", expand=True)
    table.add_column("Severity", no_wrap=True)
    table.add_column("Type", no_wrap=True)
    table.add_column("Title", ratio=3)
    table.add_column("ATT&CK", ratio=1)
    table.add_column("Id", no_wrap=True)
    for rule in sorted(ruleset.all(), key=lambda r: (-r.info.severity, r.info.title)):
        info = rule.info
        kind = info.kind if rule.generate else f"{info.kind} (input)"
        table.add_row(
            Text(info.severity.label, style=SEVERITY_STYLES[info.severity]),
            kind,
            info.title,
            ", ".join(info.attack_ids),
            info.id[:8] if len(info.id) == 36 else info.id,
        )
    return table


def rules_markdown(ruleset: RuleSet) -> str:
    """The rule list of docs/rules.md: one row per rule, most severe first."""
    lines = [
        "| Severity | Rule | Type | ATT&CK | Audit level | What to do |",
        "|---|---|---|---|---|---|",
    ]
    for rule in sorted(ruleset.all(), key=lambda r: (-r.info.severity, r.info.title)):
        info = rule.info
        kind = info.kind if rule.generate else f"{info.kind} (correlation input)"
        todo = " ".join(info.response.split()) or "—"
        level = "—" if info.reads_component_logs else info.audit_level
        cells = [info.severity.label, f"{info.title} `{info.id[:8]}`", kind,
                 ", ".join(info.attack_ids) or "—", level, todo]  # fmt: skip
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"
