"""Loaded, compiled rules: their metadata, predicates, correlation wiring and embedded tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from k3watch.alert import Severity
from k3watch.errors import Location, RuleError
from k3watch.rules.compile import Predicate
from k3watch.rules.fields import Getter
from k3watch.rules.ir import Node, Requirement

AUDIT_LEVELS = ("Metadata", "Request", "RequestResponse")

# Correlation types the engine evaluates (Sigma correlation vocabulary).
CORRELATION_TYPES = ("event_count", "value_count", "temporal", "temporal_ordered")
# Conditions that can be decided as soon as an event arrives; the others need the window to end.
RISING_OPS = ("gt", "gte")
# The logsource product of rules over the nodes' component logs (k3watch.log/v1 records).
COMPONENT_LOG_PRODUCT = "k3s"


@dataclass(frozen=True, slots=True)
class RuleInfo:
    """What a responder reads about a rule; the same for single-event and correlation rules."""

    id: str
    title: str
    severity: Severity
    tags: tuple[str, ...]
    description: str
    falsepositives: tuple[str, ...]
    references: tuple[str, ...]
    response: str  # what to do when it fires
    status: str
    author: str
    kind: str  # "event", "first_seen" or a correlation type
    location: Location
    name: str | None = None
    logsource: str = ""
    builtin: bool = False
    # The audit policy level the rule needs (Metadata, Request, RequestResponse) and, when it
    # only looks at some resources, which ("pods", "pods/exec"); empty means any resource.
    audit_level: str = "Metadata"
    audit_resources: tuple[str, ...] = ()

    @property
    def reads_component_logs(self) -> bool:
        """Whether the rule reads the nodes' component-log records (logsource product ``k3s``)
        rather than API-server audit events; such a rule needs no audit policy level."""
        return self.logsource.split("/", 1)[0] == COMPONENT_LOG_PRODUCT

    @property
    def attack_ids(self) -> list[str]:
        return [t.split(".", 1)[1].upper() for t in self.tags if _is_technique(t)]

    @property
    def tactics(self) -> list[str]:
        return [
            t.split(".", 1)[1]
            for t in self.tags
            if t.startswith("attack.") and not _is_technique(t)
        ]


def _is_technique(tag: str) -> bool:
    name = tag.split(".", 1)[1] if tag.startswith("attack.") else ""
    return name[:1] == "t" and name[1:2].isdigit()


@dataclass(frozen=True, slots=True)
class RuleTest:
    """An embedded test: a sequence of events and whether the rule must fire on it."""

    must_fire: bool
    events: tuple[dict[str, Any], ...]
    location: Location
    label: str


@dataclass(frozen=True, slots=True)
class FirstSeenSpec:
    """The k3watch first-seen extension: alert when a value tuple appears for the first time.

    ``learning``: seconds after monitoring starts during which values only build the baseline.
    ``forget``: values not seen for this many seconds are dropped from the baseline.
    """

    fields: tuple[str, ...]
    learning: float
    forget: float | None


@dataclass(slots=True, eq=False)
class EventRule:
    """A single-event Sigma rule, compiled."""

    info: RuleInfo
    predicate: Predicate  # the whole detection (the engine mostly runs smaller residuals)
    requires: dict[str, Requirement]
    ir: Node
    group_by: tuple[str, ...]
    group_getters: tuple[Getter, ...]
    first_seen: FirstSeenSpec | None = None
    first_seen_getters: tuple[Getter, ...] = ()
    summary: str | None = None
    tests: tuple[RuleTest, ...] = ()
    generate: bool = True  # False when only correlations consume its matches
    consumers: list[tuple[CorrelationRule, int]] = field(default_factory=list)
    index: int = 0  # position in the rule set, for per-request de-duplication
    # Caches of the index (rules.index): compiled tests on key fields, by IR node, and compiled
    # residual detections, by their text. Shared by every engine evaluating this rule.
    key_tests: dict[int, Predicate | None] = field(default_factory=dict, repr=False)
    residuals: dict[str, Predicate] = field(default_factory=dict, repr=False)
    sigma: Any = field(default=None, repr=False)  # the pySigma rule (for lint and export)

    @property
    def id(self) -> str:
        return self.info.id


@dataclass(slots=True, eq=False)
class CorrelationRule:
    """A Sigma correlation rule over the matches of other rules (or correlations)."""

    info: RuleInfo
    type: str
    timespan: float
    group_by: tuple[str, ...]
    op: str
    threshold: float
    value_field: str | None
    inputs: list[EventRule | CorrelationRule]
    # Per input: getters for the group-by fields (aliases resolved) and the value_count field.
    input_group_getters: list[tuple[Getter, ...]]
    input_value_getters: list[Getter | None]
    summary: str | None = None
    tests: tuple[RuleTest, ...] = ()
    generate: bool = True  # False when only another correlation consumes it
    generate_inputs: bool = False  # Sigma `generate`: referenced rules alert on their own too
    consumers: list[tuple[CorrelationRule, int]] = field(default_factory=list)
    sigma: Any = field(default=None, repr=False)

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def rising(self) -> bool:
        return self.op in RISING_OPS

    def condition_text(self) -> str:
        symbol = {"gt": ">", "gte": "≥", "lt": "<", "lte": "≤", "eq": "=", "neq": "≠"}[self.op]
        return f"{symbol} {self.threshold:g}"

    def satisfied(self, count: float) -> bool:
        t = self.threshold
        return {
            "gt": count > t,
            "gte": count >= t,
            "lt": count < t,
            "lte": count <= t,
            "eq": count == t,
            "neq": count != t,
        }[self.op]


Rule = EventRule | CorrelationRule


@dataclass(frozen=True, slots=True)
class RuleOrigin:
    """The arguments of ``rules.loader.load_rules`` that made a rule set (picklable)."""

    paths: tuple[str, ...]
    builtin: bool
    pipelines: tuple[str, ...]
    placeholders: tuple[tuple[str, tuple[str, ...]], ...]
    documents: tuple[tuple[dict[str, Any], str], ...]
    disabled: tuple[str, ...] = ()

    def load(self) -> RuleSet:
        """The same rules again (from the files as they are now)."""
        from k3watch.rules.loader import load_rules  # the loader imports this module

        return load_rules(
            self.paths,
            builtin=self.builtin,
            pipelines=self.pipelines,
            placeholders={name: list(values) for name, values in self.placeholders},
            documents=self.documents,
            disabled=self.disabled,
        )


@dataclass(slots=True)
class RuleSet:
    """Every rule that loaded, in dependency order, plus the errors of those that did not."""

    event_rules: list[EventRule] = field(default_factory=list)
    correlations: list[CorrelationRule] = field(default_factory=list)
    errors: list[RuleError] = field(default_factory=list)
    warnings: list[RuleError] = field(default_factory=list)
    filters: int = 0
    disabled: list[RuleInfo] = field(default_factory=list)
    """Rules the configuration turned off (``rules.disable``): not evaluated, or evaluated only
    as the input of a correlation that still runs, and never alerting on their own."""
    origin: RuleOrigin | None = None
    """How the set was loaded, so that another process can load the same rules."""

    def all(self) -> list[Rule]:
        return [*self.event_rules, *self.correlations]

    def get(self, rule_id: str) -> Rule | None:
        for rule in self.all():
            if rule_id in (rule.id, rule.info.name):
                return rule
        return None

    def __len__(self) -> int:
        return len(self.event_rules) + len(self.correlations)
