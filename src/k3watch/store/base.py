"""The ``Store`` protocol: what the server needs from a place that keeps events and alerts.

The embedded default is SQLite (:mod:`k3watch.store.sqlite`); a distributed backend implements
the same protocol. Nothing here is specific to one database: filters name event fields, times
are epoch seconds, pages are continued with an opaque cursor.

```python
store.write(Batch(batch_id, cluster="prod", node="srv-1", source="audit", events=[...]),
            alerts=[...])                               # one transaction, idempotent
page = store.search(EventQuery(start=t0, filters={"user": ("alice",)}, text="exec"))
store.search(EventQuery(..., cursor=page.cursor))       # the next page
```
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

# Fields every backend indexes for search and aggregation, and how they are read from an event.
# Audit events fill them from their own fields; component logs (journald, kernel, ...) carry the
# ones that apply. ``text`` is the full-text field: the request URI or the log message.
SEARCH_FIELDS = (
    "cluster",
    "node",
    "source",
    "user",
    "verb",
    "resource",
    "namespace",
    "name",
    "source_ip",
    "decision",
    "code",
    "stage",
)
AlertStatus = Literal["open", "acknowledged", "resolved", "false_positive"]
ALERT_STATUSES: tuple[AlertStatus, ...] = ("open", "acknowledged", "resolved", "false_positive")
ALERT_FILTERS = (
    "status",
    "severity",
    "rule_id",
    "cluster",
    "namespace",
    "user",
    "assignee",
    "silenced_by",
)
DECISION_ANNOTATION = "authorization.k8s.io/decision"


@dataclass(frozen=True, slots=True)
class IncomingEvent:
    """One event on its way into the store, already redacted."""

    key: str
    """Stable identity: ``auditID/stage`` for audit events, ``source@offset`` or a journal
    cursor for logs. An event whose key is already stored is a duplicate and is skipped."""
    time: float
    """Event time, epoch seconds (the receive time when the event has none)."""
    raw: dict[str, Any]
    body: bytes | None = None
    """The event's JSON encoding when the caller has it (saves encoding it again); it must
    encode ``raw`` exactly (after redaction)."""
    truncated: bool = False


class Encoded(Protocol):
    """Events in a store's own row form, made by its ``Encoder`` away from the writer."""

    @property
    def keys(self) -> Sequence[str]: ...

    def __len__(self) -> int: ...


class Encoder(Protocol):
    """The per-event half of a store's write (field extraction, compression, key hashes):
    picklable and stateless, so that it runs in worker processes while the writer inserts."""

    def encode(self, events: Sequence[IncomingEvent]) -> Encoded: ...


@dataclass(frozen=True, slots=True)
class Batch:
    """Events from one sender and source, written together and chained by hash."""

    batch_id: str
    cluster: str
    node: str
    source: str
    events: Sequence[IncomingEvent] | Encoded
    """The events, or their rows from this store's ``Encoder``."""
    received: float = 0.0


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What ``write`` did with a batch."""

    stored: int
    duplicates: int
    new: tuple[bool, ...]
    """Per event of the batch, in order: True when stored now, False when already there."""
    batch_seq: int | None
    """Position of the batch in the hash chain (None when nothing was stored)."""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as it comes back from the store."""

    key: str
    time: float
    cluster: str
    node: str
    source: str
    raw: dict[str, Any]
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class EventQuery:
    """A search: time range, field filters (any value of a field, all fields), free text."""

    start: float | None = None
    end: float | None = None
    filters: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """``SEARCH_FIELDS`` name → accepted values (``code`` values are digits)."""
    text: str | None = None
    """Words that must all occur in the request URI or message (case-insensitive)."""
    limit: int = 100
    cursor: str | None = None


@dataclass(frozen=True, slots=True)
class EventPage:
    events: list[StoredEvent]
    cursor: str | None
    """Pass back in ``EventQuery.cursor`` for the next (older) page; None at the end."""


@dataclass(frozen=True, slots=True)
class AggregateQuery:
    """Counts of events over time buckets and/or by the values of one field."""

    start: float | None = None
    end: float | None = None
    bucket: float | None = None
    """Bucket width in seconds; None for no time buckets."""
    by: str | None = None
    """A ``SEARCH_FIELDS`` name (or ``text``: the request URI or message) to group by; None
    for totals."""
    filters: Mapping[str, Sequence[str]] = field(default_factory=dict)
    limit: int = 50
    """At most this many values of ``by`` (the largest counts)."""
    text: str | None = None
    """Words that must all occur in the request URI or message, as in ``EventQuery``."""


