"""Build the periodic security review report from a store.

```python
report = build_report(store, ReviewOptions(start=end - 7 * 86400, end=end), ruleset=rules)
render(report, "html")                     # k3watch.review.render
```

Nothing here scans the period's events: counts come from the store's roll-ups (events per hour
and kind, values first seen, activity per minute and origin, rejected input) and from its
field indexes (``aggregate`` over postings), and lists from newest-first searches capped at
``ReviewOptions.list_limit``. ``docs/reports.md`` says what each section means.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from k3watch.event import exec_argv
from k3watch.review.model import (
    AlertItem,
    AlertSummary,
    BackendErrors,
    Count,
    DayCount,
    DeniedRequests,
    EventItem,
    EventList,
    EventsOverview,
    Gap,
    IngestProblem,
    NewValues,
    OriginGaps,
    Period,
    PipelineHealth,
    Report,
    RuleAlerts,
    SeenItem,
)
from k3watch.review.rule_health import rule_health
from k3watch.rules.model import RuleSet
from k3watch.store.base import (
    ALERT_STATUSES,
    DECISION_ANNOTATION,
    AggregateQuery,
    AlertQuery,
    Bucket,
    EventQuery,
    Store,
    StoredEvent,
)

DAY = 86400.0
SERVICE_ACCOUNT = "system:serviceaccount:"
RBAC_RESOURCES = ("roles", "rolebindings", "clusterroles", "clusterrolebindings")
RBAC_VERBS = ("create", "update", "patch", "delete", "deletecollection")
SESSION_SUBRESOURCES = ("exec", "attach", "portforward")
DONE = ("ResponseComplete", "Panic")
"""Stages that end a request: one event per request (``RequestReceived`` would be a second)."""
SESSION_STAGES = ("ResponseStarted", "ResponseComplete")
BACKEND_ERROR_TEXT = "Error in audit plugin"
_BACKEND_ERROR = re.compile(r"Error in audit plugin '([^']*)' affecting (\d+) audit events")
_SESSION_URI = re.compile(r"/pods/([^/?]+)/(exec|attach|portforward)(?:[/?]|$)")
_POD = re.compile(r"/pods/([^/?]+)")
_MAX_VALUES = 100_000
"""Most distinct values asked of one aggregation (users, URIs, messages)."""


@dataclass(frozen=True, slots=True)
class ReviewOptions:
    """What the report covers and how much it lists."""

    start: float
    end: float
    list_limit: int = 100
    """Most items listed per section (counts are always complete)."""
    top: int = 10
    """Values in the "top" tables and bar charts."""
    min_gap: float = 600.0
    """Shortest time without events from an origin reported as a gap, seconds."""
    gap_lookback: float | None = None
    """How far before the period an origin must have sent to count (default: the period)."""
    policy: str | None = None
    """An audit policy file or profile name: list the rules it blinds."""
    title: str = "Security review"

    def __post_init__(self) -> None:
        if not self.end > self.start:
            raise ValueError("the report's end must be after its start")
        if self.min_gap < 60:
            raise ValueError("the shortest gap is 60 seconds (activity is kept per minute)")


def build_report(
    store: Store,
    options: ReviewOptions,
    *,
    ruleset: RuleSet | None = None,
    now: float | None = None,
) -> Report:
    """The report for ``options`` from ``store``; without ``ruleset`` the rules that never
    fired are not listed."""
    now = time.time() if now is None else now
    notes: list[str] = []
    builder = _Builder(store, options, now, notes)
    rules = rule_health(
        store.alert_tallies(options.start, options.end),
        ruleset,
        options.policy,
        options.top,
        notes,
    )
    return Report(
        title=options.title,
        period=Period(
            start=options.start,
            end=options.end,
            days=round((options.end - options.start) / DAY, 3),
            generated=now,
        ),
        events=builder.events(),
        alerts=builder.alerts(),
        new_values=builder.new_values(),
        rbac_changes=builder.rbac(),
        exec_sessions=builder.sessions(),
        secrets_access=builder.secrets(),
        denied=builder.denied(),
        pipeline=builder.pipeline(),
        rules=rules,
        notes=notes,
    )


def pipeline_health(
    store: Store, options: ReviewOptions, now: float | None = None
) -> PipelineHealth:
    """The report's audit pipeline section alone (the web UI's pipeline page)."""
    now = time.time() if now is None else now
    return _Builder(store, options, now, []).pipeline()


class _Builder:
    def __init__(self, store: Store, options: ReviewOptions, now: float, notes: list[str]) -> None:
        self.store = store
        self.o = options
        self.now = now
        self.notes = notes

    # --- store access ---

    def aggregate(
        self,
        filters: Mapping[str, Sequence[str]] | None = None,
        *,
        by: str | None = None,
        bucket: float | None = None,
        text: str | None = None,
        limit: int = _MAX_VALUES,
    ) -> list[Bucket]:
        return self.store.aggregate(
            AggregateQuery(
                start=self.o.start,
                end=self.o.end,
                bucket=bucket,
                by=by,
                filters=filters or {},
                limit=limit,
                text=text,
            )
        )

    def search(
        self, filters: Mapping[str, Sequence[str]], limit: int, text: str | None = None
    ) -> list[StoredEvent]:
        page = self.store.search(
            EventQuery(start=self.o.start, end=self.o.end, filters=filters, text=text, limit=limit)
        )
        return page.events

    # --- sections ---

    def events(self) -> EventsOverview:
        buckets = self.aggregate(by="node", bucket=DAY, limit=1000)
        return EventsOverview(
            total=sum(b.count for b in buckets),
            by_node=_top(_sum_by_value(buckets), 1000),
            per_day=_per_day(buckets),
        )

    def alerts(self) -> AlertSummary:
        tallies = self.store.alert_tallies(self.o.start, self.o.end)
        by_severity: dict[str, int] = {}
        by_status: dict[str, int] = {}
        matrix: dict[str, dict[str, int]] = {}
        rules: dict[tuple[str, str], RuleAlerts] = {}
        for t in tallies:
            by_severity[t.severity] = by_severity.get(t.severity, 0) + t.alerts
            by_status[t.status] = by_status.get(t.status, 0) + t.alerts
            row = matrix.setdefault(t.severity, {})
            row[t.status] = row.get(t.status, 0) + t.alerts
            key = (t.rule_id, t.severity)
            found = rules.get(key)
            statuses = dict(found.by_status) if found else {}
            statuses[t.status] = statuses.get(t.status, 0) + t.alerts
            rules[key] = RuleAlerts(
                rule_id=t.rule_id,
                title=t.title,
                severity=t.severity,
                alerts=(found.alerts if found else 0) + t.alerts,
                occurrences=(found.occurrences if found else 0) + t.occurrences,
                by_status=statuses,
            )
        query = AlertQuery(
            filters={"status": ("open", "acknowledged"), "severity": ("critical", "high")},
            start=self.o.start,
            end=self.o.end,
            limit=self.o.list_limit,
        )
        listed = self.store.alerts(query).alerts
        unresolved_total = sum(
            n
            for severity in ("critical", "high")
            for status, n in matrix.get(severity, {}).items()
            if status in ("open", "acknowledged")
        )
        order: dict[str, int] = {s: i for i, s in enumerate(ALERT_STATUSES)}
        return AlertSummary(
            total=sum(by_severity.values()),
            occurrences=sum(t.occurrences for t in tallies),
            by_severity=_by_severity(by_severity),
            by_status=dict(sorted(by_status.items(), key=lambda kv: order.get(kv[0], 9))),
            by_severity_status=_by_severity(matrix),
            rules=sorted(rules.values(), key=lambda r: (-r.alerts, r.title)),
            unresolved=[
                AlertItem(
                    id=a.id,
                    rule_id=a.rule_id,
                    title=a.title,
                    severity=a.severity,
                    status=a.status,
                    first_seen=a.first_seen,
                    last_seen=a.last_seen,
                    occurrences=a.count,
                    user=a.user,
                    namespace=a.namespace,
                    assignee=a.assignee,
                    summary=a.summary,
                )
                for a in listed
            ],
            unresolved_total=max(unresolved_total, len(listed)),
        )

    def new_values(self) -> NewValues:
        limit = self.o.list_limit
        users, users_total = self.store.first_seen("user", self.o.start, self.o.end, _MAX_VALUES)
        accounts = [v for v in users if v.value.startswith(SERVICE_ACCOUNT)]
        people = [v for v in users if not v.value.startswith(SERVICE_ACCOUNT)]
        ips, ips_total = self.store.first_seen("source_ip", self.o.start, self.o.end, limit)
        if users_total > len(users):
            self.notes.append(
                f"{users_total:,} users were first seen in the period: identities and service"
                f" accounts are counted among the first {len(users):,} of them."
            )

        def items(values: Iterable[Any]) -> list[SeenItem]:
            return [SeenItem(value=v.value, first_seen=v.first, last_seen=v.last,
                             events=v.events) for v in values][:limit]  # fmt: skip

        return NewValues(
            identities=items(people),
            identities_total=len(people),
            service_accounts=items(accounts),
            service_accounts_total=len(accounts),
            source_ips=items(ips),
            source_ips_total=ips_total,
        )

    def rbac(self) -> EventList:
        filters = {"resource": RBAC_RESOURCES, "verb": RBAC_VERBS, "stage": DONE}
        users = self.aggregate(filters, by="user")
        events = self.search(filters, self.o.list_limit)
        return EventList(
            total=sum(b.count for b in users),
            by_user=_top(_sum_by_value(users), self.o.top),
            items=[_item(e) for e in events],
        )

    def sessions(self) -> EventList:
        """exec, attach and portforward requests: one per session, counted on the stage that
        has more of them (a policy may log either or both)."""
        total = 0
        users: dict[str, int] = {}
        approximate = False
        found: dict[str, StoredEvent] = {}
        for word in SESSION_SUBRESOURCES:
            # the request URIs holding the word: the sessions' own, and maybe others
            per_stage: list[dict[str, int]] = []
            pods: set[str] = set()
            others: set[str] = set()
            for stage in SESSION_STAGES:
                filters = {"resource": ("pods",), "stage": (stage,)}
                sessions: dict[str, int] = {}
                for b in self.aggregate(filters, by="text", text=word):
                    match = _SESSION_URI.search(b.value or "")
                    if match is not None and match.group(2) == word:
                        sessions[b.value or ""] = b.count
                        pods.add(match.group(1))
                    elif match is not None:
                        others.add(match.group(1))
                    else:
                        others.update(_POD.findall(b.value or ""))
                per_stage.append(sessions)
            if not pods:
                continue
            approximate |= bool(pods & others)
            total += sum(max(s.get(uri, 0) for s in per_stage) for uri in set().union(*per_stage))
            # who: the requests on those pods with the word (exact unless a pod also has
            # other requests with the word, which ``approximate`` notes)
            per_user = [
                _sum_by_value(
                    self.aggregate(
                        {"resource": ("pods",), "stage": (stage,), "name": sorted(pods)},
                        by="user",
                        text=word,
                    )
                )
                for stage in SESSION_STAGES
            ]
            for user in set().union(*per_user):
                users[user] = users.get(user, 0) + max(u.get(user, 0) for u in per_user)
            # the newest sessions (twice the limit: a session may have two stages here)
            for event in self.search(
                {"resource": ("pods",), "stage": SESSION_STAGES, "name": sorted(pods)},
                2 * self.o.list_limit,
                text=word,
            ):
                if _object(event.raw, "objectRef").get("subresource") != word:
                    continue
                audit_id = str(event.raw.get("auditID") or event.key)
                if audit_id not in found or event.time < found[audit_id].time:
                    found[audit_id] = event  # the session's start
        newest = sorted(found.values(), key=lambda e: -e.time)[: self.o.list_limit]
        note = ""
        if approximate:
            note = (
                "Per user, a pod's other requests whose URI holds exec, attach or portforward"
                " are counted with its sessions; the total counts sessions only."
            )
        return EventList(
            total=total,
            by_user=_top(users, self.o.top),
            items=[_item(e) for e in newest],
            note=note,
        )

    def secrets(self) -> EventList:
        filters: dict[str, Sequence[str]] = {"resource": ("secrets",), "stage": DONE}
        per_user = {
            user: n
            for user, n in _sum_by_value(self.aggregate(filters, by="user")).items()
            if not user.startswith("system:")
        }
        events: list[StoredEvent] = []
        if per_user:
            events = self.search({**filters, "user": sorted(per_user)}, self.o.list_limit)
        return EventList(
            total=sum(per_user.values()),
            by_user=_top(per_user, len(per_user)),
            items=[_item(e) for e in events],
        )

    def denied(self) -> DeniedRequests:
        forbid = {"decision": ("forbid",), "stage": DONE}
        codes = {"code": ("401", "403"), "stage": DONE}
        both = {**forbid, **codes}
        days: dict[float, dict[str, int]] = {}
        for b in self.aggregate(forbid, bucket=DAY):
            _add(days, b.start, "forbid", b.count)
        for b in self.aggregate(codes, bucket=DAY, by="code"):
            _add(days, b.start, b.value or "", b.count)
        for b in self.aggregate(both, bucket=DAY, by="code"):
            _add(days, b.start, b.value or "", -b.count)
        users = _sum_by_value(self.aggregate(forbid, by="user"))
        for name, n in _sum_by_value(self.aggregate(codes, by="user")).items():
            users[name] = users.get(name, 0) + n
        for name, n in _sum_by_value(self.aggregate(both, by="user")).items():
            users[name] -= n
        per_day = [
            DayCount(day=day, counts={k: counts.get(k, 0) for k in ("forbid", "401", "403")})
            for day, counts in sorted(days.items())
        ]
        return DeniedRequests(
            total=sum(sum(d.counts.values()) for d in per_day),
            per_day=per_day,
            top_users=_top({u: n for u, n in users.items() if n > 0}, self.o.top),
        )

    def pipeline(self) -> PipelineHealth:
        o = self.o
        end = min(o.end, max(self.now, o.start + o.min_gap))
        lookback = o.end - o.start if o.gap_lookback is None else o.gap_lookback
        found = [
            Gap(
                cluster=g.cluster,
                node=g.node,
                source=g.source,
                start=g.start,
                end=g.end,
                minutes=round((g.end - g.start) / 60.0, 1),
                ongoing=g.ongoing,
            )
            for g in self.store.activity_gaps(o.start, end, o.min_gap, lookback)
        ]
        origins: dict[tuple[str, str, str], list[float]] = {}
        for g in found:
            origins.setdefault((g.cluster, g.node, g.source), []).append(g.minutes)
        by_origin = [
            OriginGaps(
                cluster=c, node=n, source=s, gaps=len(m), minutes=round(sum(m), 1), longest=max(m)
            )
            for (c, n, s), m in sorted(origins.items())
        ]
        gaps = sorted(found, key=lambda g: (-g.minutes, g.start))[: o.list_limit]
        messages = self.aggregate(by="text", text=BACKEND_ERROR_TEXT)
        plugins: dict[str, int] = {}
        count = 0
        samples: list[str] = []
        for b in messages:
            match = _BACKEND_ERROR.search(b.value or "")
            if match is None:
                continue
            count += b.count
            plugin = match.group(1)
            plugins[plugin] = plugins.get(plugin, 0) + int(match.group(2)) * b.count
            if len(samples) < 5:
                samples.append((b.value or "").split("\n", 1)[0][:300])
        backend = BackendErrors(
            messages=count,
            affected_events=sum(plugins.values()),
            by_plugin=dict(sorted(plugins.items(), key=lambda kv: -kv[1])),
            by_node=[],
            per_day=[],
            samples=samples,
        )
        if count:
            by_node = self.aggregate(by="node", bucket=DAY, text=BACKEND_ERROR_TEXT)
            backend = msgspec.structs.replace(
                backend, by_node=_top(_sum_by_value(by_node), 1000), per_day=_per_day(by_node)
            )
        problems: dict[tuple[str, str, str, str], int] = {}
        for e in self.store.ingest_errors(o.start, o.end):
            key = (e.cluster, e.node, e.source, e.reason)
            problems[key] = problems.get(key, 0) + e.count
        return PipelineHealth(
            min_gap=o.min_gap,
            gaps=gaps,
            gaps_total=len(found),
            gaps_by_origin=by_origin,
            backend=backend,
            ingest_errors=[
                IngestProblem(cluster=c, node=n, source=s, reason=r, count=count)
                for (c, n, s, r), count in sorted(problems.items(), key=lambda kv: -kv[1])
            ],
            ingest_errors_total=sum(problems.values()),
        )


def _item(event: StoredEvent) -> EventItem:
    raw = event.raw
    user, ref = _object(raw, "user"), _object(raw, "objectRef")
    status, notes = _object(raw, "responseStatus"), _object(raw, "annotations")
    ips = raw.get("sourceIPs")
    ips = ips if isinstance(ips, list) else []
    uri = str(raw.get("requestURI") or "")
    argv = exec_argv(uri) if "command=" in uri else ()
    code = status.get("code")
    return EventItem(
        time=event.time,
        node=event.node,
        user=str(user.get("username") or ""),
        verb=str(raw.get("verb") or ""),
        resource=str(ref.get("resource") or ""),
        subresource=str(ref.get("subresource") or ""),
        namespace=str(ref.get("namespace") or ""),
        name=str(ref.get("name") or ""),
        source_ip=str(ips[0]) if ips else "",
        code=code if isinstance(code, int) else None,
        decision=str(notes.get(DECISION_ANNOTATION) or ""),
        detail=" ".join(argv) if argv else uri,
    )


def _object(raw: dict[str, Any], name: str) -> dict[str, Any]:
    value = raw.get(name)
    return value if isinstance(value, dict) else {}


def _sum_by_value(buckets: Iterable[Bucket]) -> dict[str, int]:
    out: dict[str, int] = {}
    for b in buckets:
        if b.value is not None:
            out[b.value] = out.get(b.value, 0) + b.count
    return out


def _top(counts: Mapping[str, int], limit: int) -> list[Count]:
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [Count(name=name, count=n) for name, n in ordered[:limit] if n > 0]


def _per_day(buckets: Iterable[Bucket]) -> list[DayCount]:
    days: dict[float, dict[str, int]] = {}
    for b in buckets:
        _add(days, b.start, b.value or "", b.count)
    return [DayCount(day=day, counts=counts) for day, counts in sorted(days.items())]


def _add(days: dict[float, dict[str, int]], day: float | None, name: str, n: int) -> None:
    counts = days.setdefault(day or 0.0, {})
    counts[name] = counts.get(name, 0) + n


_SEVERITIES = ("critical", "high", "medium", "low", "informational")


def _by_severity(values: Mapping[str, Any]) -> dict[str, Any]:
    """Severities from the most severe down (unknown ones last)."""
    rank = {s: i for i, s in enumerate(_SEVERITIES)}
    return dict(sorted(values.items(), key=lambda kv: (rank.get(kv[0], 9), kv[0])))
