"""The review pages: each schedule's status, opening the review of a period, walking its
checklist, recording findings, and signing it off (see docs/review.md). Reading needs the
viewer role; changing a review the analyst role."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from markupsafe import Markup

from k3watch.errors import UsageError
from k3watch.review.charts import backend_errors_chart
from k3watch.review.render import (
    FORMATS,
    MEDIA_TYPES,
    SUFFIXES,
    render,
    render_body,
)
from k3watch.review.report import ReviewOptions, build_report, pipeline_health
from k3watch.review.signoff_model import ITEM_STATES, ReviewError, ScheduleStatus
from k3watch.review.store import ReviewStore
from k3watch.server.tokens import Role
from k3watch.store.base import AggregateQuery
from k3watch.timespec import parse_due, parse_end, parse_period
from k3watch.web import charts
from k3watch.web.app import PageError, Web
from k3watch.web.render import error_page, page

STATUS_CODES = {"not_found": 404, "conflict": 409, "invalid": 422}


def status(web: Web, now: float | None = None) -> list[ScheduleStatus]:
    """Every schedule's status (none when the server keeps no reviews)."""
    reviews = web.runtime.reviews
    return [] if reviews is None else reviews.status(time.time() if now is None else now)


def install(app: FastAPI, web: Web) -> None:
    def store() -> ReviewStore:
        if web.runtime.reviews is None:
            raise PageError(404, "No reviews", "This server keeps no review records.")
        return web.runtime.reviews

    def refused(exc: ReviewError) -> PageError:
        return PageError(STATUS_CODES.get(exc.kind, 422), "Nothing changed", str(exc))

    @app.get("/ui/reviews", include_in_schema=False)
    async def reviews_page(request: Request) -> Response:
        session = web.need(request, Role.VIEWER)
        reviews = store()
        now = time.time()
        statuses = await web.call(reviews.status, now)
        listed = await web.call(reviews.list)
        chain = await web.call(reviews.verify)
        return page(
            "reviews.html",
            session,
            active="reviews",
            statuses=statuses,
            reviews=listed,
            chain=chain,
            now=now,
            message=request.query_params.get("done"),
        )

    @app.get("/ui/pipeline", include_in_schema=False)
    async def pipeline_page(request: Request, period: str = "24h", gap: str = "10m") -> Response:
        session = web.need(request, Role.VIEWER)
        now = time.time()
        try:
            options = ReviewOptions(
                start=now - parse_period(period), end=now, min_gap=parse_period(gap, "gap")
            )
        except (UsageError, ValueError) as exc:
            raise PageError(422, "No pipeline view", str(exc)) from None
        health = await web.call(pipeline_health, web.runtime.store, options, now)
        by_node = await web.call(
            web.runtime.store.aggregate,
            AggregateQuery(start=options.start, end=now, bucket=3600.0, by="node", limit=50),
        )
        series: dict[str, dict[float, float]] = {}
        for b in by_node:
            if b.start is not None and b.value is not None:
                series.setdefault(b.value, {})[b.start] = b.count
        return page(
            "pipeline.html",
            session,
            active="pipeline",
            period=period,
            gap=gap,
            chart=charts.time_chart(
                series,
                title="Events per hour by node",
                start=options.start,
                end=now,
                bucket=3600.0,
            ),
            p=health,
            backend_chart=Markup(backend_errors_chart(health, options.start, now)),
        )

    @app.get("/ui/reports", include_in_schema=False)
    async def report_page(
        request: Request, period: str = "7d", end: str = "", download: str = ""
    ) -> Response:
        session = web.need(request, Role.VIEWER)
        now = time.time()
        try:
            finish = parse_end(end, now)
            start = finish - parse_period(period)
        except UsageError as exc:
            return error_page(session, 422, "No report", str(exc))
        ending = time.strftime("%Y-%m-%d %H:%M", time.gmtime(finish))
        title = f"Security review: the {period} to {ending} UTC"
        return await _report(request, session, start, finish, title, download)

    @app.get("/ui/reviews/{review_id:int}/report", include_in_schema=False)
    async def review_report(request: Request, review_id: int, download: str = "") -> Response:
        session = web.need(request, Role.VIEWER)
        reviews = store()
        review = await web.call(reviews.get, review_id)
        if review is None:
            return error_page(session, 404, "No such review", f"There is no review {review_id}.")
        end = min(review.period_end, time.time())
        title = f"Review #{review.id}: {review.schedule} {review.period}"
        return await _report(request, session, review.period_start, end, title, download)

    async def _report(
        request: Request, session: Any, start: float, end: float, title: str, download: str
    ) -> Response:
        options = ReviewOptions(start=start, end=end, title=title)
        report = await web.call(
            build_report, web.runtime.store, options, ruleset=web.runtime.ruleset
        )
        if download in FORMATS:
            data = await web.call(render, report, download)
            day = time.strftime("%Y-%m-%d", time.gmtime(end))
            return Response(
                data,
                media_type=MEDIA_TYPES[download],
                headers={
                    "Content-Disposition": f'attachment; filename="review-{day}'
                    f'{SUFFIXES[download]}"',
                    "Cache-Control": "no-store",
                },
            )
        return page(
            "report_page.html",
            session,
            active="reviews",
            title=title,
            body=render_body(report),
            formats=FORMATS,
            here=request.url.path,
            params=dict(request.query_params),
        )

    @app.post("/ui/reviews", include_in_schema=False)
    async def open_review(request: Request) -> Response:
        session, form = await web.form(request, Role.ANALYST)
        reviews = store()
        try:
            review = await web.call(
                reviews.open,
                form.get("schedule", ""),
                session.name,
                period=form.get("period") or None,
            )
        except ReviewError as exc:
            raise refused(exc) from None
        return RedirectResponse(f"/ui/reviews/{review.id}", status_code=303)

    @app.get("/ui/reviews/{review_id:int}", include_in_schema=False)
    async def review_page(request: Request, review_id: int) -> Response:
        session = web.need(request, Role.VIEWER)
        reviews = store()
        review = await web.call(reviews.get, review_id)
        if review is None:
            return error_page(
                session,
                404,
                "No such review",
                f"There is no review {review_id}.",
            )
        return page(
            "review.html",
            session,
            active="reviews",
            review=review,
            states=ITEM_STATES,
            now=time.time(),
            pending=sum(1 for item in review.items if item.state == "pending"),
            message=request.query_params.get("done"),
        )

    @app.post("/ui/reviews/{review_id:int}/items/{item_id}", include_in_schema=False)
    async def set_item(request: Request, review_id: int, item_id: str) -> Response:
        session, form = await web.form(request, Role.ANALYST)
        reviews = store()
        try:
            await web.call(
                reviews.set_item,
                review_id,
                item_id,
                form.get("state", ""),
                session.name,
                note=form.get("note", ""),
            )
        except ReviewError as exc:
            raise refused(exc) from None
        return RedirectResponse(f"/ui/reviews/{review_id}#item-{quote(item_id)}", 303)

    @app.post("/ui/reviews/{review_id:int}/findings", include_in_schema=False)
    async def add_finding(request: Request, review_id: int) -> Response:
        session, form = await web.form(request, Role.ANALYST)
        reviews = store()
        try:
            alert_ids = [int(a) for a in _words(form.get("alerts", ""))]
            due = parse_due(form.get("due", ""), time.time())
        except (ValueError, UsageError) as exc:
            raise refused(ReviewError(str(exc))) from None
        try:
            await web.call(
                reviews.add_finding,
                review_id,
                session.name,
                form.get("text", ""),
                form.get("severity", "medium"),
                alert_ids=alert_ids,
                event_keys=_words(form.get("events", "")),
                owner=form.get("owner", "").strip() or None,
                due=due,
                item=form.get("item") or None,
            )
        except ReviewError as exc:
            raise refused(exc) from None
        return RedirectResponse(f"/ui/reviews/{review_id}#findings", 303)

    @app.post("/ui/reviews/{review_id:int}/signoff", include_in_schema=False)
    async def sign(request: Request, review_id: int) -> Response:
        session, form = await web.form(request, Role.ANALYST)
        reviews = store()
        try:
            await web.call(reviews.sign, review_id, session.name, form.get("statement", ""))
        except ReviewError as exc:
            raise refused(exc) from None
        return RedirectResponse(f"/ui/reviews/{review_id}?done={quote('Review signed off')}", 303)


def _words(text: str) -> list[str]:
    """Ids listed with commas, spaces or newlines."""
    return [word for word in text.replace(",", " ").split() if word]
