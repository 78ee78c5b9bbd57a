"""The pages of the web UI: overview, alert queue and alert, event search and event, rules,
silences. Reading needs the viewer role; triage and silences the analyst role."""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from k3watch.alerting.silence import format_matcher, parse_matcher
from k3watch.errors import UsageError
from k3watch.event import format_time
from k3watch.rules.extension import parse_duration
from k3watch.server.api import find_event
from k3watch.server.tokens import Role
from k3watch.store.base import (
    ALERT_FILTERS,
    ALERT_STATUSES,
    SEARCH_FIELDS,
    AlertChange,
    AlertQuery,
    EventQuery,
    Silence,
    StoredAlert,
    StoredEvent,
    field_values,
)
from k3watch.timespec import parse_instant
from k3watch.web import overview, reviews
from k3watch.web.app import Web
from k3watch.web.render import error_page, page

AROUND = 30 * 60  # the alert page's timeline: this long before and after the alert
TRIAGE_ACTIONS = {"ack": "acknowledged", "resolve": "resolved", "false_positive": "false positive"}
PAGE_SIZE = 50


class FormError(ValueError):
    """A form value that cannot be used; shown to the user on the page."""


def install(app: FastAPI, web: Web) -> None:
    runtime = web.runtime
    store = runtime.store

    @app.get("/ui/", include_in_schema=False)
    async def overview_page(request: Request, period: str = "24h") -> Response:
        session = web.need(request, Role.VIEWER)
        if period not in overview.PERIODS:
            period = "24h"
        data = await web.call(overview.gather, store, time.time(), overview.PERIODS[period])
        return page(
            "overview.html",
            session,
            active="overview",
            reviews=await web.call(reviews.status, web),
            **overview.context(data, period),
        )

    # -- alerts ------------------------------------------------------------------------------

    @app.get("/ui/alerts", include_in_schema=False)
    async def alerts_page(request: Request, cursor: str | None = None) -> Response:
        session = web.need(request, Role.VIEWER)
        filters = _multi(request, ALERT_FILTERS)
        if "status" not in request.query_params:
            filters["status"] = ("open", "acknowledged")
        result = await web.call(
            store.alerts, AlertQuery(filters=filters, limit=PAGE_SIZE, cursor=cursor)
        )
        return page(
            "alerts.html",
            session,
            active="alerts",
            alerts=result.alerts,
            cursor=result.cursor,
            filters=filters,
            statuses=ALERT_STATUSES,
            rules=sorted(
                {r.info.id: r.info.title for r in runtime.ruleset.all()}.items(),
                key=lambda kv: kv[1],
            ),
            message=request.query_params.get("done"),
        )

    @app.post("/ui/alerts", include_in_schema=False)
    async def alerts_bulk(request: Request) -> Response:
        session, form = await web.form(request, Role.ANALYST)
        ids = [int(i) for i in form.get("ids", []) if str(i).isdigit()]
        action = form.get("action", "")
        note = form.get("note", "").strip()
        back = form.get("back") or "/ui/alerts"
        if not back.startswith("/ui/alerts"):
            back = "/ui/alerts"
        problem = _triage_problem(action, note, form.get("assignee", ""), bool(ids))
        if problem:
            return error_page(session, 422, "Nothing changed", problem)
        changed = 0
        for alert_id in ids:
            change = _change(session.name, action, note, form.get("assignee", ""))
            try:
                await web.call(store.change_alert, alert_id, change)
                changed += 1
            except KeyError:
                continue
        done = f"{changed} alert{'s' if changed != 1 else ''} {_done(action)}"
        sep = "&" if "?" in back else "?"
        return RedirectResponse(f"{back}{sep}done={quote(done)}", status_code=303)

    @app.get("/ui/alerts/{alert_id}", include_in_schema=False)
    async def alert_page(request: Request, alert_id: int) -> Response:
        session = web.need(request, Role.VIEWER)
        alert = await web.call(store.get_alert, alert_id)
        if alert is None:
            return error_page(
                session,
                404,
                "No such alert",
                f"There is no alert {alert_id}.",
            )
        found = [await web.call(find_event, store, k) for k in alert.event_keys[:25]]
        events = [e for e in found if e is not None]
        timeline = await web.call(_timeline, web, alert, events)
        rule = runtime.ruleset.get(alert.rule_id)
        return page(
            "alert.html",
            session,
            active="alerts",
            alert=alert,
            events=events,
            triggering_keys={e.key for e in events},
            timeline=timeline,
            rule=rule.info if rule is not None else None,
            values=_event_fields,
            users=[u.name for u in await web.call(runtime.users.list)],
            message=request.query_params.get("done"),
        )

    @app.post("/ui/alerts/{alert_id}", include_in_schema=False)
    async def alert_action(request: Request, alert_id: int) -> Response:
        session, form = await web.form(request, Role.ANALYST)
        action, note = form.get("action", ""), form.get("note", "").strip()
        problem = _triage_problem(action, note, form.get("assignee", ""), True)
        if problem:
            return error_page(session, 422, "Nothing changed", problem)
        try:
            await web.call(
                store.change_alert,
                alert_id,
                _change(session.name, action, note, form.get("assignee", "")),
            )
        except KeyError:
            return error_page(
                session,
                404,
                "No such alert",
                f"There is no alert {alert_id}.",
            )
        return RedirectResponse(
            f"/ui/alerts/{alert_id}?done={quote('Alert ' + _done(action))}", status_code=303
        )

    # -- events ------------------------------------------------------------------------------

    @app.get("/ui/events", include_in_schema=False)
    async def events_page(
        request: Request,
        start: str = "24h",
        end: str = "",
        q: str = "",
        cursor: str | None = None,
    ) -> Response:
        session = web.need(request, Role.VIEWER)
        filters = _multi(request, SEARCH_FIELDS)
        error = ""
        events: list[StoredEvent] = []
        next_cursor = None
        try:
            query = EventQuery(
                start=_when(start),
                end=_when(end),
                filters=filters,
                text=q or None,
                limit=PAGE_SIZE,
                cursor=cursor,
            )
            result = await web.call(store.search, query)
            events, next_cursor = result.events, result.cursor
        except ValueError as exc:
            error = str(exc)
        return page(
            "events.html",
            session,
            active="events",
            events=events,
            cursor=next_cursor,
            params={"start": start, "end": end, "q": q, **{k: list(v) for k, v in filters.items()}},
            filters=filters,
            fields=SEARCH_FIELDS,
            values=_event_fields,
            message=error,
            message_kind="error",
        )

    @app.get("/ui/events/{key:path}", include_in_schema=False)
    async def event_page(request: Request, key: str) -> Response:
        session = web.need(request, Role.VIEWER)
        event = await web.call(find_event, store, key)
        if event is None:
            return error_page(
                session,
                404,
                "No such event",
                f"There is no event {key!r} (it may have been removed by retention).",
            )
        return page(
            "event.html",
            session,
            active="events",
            event=event,
            values=_event_fields(event),
            around={
                "start": format_time(event.time - 300),
                "end": format_time(event.time + 300),
                "node": event.node,
            },
        )

    # -- rules -------------------------------------------------------------------------------

    @app.get("/ui/rules", include_in_schema=False)
    async def rules_page(request: Request) -> Response:
        session = web.need(request, Role.VIEWER)
        now = time.time()
        week = {h.rule_id: h for h in await web.call(store.rule_hits, now - 7 * 86400)}
        month = {h.rule_id: h for h in await web.call(store.rule_hits, now - 30 * 86400)}
        rows: list[dict[str, Any]] = []
        states = [
            (r.info, "enabled" if r.generate else "correlation input")
            for r in runtime.ruleset.all()
        ]
        states += [(info, "disabled") for info in runtime.ruleset.disabled]
        for info, state in states:
            hits = month.get(info.id)
            alerts = hits.alerts if hits else 0
            rows.append(
                {
                    "info": info,
                    "state": state,
                    "week": week[info.id].occurrences if info.id in week else 0,
                    "month": hits.occurrences if hits else 0,
                    "alerts": alerts,
                    "fp_rate": (hits.false_positives / alerts) if hits and alerts else None,
                    "last": hits.last_seen if hits else None,
                }
            )
        noisiest = sorted((r for r in rows if r["month"]), key=lambda r: -r["month"])[:5]
        noisy_ids = {r["info"].id for r in noisiest}
        order = request.query_params.get("sort", "month")
        key = {
            "month": lambda r: (-r["month"], r["info"].title),
            "title": lambda r: (r["info"].title,),
            "severity": lambda r: (-r["info"].severity.value, r["info"].title),
            "fp": lambda r: (-(r["fp_rate"] or 0), r["info"].title),
        }.get(order, lambda r: (-r["month"], r["info"].title))
        rows.sort(key=key)
        return page(
            "rules.html",
            session,
            active="rules",
            rows=rows,
            noisy=noisy_ids,
            never=sum(1 for r in rows if not r["month"] and r["state"] == "enabled"),
            disabled=len(runtime.ruleset.disabled),
            sort=order,
        )

    # -- silences ----------------------------------------------------------------------------

    @app.get("/ui/silences", include_in_schema=False)
    async def silences_page(request: Request, alert: int | None = None) -> Response:
        session = web.need(request, Role.VIEWER)
        now = time.time()
        found = await web.call(store.silences)
        hidden = await web.call(_hidden_by, web, [s.id for s in found])
        proposed: list[str] = []
        source = None
        if alert is not None:
            source = await web.call(store.get_alert, alert)
            if source is not None:
                proposed = _matchers_for(source)
        return page(
            "silences.html",
            session,
            active="silences",
            silences=sorted(found, key=lambda s: (s.ends < now, -s.created)),
            hidden=hidden,
            now=now,
            format_matcher=format_matcher,
            proposed=proposed,
            source=source,
            message=request.query_params.get("done"),
        )

    @app.post("/ui/silences", include_in_schema=False)
    async def add_silence(request: Request) -> Response:
        session, form = await web.form(request, Role.ANALYST)
        now = time.time()
        try:
            lines = [m.strip() for m in form.get("matchers", "").splitlines() if m.strip()]
            if not lines:
                raise FormError('a silence needs at least one matcher, e.g. rule_id="…"')
            matchers = tuple(parse_matcher(m) for m in lines)
            ends = now + parse_duration(form.get("duration", "") or "2h")
            comment = form.get("comment", "").strip()
            if not comment:
                raise FormError("say why (the comment is kept with the silence)")
        except ValueError as exc:
            return error_page(session, 422, "No silence created", str(exc))
        silence = Silence(uuid.uuid4().hex[:12], matchers, now, ends, session.name, comment, now)
        await web.call(store.add_silence, silence)
        runtime.silences.invalidate()
        return RedirectResponse(f"/ui/silences?done={quote(f'Silence {silence.id} created')}", 303)

    @app.post("/ui/silences/{silence_id}/expire", include_in_schema=False)
    async def expire_silence(request: Request, silence_id: str) -> Response:
        session, _ = await web.form(request, Role.ANALYST)
        try:
            await web.call(store.expire_silence, silence_id, time.time())
        except KeyError:
            return error_page(
                session,
                404,
                "No such silence",
                f"There is no silence {silence_id}.",
            )
        runtime.silences.invalidate()
        return RedirectResponse(f"/ui/silences?done={quote(f'Silence {silence_id} expired')}", 303)


