"""The report's rule health: the noisiest rules and their false-positive rate from triage,
the rules that never fired in the period, and the rules an audit policy blinds
(``k3watch.policy.coverage``, the same check as ``k3watch policy coverage``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from k3watch.errors import UsageError
from k3watch.review.model import NoisyRule, RuleHealth, RuleRef
from k3watch.rules.model import Rule, RuleSet
from k3watch.store.base import AlertTally


def rule_health(
    tallies: Sequence[AlertTally],
    ruleset: RuleSet | None,
    policy: str | None,
    top: int,
    notes: list[str],
) -> RuleHealth:
    """``notes`` receives what could not be checked, and why."""
    per_rule: dict[str, list[int]] = {}
    titles: dict[str, str] = {}
    for t in tallies:
        counts = per_rule.setdefault(t.rule_id, [0, 0, 0])
        counts[0] += t.alerts
        counts[1] += t.occurrences
        if t.status == "false_positive":
            counts[2] += t.alerts
        titles[t.rule_id] = t.title
    noisy = [
        NoisyRule(
            rule_id=rule_id,
            title=titles[rule_id],
            alerts=alerts,
            occurrences=occurrences,
            false_positives=fp,
            false_positive_rate=round(fp / alerts, 4) if alerts else 0.0,
        )
        for rule_id, (alerts, occurrences, fp) in per_rule.items()
    ]
    noisy.sort(key=lambda r: (-r.alerts, -r.occurrences, r.title))
    never_fired: list[RuleRef] | None = None
    blinded: list[RuleRef] | None = None
    if ruleset is None:
        notes.append("Rules that never fired: not listed (the report was built without rules).")
        if policy is not None:
            notes.append("Rules blinded by the audit policy: not checked (no rules loaded).")
    else:
        fired = {_rule_id(ruleset, rule_id) for rule_id in per_rule}
        never_fired = [
            _ref(rule)
            for rule in _alerting(ruleset)
            if rule.id not in fired and rule.info.name not in per_rule
        ]
        never_fired.sort(key=lambda r: (-_rank(r.severity), r.title))
        if policy is None:
            notes.append(
                "Rules blinded by the audit policy: not checked (give the policy the API server"
                " runs with: --policy FILE or a profile name)."
            )
        else:
            blinded = blinded_rules(ruleset, policy)
    return RuleHealth(
        noisy=noisy[:top],
        never_fired=never_fired,
        rules_loaded=len(_alerting(ruleset)) if ruleset is not None else 0,
        blinded=blinded,
        policy=policy,
    )


def blinded_rules(ruleset: RuleSet, policy: str) -> list[RuleRef]:
    """The rules ``policy`` (a file, or a profile name when no such file exists) logs too
    little for, with the first request each misses (gaps only a credential-bearing body would
    close are left out, as ``k3watch policy coverage`` does)."""
    from k3watch.policy.coverage import coverage
    from k3watch.policy.model import PolicyError, parse_policy
    from k3watch.policy.profiles import PROFILES, generate_policy

    path = Path(policy)
    try:
        if not path.exists() and policy in PROFILES:
            loaded = parse_policy(generate_policy(policy), policy)
        else:
            loaded = parse_policy(path.read_text(encoding="utf-8"), policy)
    except OSError as exc:
        raise UsageError(f"cannot read the audit policy {policy}: {exc.strerror}") from None
    except PolicyError as exc:
        raise UsageError(f"the audit policy {policy} would be refused: {exc}") from None
    spots: dict[str, list[str]] = {}
    severity: dict[str, str] = {}
    titles: dict[str, str] = {}
    for spot in coverage(loaded, ruleset):
        if spot.accepted:
            continue
        spots.setdefault(spot.rule_id, []).append(spot.message)
        titles[spot.rule_id] = spot.title
        rule = ruleset.get(spot.rule_id)
        severity[spot.rule_id] = rule.info.severity.label if rule is not None else ""
    out = [
        RuleRef(
            rule_id=rule_id,
            title=titles[rule_id],
            severity=severity[rule_id],
            detail=messages[0] + (f" (and {len(messages) - 1} more)" if len(messages) > 1 else ""),
        )
        for rule_id, messages in spots.items()
    ]
    out.sort(key=lambda r: (-_rank(r.severity), r.title))
    return out


def _alerting(ruleset: RuleSet) -> list[Rule]:
    """The rules that raise alerts of their own (not only feed a correlation)."""
    return [rule for rule in ruleset.all() if rule.generate]


def _rule_id(ruleset: RuleSet, rule_id: str) -> str:
    rule = ruleset.get(rule_id)
    return rule.id if rule is not None else rule_id


def _ref(rule: Rule) -> RuleRef:
    return RuleRef(rule_id=rule.id, title=rule.info.title, severity=rule.info.severity.label)


_ORDER = ("informational", "low", "medium", "high", "critical")


def _rank(severity: str) -> int:
    return _ORDER.index(severity) if severity in _ORDER else -1
