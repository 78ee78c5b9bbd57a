"""Per-destination routes: which alerts a destination receives, decided by pure functions.

A route is checked in a fixed order and the first condition that fails names the reason
(``severity``, ``excluded_rule``, ``excluded_tag``, ``cluster``, ``excluded_cluster``,
``not_selected``, ``update``): the dispatcher counts skipped alerts by that reason, so "why did
this alert not reach Slack?" has an answer in the metrics.

Matching rules:

- rule ids compare case-insensitively, in full or by a prefix of at least 8 characters (the
  short ids shown by ``k3watch rules list``);
- a tag pattern matches the tag itself and the tags below it (``attack.t1552`` matches
  ``attack.t1552.007``), and may use ``*`` wildcards (``attack.t15*``);
- ``rules`` and ``tags`` together select: when either is set, an alert must be one of the
  rules *or* carry one of the tags;
- exclusions always win over selections.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass

from k3watch.alert import Severity
from k3watch.alerting.config import RouteConfig

MIN_RULE_PREFIX = 8


@dataclass(frozen=True, slots=True)
class Route:
    """A validated, normalised route (lower-case patterns, parsed severity)."""

    min_severity: Severity = Severity.INFORMATIONAL
    rules: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    exclude_rules: tuple[str, ...] = ()
    exclude_tags: tuple[str, ...] = ()
    clusters: tuple[str, ...] = ()
    exclude_clusters: tuple[str, ...] = ()
    updates: bool = True

    @classmethod
    def from_config(cls, config: RouteConfig) -> Route:
        """The route a destination's ``route:`` block describes."""
        return cls(
            min_severity=Severity.parse(config.min_severity),
            rules=_lower(config.rules),
            tags=_lower(config.tags),
            exclude_rules=_lower(config.exclude_rules),
            exclude_tags=_lower(config.exclude_tags),
            clusters=tuple(config.clusters),
            exclude_clusters=tuple(config.exclude_clusters),
            updates=config.updates,
        )


@dataclass(frozen=True, slots=True)
class Candidate:
    """What a route looks at: the alert's rule, severity and tags, where it came from."""

    rule_id: str
    severity: Severity
    tags: tuple[str, ...]
    cluster: str = ""
    update: bool = False


def rejection(route: Route, candidate: Candidate) -> str | None:
    """Why ``route`` does not take ``candidate`` (a short reason), or None when it does."""
    if candidate.severity < route.min_severity:
        return "severity"
    if not route.updates and candidate.update:
        return "update"
    rule_id = candidate.rule_id.lower()
    tags = [t.lower() for t in candidate.tags]
    if any(rule_matches(p, rule_id) for p in route.exclude_rules):
        return "excluded_rule"
    if any(tag_matches(p, t) for p in route.exclude_tags for t in tags):
        return "excluded_tag"
    if route.exclude_clusters and candidate.cluster in route.exclude_clusters:
        return "excluded_cluster"
    if route.clusters and candidate.cluster not in route.clusters:
        return "cluster"
    if route.rules or route.tags:
        by_rule = any(rule_matches(p, rule_id) for p in route.rules)
        if not by_rule and not any(tag_matches(p, t) for p in route.tags for t in tags):
            return "not_selected"
    return None


def accepts(route: Route, candidate: Candidate) -> bool:
    """True when the destination behind ``route`` should receive ``candidate``."""
    return rejection(route, candidate) is None


def rule_matches(pattern: str, rule_id: str) -> bool:
    """A (lower-case) rule pattern against a (lower-case) rule id: the id or a long prefix."""
    if pattern == rule_id:
        return True
    return len(pattern) >= MIN_RULE_PREFIX and rule_id.startswith(pattern)


def tag_matches(pattern: str, tag: str) -> bool:
    """A (lower-case) tag pattern against a (lower-case) tag, including the tags below it."""
    if "*" in pattern or "?" in pattern or "[" in pattern:
        return fnmatch.fnmatchcase(tag, pattern) or fnmatch.fnmatchcase(tag, pattern + ".*")
    return tag == pattern or tag.startswith(pattern + ".")


def _lower(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(v.strip().lower() for v in values)
