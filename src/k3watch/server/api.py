"""The query API under ``/api/v1``: events, alerts and their triage, silences, rules, stats,
tokens. Reading needs the viewer role, triage and silences the analyst role, tokens admin."""

# No "from __future__ import annotations": FastAPI reads the endpoint signatures at runtime,
# and their dependencies are local to router().

import time
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from k3watch.alerting.silence import format_matcher, parse_matcher
from k3watch.errors import UsageError
from k3watch.event import format_time
from k3watch.rules.extension import parse_duration
from k3watch.server.runtime import Runtime
from k3watch.server.tokens import Role, TokenInfo
from k3watch.store.base import (
    ALERT_FILTERS,
    SEARCH_FIELDS,
    AggregateQuery,
    AlertChange,
    AlertQuery,
    EventQuery,
    Silence,
    Store,
    StoredAlert,
    StoredEvent,
)
from k3watch.timespec import parse_instant

AUDIT_STAGES = ("ResponseComplete", "ResponseStarted", "Panic", "RequestReceived")


def parse_when(text: str | None, now: float | None = None) -> float | None:
    """A time from a query parameter (:func:`k3watch.timespec.parse_instant`); 422 if it is
    not one."""
    try:
        return parse_instant(text, time.time() if now is None else now)
    except UsageError as exc:
        raise HTTPException(422, str(exc)) from None


class EventOut(BaseModel):
    key: str
    time: str
    cluster: str
    node: str
    source: str
    truncated: bool
    event: dict[str, Any]


class EventPageOut(BaseModel):
    events: list[EventOut]
    cursor: str | None = Field(description="Pass as ?cursor= for the next (older) page")


class ChangeOut(BaseModel):
    time: str
    actor: str
    action: str
    note: str
    assignee: str | None


class AlertOut(BaseModel):
    id: int
    fingerprint: str
    rule_id: str
    title: str
    severity: str
    status: str
    tags: list[str]
    cluster: str
    namespace: str | None
    user: str | None
    group: dict[str, Any]
    summary: str
    first_seen: str
    last_seen: str
    count: int
    assignee: str | None
    silenced_by: str | None
    event_keys: list[str] = []
    history: list[ChangeOut] = []


class AlertPageOut(BaseModel):
    alerts: list[AlertOut]
    cursor: str | None


class ActionIn(BaseModel):
    action: Literal["ack", "resolve", "false_positive", "reopen", "assign", "note"]
    note: str = ""
    assignee: str | None = None


class SilenceIn(BaseModel):
    matchers: list[str] = Field(
        min_length=1, description="name=value, name!=value, name=~regex or name!~regex"
    )
    duration: str = Field("2h", description="How long from now (or from starts)")
    starts: str | None = None
    comment: str = Field(min_length=1)


class SilenceOut(BaseModel):
    id: str
    matchers: list[str]
    starts: str
    ends: str
    created_by: str
    comment: str
    active: bool


class RuleOut(BaseModel):
    id: str
    title: str
    severity: str
    kind: str
    tags: list[str]
    alerts: int
    occurrences: int
    false_positives: int
    last_seen: str | None


class BucketOut(BaseModel):
    start: str | None
    value: str | None
    count: int


class StatsOut(BaseModel):
    buckets: list[BucketOut]
    alerts_by_status: dict[str, int]
    alerts_by_severity: dict[str, int]


class TokenIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    role: Literal["agent", "viewer", "analyst", "admin"]
    expires: str | None = Field(None, description="A duration like 90d; never when empty")


class TokenOut(BaseModel):
    id: str
    name: str
    role: str
    created: str
    expires: str | None
    last_used: str | None
    revoked: bool
    secret: str | None = Field(None, description="Shown once, when the token is created")


def find_event(store: Store, key: str) -> StoredEvent | None:
    """The event stored under ``key``; an audit event may be named by its ``auditID`` alone
    (as alerts name their events), then the stages are tried in order."""
    candidates = [key] if "/" in key else [key, *(f"{key}/{s}" for s in AUDIT_STAGES)]
    for candidate in candidates:
        event = store.get_event(candidate)
        if event is not None:
            return event
    return None


def event_out(event: StoredEvent) -> EventOut:
    return EventOut(
        key=event.key,
        time=format_time(event.time),
        cluster=event.cluster,
        node=event.node,
        source=event.source,
        truncated=event.truncated,
        event=event.raw,
    )


def alert_out(alert: StoredAlert) -> AlertOut:
    return AlertOut(
        id=alert.id,
        fingerprint=alert.fingerprint,
        rule_id=alert.rule_id,
        title=alert.title,
        severity=alert.severity,
        status=alert.status,
        tags=list(alert.tags),
        cluster=alert.cluster,
        namespace=alert.namespace,
        user=alert.user,
        group=alert.group,
        summary=alert.summary,
        first_seen=format_time(alert.first_seen),
        last_seen=format_time(alert.last_seen),
        count=alert.count,
        assignee=alert.assignee,
        silenced_by=alert.silenced_by,
        event_keys=list(alert.event_keys),
        history=[
            ChangeOut(
                time=format_time(c.time),
                actor=c.actor,
                action=c.action,
                note=c.note,
                assignee=c.assignee,
            )
            for c in alert.history
        ],
    )


