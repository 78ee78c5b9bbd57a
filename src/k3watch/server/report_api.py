"""``GET /api/v1/reviews/report``: the periodic security review report (viewer role), in the
formats of ``k3watch review report``. The JSON form is ``k3watch.review.model.Report``."""

# No "from __future__ import annotations": FastAPI reads the endpoint signature at runtime.

import time
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from k3watch.errors import UsageError
from k3watch.policy.profiles import PROFILES
from k3watch.review.render import MEDIA_TYPES, SUFFIXES, render
from k3watch.review.report import ReviewOptions, build_report
from k3watch.server.runtime import Runtime
from k3watch.server.tokens import Role
from k3watch.timespec import parse_end, parse_period

ReportFormat = Literal["json", "md", "html", "pdf"]


def router(runtime: Runtime) -> APIRouter:
    viewer = Depends(runtime.auth.require(Role.VIEWER))
    api = APIRouter(prefix="/api/v1")

    @api.get(
        "/reviews/report",
        tags=["reviews"],
        dependencies=[viewer],
        response_class=Response,
        responses={
            200: {
                "description": "The report; JSON: the Report structure of docs/reports.md",
                "content": {media: {} for media in MEDIA_TYPES.values()},
            },
            422: {"description": "A period, end or gap that cannot be read"},
        },
    )
    async def review_report(
        period: Annotated[str, Query(description="Length of the period: 24h, 7d, 30d")] = "7d",
        end: Annotated[
            str | None,
            Query(description="End of the period: RFC 3339, epoch seconds, now, or 1d (ago)"),
        ] = None,
        format: ReportFormat = "json",
        min_gap: Annotated[
            str, Query(description="Shortest silence of a node or source reported as a gap")
        ] = "10m",
        limit: Annotated[int, Query(ge=1, le=10_000, description="Items per list")] = 100,
        policy: Annotated[
            Literal["minimal", "recommended", "forensic"] | None,
            Query(description="A policy profile: list the rules it blinds"),
        ] = None,
    ) -> Response:
        """The security review of a period: alerts and triage, new identities and source IPs,
        RBAC changes, exec sessions, secrets read by people, denied requests, the audit
        pipeline's and the rules' health."""
        now = time.time()
        try:
            finish = parse_end(end, now, "end")
            options = ReviewOptions(
                start=finish - parse_period(period, "period"),
                end=finish,
                list_limit=limit,
                min_gap=parse_period(min_gap, "min_gap"),
                policy=policy if policy in PROFILES else None,
            )
        except (UsageError, ValueError) as exc:
            raise HTTPException(422, str(exc)) from None

        def build() -> bytes:
            report = build_report(runtime.store, options, ruleset=runtime.ruleset, now=now)
            return render(report, format)

        data = await run_in_threadpool(build)
        day = time.strftime("%Y-%m-%d", time.gmtime(options.end))
        headers = {"Content-Disposition": f'inline; filename="review-{day}{SUFFIXES[format]}"'}
        return Response(data, media_type=MEDIA_TYPES[format], headers=headers)

    return api