# -- helpers -----------------------------------------------------------------------------------


def _multi(request: Request, names: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """Filters from the query string: repeated or comma-separated values, blanks dropped."""
    out: dict[str, tuple[str, ...]] = {}
    for name in names:
        values = [
            part.strip()
            for raw in request.query_params.getlist(name)
            for part in raw.split(",")
            if part.strip()
        ]
        if values:
            out[name] = tuple(dict.fromkeys(values))
    return out


def _when(text: str) -> float | None:
    try:
        return parse_instant(text, time.time())
    except UsageError as exc:
        raise ValueError(str(exc)) from None


def _triage_problem(action: str, note: str, assignee: str, chosen: bool) -> str:
    if not chosen:
        return "Choose at least one alert."
    if action not in (*TRIAGE_ACTIONS, "reopen", "assign", "note"):
        return f"Unknown action {action!r}."
    if action in TRIAGE_ACTIONS and not note:
        return "A note is required: say why (it is kept in the alert's history)."
    if action == "assign" and not assignee.strip():
        return "Choose who to assign the alert to."
    if action == "note" and not note:
        return "The note is empty."
    return ""


def _change(actor: str, action: str, note: str, assignee: str) -> AlertChange:
    return AlertChange(
        actor,
        action,  # type: ignore[arg-type]  # checked by _triage_problem
        note,
        assignee.strip() or None if action == "assign" else None,
        time.time(),
    )


def _done(action: str) -> str:
    return {
        **{k: f"marked {v}" for k, v in TRIAGE_ACTIONS.items()},
        "reopen": "reopened",
        "assign": "assigned",
        "note": "noted",
    }.get(action, "changed")


def _event_fields(event: StoredEvent) -> dict[str, str]:
    """The searchable fields of a stored event that have a value."""
    values: dict[str, Any] = {
        "cluster": event.cluster,
        "node": event.node,
        "source": event.source,
        **field_values(event.raw),
    }
    return {k: str(v) for k, v in values.items() if k in SEARCH_FIELDS and v not in (None, "")}


def _timeline(web: Web, alert: StoredAlert, events: list[StoredEvent]) -> list[StoredEvent]:
    """Events of the alert's identity and source addresses from 30 min before the alert to
    30 min after, newest first."""
    start, end = alert.first_seen - AROUND, alert.last_seen + AROUND
    wanted: list[dict[str, tuple[str, ...]]] = []
    users = {alert.user} if alert.user else set()
    addresses: set[str] = set()
    for event in events:
        values = field_values(event.raw)
        if isinstance(values["user"], str):
            users.add(values["user"])
        if isinstance(values["source_ip"], str):
            addresses.add(values["source_ip"])
    if users:
        wanted.append({"user": tuple(sorted(users))})
    if addresses:
        wanted.append({"source_ip": tuple(sorted(addresses))})
    found: dict[str, StoredEvent] = {}
    for filters in wanted:
        result = web.runtime.store.search(
            EventQuery(start=start, end=end, filters=filters, limit=200)
        )
        for event in result.events:
            found[event.key] = event
    return sorted(found.values(), key=lambda e: -e.time)[:200]


def _matchers_for(alert: StoredAlert) -> list[str]:
    """Matchers that would silence alerts like this one: its rule, and its group's values."""
    lines = [f'rule_id="{alert.rule_id}"']
    for name, value in sorted(alert.group.items()):
        if isinstance(value, str | int) and not isinstance(value, bool) and name.isidentifier():
            text = str(value).replace("\\", "\\\\").replace('"', '\\"')
            lines.append(f'{name}="{text}"')
    return lines


def _hidden_by(web: Web, silence_ids: list[str]) -> dict[str, list[StoredAlert]]:
    """The alerts each silence hid (stored while it was active, not delivered)."""
    out: dict[str, list[StoredAlert]] = {}
    for silence_id in silence_ids:
        page_ = web.runtime.store.alerts(
            AlertQuery(filters={"silenced_by": (silence_id,)}, limit=20)
        )
        out[silence_id] = page_.alerts
    return out