def silence_out(silence: Silence, now: float) -> SilenceOut:
    return SilenceOut(
        id=silence.id,
        matchers=[format_matcher(m) for m in silence.matchers],
        starts=format_time(silence.starts),
        ends=format_time(silence.ends),
        created_by=silence.created_by,
        comment=silence.comment,
        active=silence.starts <= now < silence.ends,
    )


def token_out(token: TokenInfo, secret: str | None = None) -> TokenOut:
    return TokenOut(
        id=token.id,
        name=token.name,
        role=token.role.value,
        created=format_time(token.created),
        expires=format_time(token.expires) if token.expires else None,
        last_used=format_time(token.last_used) if token.last_used else None,
        revoked=token.revoked,
        secret=secret,
    )


def _filters(request: Request, names: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """Repeated or comma-separated query parameters named like fields."""
    out: dict[str, tuple[str, ...]] = {}
    for name in names:
        values = [v for raw in request.query_params.getlist(name) for v in raw.split(",") if v]
        if values:
            out[name] = tuple(values)
    return out


def router(runtime: Runtime) -> APIRouter:
    store = runtime.store
    viewer = Depends(runtime.auth.require(Role.VIEWER))
    analyst = runtime.auth.require(Role.ANALYST)
    admin = runtime.auth.require(Role.ADMIN)
    api = APIRouter(prefix="/api/v1")
    field_doc = ", ".join(SEARCH_FIELDS)

    @api.get(
        "/events",
        response_model=EventPageOut,
        tags=["events"],
        dependencies=[viewer],
        description=f"Field filters as query parameters (repeat or comma-separate values): "
        f"{field_doc}. Newest first.",
    )
    async def search_events(
        request: Request,
        start: str | None = None,
        end: str | None = None,
        q: Annotated[str | None, Query(description="Words in the request URI or message")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: str | None = None,
    ) -> EventPageOut:
        query = EventQuery(
            start=parse_when(start),
            end=parse_when(end),
            filters=_filters(request, SEARCH_FIELDS),
            text=q,
            limit=limit,
            cursor=cursor,
        )
        try:
            page = await run_in_threadpool(store.search, query)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from exc
        return EventPageOut(events=[event_out(e) for e in page.events], cursor=page.cursor)

    @api.get("/events/{key:path}", response_model=EventOut, tags=["events"], dependencies=[viewer])
    async def get_event(key: str) -> EventOut:
        event = await run_in_threadpool(find_event, store, key)
        if event is None:
            raise HTTPException(404, f"no event {key!r}")
        return event_out(event)

    @api.get("/alerts", response_model=AlertPageOut, tags=["alerts"], dependencies=[viewer])
    async def list_alerts(
        request: Request,
        start: str | None = None,
        end: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: str | None = None,
    ) -> AlertPageOut:
        """Filters: status, severity, rule_id, cluster, namespace, user, assignee."""
        query = AlertQuery(
            filters=_filters(request, ALERT_FILTERS),
            start=parse_when(start),
            end=parse_when(end),
            limit=limit,
            cursor=cursor,
        )
        try:
            page = await run_in_threadpool(store.alerts, query)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from exc
        return AlertPageOut(alerts=[alert_out(a) for a in page.alerts], cursor=page.cursor)

    @api.get("/alerts/{alert_id}", response_model=AlertOut, tags=["alerts"], dependencies=[viewer])
    async def get_alert(alert_id: int) -> AlertOut:
        alert = await run_in_threadpool(store.get_alert, alert_id)
        if alert is None:
            raise HTTPException(404, f"no alert {alert_id}")
        return alert_out(alert)

    @api.post("/alerts/{alert_id}/actions", response_model=AlertOut, tags=["alerts"])
    async def change_alert(
        alert_id: int, action: ActionIn, token: Annotated[TokenInfo, Depends(analyst)]
    ) -> AlertOut:
        """Acknowledge, resolve, mark false positive, reopen, assign or add a note."""
        if action.action == "assign" and not action.assignee:
            raise HTTPException(422, "assign needs an assignee")
        change = AlertChange(token.name, action.action, action.note, action.assignee, time.time())
        try:
            alert = await run_in_threadpool(store.change_alert, alert_id, change)
        except KeyError:
            raise HTTPException(404, f"no alert {alert_id}") from None
        return alert_out(alert)

    @api.get("/silences", response_model=list[SilenceOut], tags=["silences"], dependencies=[viewer])
    async def list_silences(active: bool = False) -> list[SilenceOut]:
        now = time.time()
        found = await run_in_threadpool(store.silences, active_at=now if active else None)
        return [silence_out(s, now) for s in found]

    @api.post("/silences", response_model=SilenceOut, status_code=201, tags=["silences"])
    async def add_silence(
        body: SilenceIn, token: Annotated[TokenInfo, Depends(analyst)]
    ) -> SilenceOut:
        now = time.time()
        try:
            matchers = tuple(parse_matcher(m) for m in body.matchers)
            starts = parse_when(body.starts) or now
            ends = starts + parse_duration(body.duration)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from exc
        silence = Silence(
            uuid.uuid4().hex[:12], matchers, starts, ends, token.name, body.comment, now
        )
        stored = await run_in_threadpool(store.add_silence, silence)
        runtime.silences.invalidate()
        return silence_out(stored, now)

    @api.delete("/silences/{silence_id}", response_model=SilenceOut, tags=["silences"])
    async def expire_silence(
        silence_id: str, token: Annotated[TokenInfo, Depends(analyst)]
    ) -> SilenceOut:
        now = time.time()
        try:
            silence = await run_in_threadpool(store.expire_silence, silence_id, now)
        except KeyError:
            raise HTTPException(404, f"no silence {silence_id}") from None
        runtime.silences.invalidate()
        return silence_out(silence, now)

    @api.get("/rules", response_model=list[RuleOut], tags=["rules"], dependencies=[viewer])
    async def rules(since: str = "30d") -> list[RuleOut]:
        """Every loaded rule with its alerts since ``since``."""
        hits = {h.rule_id: h for h in await run_in_threadpool(store.rule_hits, parse_when(since))}
        out = []
        for rule in runtime.ruleset.all():
            info = rule.info
            hit = hits.get(info.id)
            out.append(
                RuleOut(
                    id=info.id,
                    title=info.title,
                    severity=info.severity.label,
                    kind=info.kind,
                    tags=list(info.tags),
                    alerts=hit.alerts if hit else 0,
                    occurrences=hit.occurrences if hit else 0,
                    false_positives=hit.false_positives if hit else 0,
                    last_seen=format_time(hit.last_seen) if hit and hit.last_seen else None,
                )
            )
        return out

    @api.get("/stats", response_model=StatsOut, tags=["stats"], dependencies=[viewer])
    async def stats(
        request: Request,
        start: str = "24h",
        end: str | None = None,
        bucket: Annotated[str | None, Query(description="Bucket width, e.g. 1h")] = "1h",
        by: Annotated[str | None, Query(description=f"One of {field_doc}")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    ) -> StatsOut:
        """Events per time bucket and/or per value of a field; alerts by status and severity."""
        if by is not None and by not in SEARCH_FIELDS:
            raise HTTPException(422, f"by must be one of {field_doc}")
        try:
            width = parse_duration(bucket) if bucket else None
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from exc
        since = parse_when(start)
        query = AggregateQuery(
            start=since,
            end=parse_when(end),
            bucket=width,
            by=by,
            filters=_filters(request, SEARCH_FIELDS),
            limit=limit,
        )
        buckets = await run_in_threadpool(store.aggregate, query)
        return StatsOut(
            buckets=[
                BucketOut(
                    start=format_time(b.start) if b.start is not None else None,
                    value=b.value,
                    count=b.count,
                )
                for b in buckets
            ],
            alerts_by_status=await run_in_threadpool(store.alert_counts, "status", since),
            alerts_by_severity=await run_in_threadpool(store.alert_counts, "severity", since),
        )

    @api.get("/tokens", response_model=list[TokenOut], tags=["tokens"])
    async def list_tokens(_: Annotated[TokenInfo, Depends(admin)]) -> list[TokenOut]:
        return [token_out(t) for t in await run_in_threadpool(runtime.tokens.list)]

    @api.post("/tokens", response_model=TokenOut, status_code=201, tags=["tokens"])
    async def create_token(body: TokenIn, _: Annotated[TokenInfo, Depends(admin)]) -> TokenOut:
        expires = time.time() + parse_duration(body.expires) if body.expires else None
        try:
            token, secret = await run_in_threadpool(
                lambda: runtime.tokens.create(body.name, Role(body.role), expires=expires)
            )
        except (UsageError, ValueError) as exc:
            raise HTTPException(409, str(exc)) from exc
        return token_out(token, secret)

    @api.delete("/tokens/{id_or_name}", response_model=TokenOut, tags=["tokens"])
    async def revoke_token(id_or_name: str, _: Annotated[TokenInfo, Depends(admin)]) -> TokenOut:
        try:
            token = await run_in_threadpool(runtime.tokens.revoke, id_or_name)
        except (UsageError, KeyError) as exc:
            raise HTTPException(404, str(exc)) from exc
        return token_out(token)

    return api
