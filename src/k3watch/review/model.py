"""The review report as data: what ``report.build_report`` returns, what ``--format json``
writes (``REPORT_VERSION`` says which layout), and what every other format is rendered from.

Times are epoch seconds (``float``); lists that are capped say how many there are in all
(``total``). Field names are part of the JSON contract: add fields, do not rename them.
"""

from __future__ import annotations

import msgspec

REPORT_VERSION = 1


class _Struct(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class Period(_Struct, frozen=True):
    start: float
    end: float
    days: float
    generated: float


class Count(_Struct, frozen=True):
    """A value and how many events (or alerts) it has."""

    name: str
    count: int


class DayCount(_Struct, frozen=True):
    """A UTC day (its midnight, epoch seconds) and per series a count."""

    day: float
    counts: dict[str, int]


class EventsOverview(_Struct, frozen=True):
    total: int
    by_node: list[Count]
    per_day: list[DayCount]
    """Per day, events per node."""


class AlertItem(_Struct, frozen=True):
    id: int
    rule_id: str
    title: str
    severity: str
    status: str
    first_seen: float
    last_seen: float
    occurrences: int
    user: str | None
    namespace: str | None
    assignee: str | None
    summary: str


class RuleAlerts(_Struct, frozen=True):
    rule_id: str
    title: str
    severity: str
    alerts: int
    occurrences: int
    by_status: dict[str, int]


class AlertSummary(_Struct, frozen=True):
    """Alerts seen in the period (last seen in it, or still running into it), by severity
    and current triage status; the unresolved critical and high ones listed."""

    total: int
    occurrences: int
    by_severity: dict[str, int]
    by_status: dict[str, int]
    by_severity_status: dict[str, dict[str, int]]
    rules: list[RuleAlerts]
    unresolved: list[AlertItem]
    """Critical and high alerts with status open or acknowledged, newest first."""
    unresolved_total: int


class SeenItem(_Struct, frozen=True):
    value: str
    first_seen: float
    last_seen: float
    events: int
    """Events with the value ever stored (retention does not lower it)."""


class NewValues(_Struct, frozen=True):
    """Values first seen ever in the period (not merely active in it)."""

    identities: list[SeenItem]
    identities_total: int
    service_accounts: list[SeenItem]
    service_accounts_total: int
    source_ips: list[SeenItem]
    source_ips_total: int


class EventItem(_Struct, frozen=True):
    """An audit event in a list: who did what to which object, when and from where."""

    time: float
    node: str
    user: str
    verb: str
    resource: str
    subresource: str
    namespace: str
    name: str
    source_ip: str
    code: int | None
    decision: str
    detail: str
    """The exec command, or the request URI."""


class EventList(_Struct, frozen=True, kw_only=True):
    """Requests of one kind in the period: counted in all, the newest listed."""

    total: int
    by_user: list[Count]
    items: list[EventItem]
    note: str = ""


class DeniedRequests(_Struct, frozen=True):
    total: int
    per_day: list[DayCount]
    """Per day: ``forbid`` (authorization decision), ``401`` and ``403`` (status codes of
    requests the authorizer did not forbid)."""
    top_users: list[Count]


class Gap(_Struct, frozen=True):
    cluster: str
    node: str
    source: str
    start: float
    end: float
    minutes: float
    ongoing: bool


class OriginGaps(_Struct, frozen=True):
    """The gaps of one origin in the period."""

    cluster: str
    node: str
    source: str
    gaps: int
    minutes: float
    longest: float
    """Minutes of the longest."""


class BackendErrors(_Struct, frozen=True):
    """``Error in audit plugin '<plugin>' affecting N audit events`` lines in the K3s logs."""

    messages: int
    affected_events: int
    by_plugin: dict[str, int]
    """Audit events lost per plugin (webhook, log, buffered…)."""
    by_node: list[Count]
    per_day: list[DayCount]
    samples: list[str]


class IngestProblem(_Struct, frozen=True):
    cluster: str
    node: str
    source: str
    reason: str
    count: int


class PipelineHealth(_Struct, frozen=True):
    min_gap: float
    gaps: list[Gap]
    """The longest gaps first, at most the report's list limit."""
    gaps_total: int
    gaps_by_origin: list[OriginGaps]
    backend: BackendErrors
    ingest_errors: list[IngestProblem]
    ingest_errors_total: int


class NoisyRule(_Struct, frozen=True):
    rule_id: str
    title: str
    alerts: int
    occurrences: int
    false_positives: int
    false_positive_rate: float


class RuleRef(_Struct, frozen=True, kw_only=True):
    rule_id: str
    title: str
    severity: str
    detail: str = ""


class RuleHealth(_Struct, frozen=True):
    noisy: list[NoisyRule]
    never_fired: list[RuleRef] | None
    """None when the report was built without the rule set."""
    rules_loaded: int
    blinded: list[RuleRef] | None
    """None when no audit policy was given."""
    policy: str | None


class Report(_Struct, frozen=True, kw_only=True):
    """The periodic security review (``docs/reports.md`` explains every section)."""

    version: int = REPORT_VERSION
    title: str
    period: Period
    events: EventsOverview
    alerts: AlertSummary
    new_values: NewValues
    rbac_changes: EventList
    exec_sessions: EventList
    secrets_access: EventList
    denied: DeniedRequests
    pipeline: PipelineHealth
    rules: RuleHealth
    notes: list[str]


def to_json(report: Report) -> bytes:
    return msgspec.json.format(msgspec.json.encode(report), indent=2) + b"\n"


def from_json(data: bytes) -> Report:
    return msgspec.json.decode(data, type=Report)
