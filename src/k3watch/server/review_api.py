"""The review API under ``/api/v1/reviews``: schedules and their status, review records, the
checklist, findings, sign-off and the auditor's export. Reading needs the viewer role; opening,
changing and signing off a review the analyst role. Whoever acts is the token's name."""

# No "from __future__ import annotations": FastAPI reads the endpoint signatures at runtime.

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, Field

from k3watch.errors import UsageError
from k3watch.review.signoff_export import EXPORT_FORMATS, MEDIA_TYPES, build_export, render_export
from k3watch.review.signoff_model import Review, ReviewError
from k3watch.review.store import ReviewStore
from k3watch.server.api import parse_when
from k3watch.server.runtime import Runtime
from k3watch.server.tokens import Role, TokenInfo
from k3watch.timespec import parse_due

_STATUS = {"not_found": 404, "conflict": 409, "invalid": 422}


class ChecklistItemOut(BaseModel):
    id: str
    text: str
    section: str | None


class ScheduleOut(BaseModel):
    name: str
    period: str = Field(description="1d, 7d (ISO week), 30d (calendar month) or 90d (quarter)")
    grace_seconds: float
    severity: str
    description: str
    checklist: list[ChecklistItemOut]
    tracked_since: str
    current_period: str
    last_signed_period: str | None
    last_signed_review: int | None
    open_reviews: list[int]
    next_due: str
    overdue: bool
    overdue_periods: list[str]


class ItemOut(BaseModel):
    id: str
    text: str
    section: str | None
    state: Literal["pending", "done", "not_applicable", "issue"]
    note: str
    actor: str | None
    at: str | None


class FindingOut(BaseModel):
    id: int
    text: str
    severity: str
    alert_ids: list[int]
    event_keys: list[str]
    owner: str | None
    due: str | None
    item: str | None
    actor: str
    at: str


class ChangeOut(BaseModel):
    at: str
    actor: str
    action: str
    subject: str
    detail: str


class SignOffOut(BaseModel):
    reviewer: str
    at: str
    statement: str
    seq: int = Field(description="Position in the chain of signed reviews")
    prev: str
    hash: str


class ReviewOut(BaseModel):
    id: int
    schedule: str
    period: str
    period_start: str
    period_end: str
    description: str
    state: Literal["open", "signed"]
    opened_by: str
    opened_at: str
    items: list[ItemOut]
    findings: list[FindingOut]
    history: list[ChangeOut]
    signoff: SignOffOut | None


class OpenIn(BaseModel):
    schedule: str
    period: str | None = Field(
        None,
        description="The period's label (2024-05-13, 2024-W20, 2024-05, 2024-Q2) or a time in "
        "it; the last ended period when empty",
    )


class ItemIn(BaseModel):
    state: Literal["pending", "done", "not_applicable", "issue"]
    note: str = Field("", description="Needed for not_applicable and issue")


class FindingIn(BaseModel):
    text: str = Field(min_length=1)
    severity: Literal["informational", "low", "medium", "high", "critical"]
    alert_ids: list[int] = []
    event_keys: list[str] = []
    owner: str | None = Field(None, description="Who follows it up")
    due: str | None = Field(None, description="By when: RFC 3339, or a duration from now (7d)")
    item: str | None = Field(None, description="The checklist item it was found under")


class SignIn(BaseModel):
    statement: str = Field(min_length=1, description="The reviewer's closing statement")


class ChainOut(BaseModel):
    ok: bool
    signed: int
    head: str
    problem: dict[str, Any] | None


def review_out(review: Review) -> ReviewOut:
    return ReviewOut.model_validate(review.to_dict())


def _refused(exc: ReviewError) -> HTTPException:
    return HTTPException(_STATUS.get(exc.kind, 422), str(exc))


def _due(text: str | None) -> float | None:
    """A duration from now (``7d``), a date, RFC 3339 or epoch seconds; 422 otherwise."""
    try:
        return parse_due(text, time.time())
    except UsageError as exc:
        raise HTTPException(422, str(exc)) from None