@dataclass(frozen=True, slots=True)
class Bucket:
    start: float | None
    value: str | None
    count: int


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """An alert from the engine, to be stored or merged into the stored alert of the same
    fingerprint (rule + group)."""

    fingerprint: str
    rule_id: str
    title: str
    severity: str
    tags: tuple[str, ...]
    cluster: str
    group: dict[str, Any]
    summary: str
    first_seen: float
    last_seen: float
    count: int
    event_keys: tuple[str, ...]
    namespace: str | None = None
    user: str | None = None
    silenced_by: str | None = None
    """Id of the silence that matched when the alert arrived; it is stored, not delivered."""


@dataclass(frozen=True, slots=True)
class AlertChange:
    """One change to an alert by a person (or by the server), kept in its history."""

    actor: str
    action: Literal["ack", "resolve", "false_positive", "reopen", "assign", "note", "occurred"]
    note: str = ""
    assignee: str | None = None
    time: float = 0.0


@dataclass(frozen=True, slots=True)
class StoredAlert:
    id: int
    fingerprint: str
    rule_id: str
    title: str
    severity: str
    status: AlertStatus
    tags: tuple[str, ...]
    cluster: str
    namespace: str | None
    user: str | None
    group: dict[str, Any]
    summary: str
    first_seen: float
    last_seen: float
    count: int
    assignee: str | None
    silenced_by: str | None
    created: float
    updated: float
    event_keys: tuple[str, ...] = ()
    history: tuple[AlertChange, ...] = ()


@dataclass(frozen=True, slots=True)
class AlertQuery:
    filters: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """``ALERT_FILTERS`` name → accepted values."""
    start: float | None = None
    """Alerts last seen at or after this time."""
    end: float | None = None
    limit: int = 100
    cursor: str | None = None


@dataclass(frozen=True, slots=True)
class AlertPage:
    alerts: list[StoredAlert]
    cursor: str | None


@dataclass(frozen=True, slots=True)
class Matcher:
    """One label matcher of a silence, as in Alertmanager (``=``, ``!=``, ``=~``, ``!~``)."""

    name: str
    value: str
    regex: bool = False
    equal: bool = True


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    starts: float
    ends: float
    created_by: str
    comment: str
    created: float = 0.0


@dataclass(frozen=True, slots=True)
class RuleHits:
    rule_id: str
    alerts: int
    occurrences: int
    last_seen: float | None
    false_positives: int


@dataclass(frozen=True, slots=True)
class AlertTally:
    """Alerts of one rule, severity and (current) triage status, and their occurrences."""

    rule_id: str
    title: str
    severity: str
    status: AlertStatus
    alerts: int
    occurrences: int


@dataclass(frozen=True, slots=True)
class SeenValue:
    """A value of a ``SEEN_FIELDS`` field: when it was first and last seen, in how many events.
    The first time stays when retention deletes the value's events."""

    field: str
    value: str
    first: float
    last: float
    events: int


@dataclass(frozen=True, slots=True)
class ActivityGap:
    """A time without events from an origin (cluster, node, source) that sends otherwise.
    Bounds are whole minutes; ``ongoing`` when nothing came from the origin after ``start``
    up to the end of the range asked for."""

    cluster: str
    node: str
    source: str
    start: float
    end: float
    ongoing: bool = False


@dataclass(frozen=True, slots=True)
class IngestErrors:
    """Input rejected from an origin in one hour (``hour``: its start, epoch seconds), by
    reason (the parser's reason, or ``http_<status>`` for a refused body)."""

    hour: float
    cluster: str
    node: str
    source: str
    reason: str
    count: int


SEEN_FIELDS = ("user", "source_ip")


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """What to delete: events older than an age (per source, ``"*"`` for the others), and the
    oldest events when the store is larger than ``max_bytes``."""

    max_age: Mapping[str, float] = field(default_factory=dict)
    max_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class RetentionResult:
    events_deleted: int
    batches_deleted: int
    bytes_after: int


@dataclass(frozen=True, slots=True)
class ChainProblem:
    seq: int
    batch_id: str
    problem: Literal["altered", "removed", "reordered", "inserted"]
    detail: str


@dataclass(frozen=True, slots=True)
class ChainReport:
    batches: int
    events: int
    head: str
    """Hash of the last batch: record it elsewhere to detect a rewrite of the whole chain."""
    problem: ChainProblem | None
    pruned: int = 0
    """Batches removed by retention (recorded in the chain, so not a problem)."""


@dataclass(frozen=True, slots=True)
class StoreStats:
    events: int
    alerts: int
    bytes: int
    oldest: float | None
    newest: float | None
    batches: int