def router(runtime: Runtime) -> APIRouter:
    viewer = Depends(runtime.auth.require(Role.VIEWER))
    analyst = runtime.auth.require(Role.ANALYST)
    api = APIRouter(prefix="/api/v1/reviews", tags=["reviews"])

    def reviews() -> ReviewStore:
        if runtime.reviews is None:
            raise HTTPException(503, "reviews are not available on this server")
        return runtime.reviews

    async def call(function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await run_in_threadpool(function, *args, **kwargs)
        except ReviewError as exc:
            raise _refused(exc) from None

    @api.get("/schedules", response_model=list[ScheduleOut], dependencies=[viewer])
    async def schedules() -> list[ScheduleOut]:
        """Each schedule with its checklist, last signed period, next due time and whether it
        is overdue."""
        found = await call(reviews().status)
        return [ScheduleOut.model_validate(s.to_dict()) for s in found]

    @api.get("/verify", response_model=ChainOut, dependencies=[viewer])
    async def verify() -> ChainOut:
        """Walk the hash chain of signed reviews; name the first one altered, removed or
        reordered."""
        check = await call(reviews().verify)
        return ChainOut.model_validate(check.to_dict())

    @api.get("/export", dependencies=[viewer])
    async def export(
        format: Annotated[Literal["json", "md", "csv"], Query()] = "json",
        since: str | None = None,
    ) -> Response:
        """The record for auditors: schedules, reviews with items, findings, sign-off and
        hash, and the chain's verification (json, md or csv)."""
        assert format in EXPORT_FORMATS
        record = await call(build_export, reviews(), since=parse_when(since))
        body = render_export(record, format)
        return Response(body, media_type=MEDIA_TYPES[format])

    @api.get("", response_model=list[ReviewOut], dependencies=[viewer])
    async def list_reviews(
        schedule: str | None = None,
        state: Literal["open", "signed"] | None = None,
        since: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[ReviewOut]:
        """Reviews, newest period first."""
        found = await call(
            reviews().list, schedule=schedule, state=state, since=parse_when(since), limit=limit
        )
        return [review_out(r) for r in found]

    @api.get("/{review_id:int}", response_model=ReviewOut, dependencies=[viewer])
    async def get_review(review_id: int) -> ReviewOut:
        review = await call(reviews().get, review_id)
        if review is None:
            raise HTTPException(404, f"no review {review_id}")
        return review_out(review)

    @api.post("", response_model=ReviewOut, status_code=201)
    async def open_review(body: OpenIn, token: Annotated[TokenInfo, Depends(analyst)]) -> ReviewOut:
        """Open the review of a schedule's period (409 when one is already open)."""
        review = await call(reviews().open, body.schedule, token.name, period=body.period)
        return review_out(review)

    @api.put("/{review_id:int}/items/{item_id}", response_model=ReviewOut)
    async def set_item(
        review_id: int, item_id: str, body: ItemIn, token: Annotated[TokenInfo, Depends(analyst)]
    ) -> ReviewOut:
        """Record a checklist item as done, not applicable or issue found (or pending)."""
        review = await call(
            reviews().set_item, review_id, item_id, body.state, token.name, note=body.note
        )
        return review_out(review)

    @api.post("/{review_id:int}/findings", response_model=ReviewOut, status_code=201)
    async def add_finding(
        review_id: int,
        body: FindingIn,
        token: Annotated[TokenInfo, Depends(analyst)],
    ) -> ReviewOut:
        """Record a finding; linked alerts must exist."""
        review = await call(
            reviews().add_finding,
            review_id,
            token.name,
            body.text,
            body.severity,
            alert_ids=body.alert_ids,
            event_keys=body.event_keys,
            owner=body.owner,
            due=_due(body.due),
            item=body.item,
        )
        return review_out(review)

    @api.post("/{review_id:int}/signoff", response_model=ReviewOut)
    async def sign_off(
        review_id: int, body: SignIn, token: Annotated[TokenInfo, Depends(analyst)]
    ) -> ReviewOut:
        """Sign the review off: it becomes immutable and joins the hash chain."""
        review = await call(reviews().sign, review_id, token.name, body.statement)
        return review_out(review)

    return api