class Store(Protocol):
    """Where the server keeps events and alerts. ``write`` is called from one thread; every
    other method may be called from any thread."""

    def unseen(self, events: Sequence[str] | Encoded) -> list[bool]:
        """Per key (or event of an encoded batch): True when no event with this key is stored
        yet."""
        ...

    def encoder(self) -> Encoder:
        """An encoder for batches written next (it may be used in another process)."""
        ...

    def write(self, batch: Batch, alerts: Sequence[AlertRecord] = ()) -> WriteResult:
        """Store the batch's new events and merge the alerts, in one transaction."""
        ...

    def search(self, query: EventQuery) -> EventPage: ...

    def get_event(self, key: str) -> StoredEvent | None: ...

    def aggregate(self, query: AggregateQuery) -> list[Bucket]: ...

    def alerts(self, query: AlertQuery) -> AlertPage: ...

    def get_alert(self, alert_id: int) -> StoredAlert | None:
        """The alert with its event keys and full history."""
        ...

    def change_alert(self, alert_id: int, change: AlertChange) -> StoredAlert: ...

    def add_alerts(self, alerts: Sequence[AlertRecord]) -> None:
        """Store or merge alerts no batch of events raised (the server's own, such as an
        overdue review), in one transaction."""
        ...

    def alert_counts(self, by: str, start: float | None = None) -> dict[str, int]:
        """Number of alerts per value of ``status``, ``severity``, ``rule_id`` or ``cluster``."""
        ...

    def rule_hits(self, start: float | None = None) -> list[RuleHits]: ...

    def alert_tallies(self, start: float, end: float) -> list[AlertTally]:
        """Alerts seen in [start, end) (last seen at or after ``start``, first seen before
        ``end``), counted per rule, severity and status."""
        ...

    def first_seen(
        self, field: str, start: float, end: float, limit: int = 1000
    ) -> tuple[list[SeenValue], int]:
        """Values of ``field`` (one of ``SEEN_FIELDS``) whose first event ever is in
        [start, end), oldest first, at most ``limit``; and how many there are in all."""
        ...

    def activity_gaps(
        self, start: float, end: float, min_gap: float, lookback: float = 0.0
    ) -> list[ActivityGap]:
        """Times of at least ``min_gap`` seconds in [start, end) without events from an origin
        that has events in [start - lookback, end) (a gap before its first event in that
        window is not one)."""
        ...

    def add_ingest_errors(self, errors: Sequence[IngestErrors]) -> None:
        """Count rejected input (added to what the same hour, origin and reason have)."""
        ...

    def ingest_errors(self, start: float, end: float) -> list[IngestErrors]:
        """Rejected input counted in the hours that overlap [start, end)."""
        ...

    def add_silence(self, silence: Silence) -> Silence: ...

    def silences(self, *, active_at: float | None = None) -> list[Silence]: ...

    def expire_silence(self, silence_id: str, at: float) -> Silence: ...

    def apply_retention(self, policy: RetentionPolicy, now: float) -> RetentionResult: ...

    def verify(self) -> ChainReport: ...

    def stats(self) -> StoreStats: ...

    def close(self) -> None: ...


def event_key(raw: dict[str, Any], fallback: str) -> str:
    """The stable identity of an event: ``auditID/stage`` for audit events, else ``fallback``."""
    audit_id = raw.get("auditID")
    if isinstance(audit_id, str) and audit_id:
        stage = raw.get("stage")
        return f"{audit_id}/{stage}" if isinstance(stage, str) else audit_id
    return fallback


def field_values(raw: dict[str, Any]) -> dict[str, str | int | None]:
    """The values of the event-level ``SEARCH_FIELDS`` (without cluster, node and source, which
    belong to the batch) and ``text``, read from an audit event or a normalized log event."""
    user = raw.get("user")
    ref = raw.get("objectRef")
    status = raw.get("responseStatus")
    annotations = raw.get("annotations")
    ips = raw.get("sourceIPs")
    code = status.get("code") if type(status) is dict else None
    text = raw.get("requestURI")
    if text is None:
        text = raw.get("message")
    return {
        "user": _str(user.get("username")) if type(user) is dict else None,
        "verb": _str(raw.get("verb")),
        "resource": _str(ref.get("resource")) if type(ref) is dict else None,
        "namespace": _str(ref.get("namespace")) if type(ref) is dict else None,
        "name": _str(ref.get("name")) if type(ref) is dict else None,
        "source_ip": _str(ips[0]) if type(ips) is list and ips else None,
        "decision": (
            _str(annotations.get(DECISION_ANNOTATION)) if type(annotations) is dict else None
        ),
        "code": code if type(code) is int else None,
        "stage": _str(raw.get("stage")),
        "text": _str(text),
    }


def _str(value: object) -> str | None:
    return value if type(value) is str else None
