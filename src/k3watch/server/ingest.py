"""The ingest endpoints: batches from agents (``/api/v1/ingest``) and the API server's audit
webhook (``/k8s-audit``). Both wait until their events are stored, so a 200 means durable; a
full queue or a slow store answers 503 with ``Retry-After`` and the sender retries (safely: a
retried batch stores nothing twice).
"""

# No "from __future__ import annotations": FastAPI reads the endpoint signatures at runtime,
# and their dependencies are local to router().

import asyncio
import hashlib
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from k3watch.config import parse_size
from k3watch.rules.extension import parse_duration
from k3watch.server.pipeline import Request as IngestRequest
from k3watch.server.prepare import ENCODINGS, Outcome
from k3watch.server.runtime import Runtime
from k3watch.server.tokens import Role, TokenInfo

BATCH_ID = r"^[A-Za-z0-9._:-]{1,128}$"
LABEL = r"^[A-Za-z0-9._:@/-]{0,253}$"


class RejectedItem(BaseModel):
    reason: str
    location: str
    message: str


class IngestResult(BaseModel):
    """How many events of the batch were stored now, were stored before (a retry), or could
    not be read (with the first reasons)."""

    batch: str
    accepted: int
    duplicates: int
    rejected: int
    truncated: int
    alerts: int
    errors: list[RejectedItem]


class Busy(BaseModel):
    detail: str


def router(runtime: Runtime) -> APIRouter:
    limits = runtime.config.server.limits
    max_body = parse_size(limits.max_body)
    wait = parse_duration(limits.wait)
    agent = runtime.auth.require(Role.AGENT)
    busy_responses: dict[int | str, dict[str, object]] = {
        503: {"model": Busy, "description": "Queue full or store slow: retry later"},
        429: {"model": Busy, "description": "Rate limit of this token exceeded"},
        413: {"model": Busy, "description": "Body over server.limits.max_body"},
    }
    api = APIRouter()

    async def run(
        body: bytes,
        encoding: str,
        token: TokenInfo,
        *,
        batch: str,
        cluster: str,
        node: str,
        source: str,
        fmt: Literal["audit", "log"],
    ) -> JSONResponse:
        delay = runtime.limiter.allow(token.id)
        if delay:
            runtime.pipeline.counters.inc("refused", reason="rate_limit")
            return _busy(429, f"rate limit of token {token.name!r} exceeded", delay)
        runtime.pipeline.counters.inc("bytes", len(body))
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()

        def done(outcome: Outcome) -> None:
            loop.call_soon_threadsafe(_settle, future, outcome)

        request = IngestRequest(body, cluster, node, source, batch, fmt, done, encoding)
        queued = runtime.pipeline.submit(request)
        if not queued:
            return _busy(503, "ingest queue full; retry with the same batch", 5)
        try:
            outcome = await asyncio.wait_for(asyncio.shield(future), wait)
        except TimeoutError:
            return _busy(503, "events not stored in time; retry with the same batch", 5)
        if outcome.refused is not None:
            raise HTTPException(*outcome.refused)
        if outcome.failed:
            raise HTTPException(500, f"the batch could not be stored: {outcome.failed}")
        result = IngestResult(
            batch=batch,
            accepted=outcome.accepted,
            duplicates=outcome.duplicates,
            rejected=outcome.rejected,
            truncated=outcome.truncated,
            alerts=outcome.alerts,
            errors=[
                RejectedItem(reason=e.reason, location=e.location, message=e.message)
                for e in outcome.errors
            ],
        )
        return JSONResponse(result.model_dump())

    @api.post(
        "/api/v1/ingest",
        response_model=IngestResult,
        responses=busy_responses,
        tags=["ingest"],
        summary="Store a batch of events from an agent",
    )
    async def ingest(
        request: Request,
        token: Annotated[TokenInfo, Depends(agent)],
        batch: Annotated[str, Query(pattern=BATCH_ID, description="Batch id; a retry reuses it")],
        node: Annotated[str, Query(pattern=LABEL)] = "",
        cluster: Annotated[str, Query(pattern=LABEL)] = "",
        source: Annotated[str, Query(pattern=LABEL)] = "audit",
        format: Annotated[
            Literal["audit", "log"],
            Query(description="audit: Kubernetes audit events; log: one JSON object per line"),
        ] = "audit",
    ) -> JSONResponse:
        """Body: JSON lines or a JSON array (``gzip`` or ``zstd`` Content-Encoding allowed).
        Audit events are identified by ``auditID`` and ``stage``, others by their ``_key``
        field, so a retried batch stores nothing twice."""
        return await run(
            *await read_body(request, max_body),
            token,
            batch=batch,
            cluster=cluster or runtime.config.server.cluster,
            node=node,
            source=source,
            fmt=format,
        )

    @api.post(
        "/k8s-audit",
        response_model=IngestResult,
        responses=busy_responses,
        tags=["ingest"],
        summary="The Kubernetes API server's audit webhook (an EventList)",
    )
    async def webhook(
        request: Request,
        token: Annotated[TokenInfo, Depends(agent)],
        node: Annotated[str, Query(pattern=LABEL)] = "",
        cluster: Annotated[str, Query(pattern=LABEL)] = "",
    ) -> JSONResponse:
        """Point ``--audit-webhook-config-file`` here (with an agent token in the kubeconfig);
        ``cluster`` and ``node`` name the sender."""
        body, encoding = await read_body(request, max_body)
        body_hash = hashlib.sha256(body).hexdigest()[:32]
        return await run(
            body,
            encoding,
            token,
            batch=f"webhook-{body_hash}",
            cluster=cluster or runtime.config.server.cluster,
            node=node,
            source="audit",
            fmt="audit",
        )

    return api


def _settle(future: asyncio.Future[Outcome], outcome: Outcome) -> None:
    if not future.done():
        future.set_result(outcome)


def _busy(status: int, detail: str, retry_after: float) -> JSONResponse:
    return JSONResponse(
        {"detail": detail},
        status_code=status,
        headers={"Retry-After": str(max(1, round(retry_after)))},
    )


async def read_body(request: Request, max_body: int) -> tuple[bytes, str]:
    """The request body as sent (refused, 413, past ``max_body`` bytes) and its
    ``Content-Encoding`` (refused, 415, unless one the server decodes); the ingest workers
    decompress it, to the same limit."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower() or "identity"
    if encoding not in ENCODINGS:
        raise HTTPException(415, f"unsupported Content-Encoding {encoding!r}")
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > max_body:
        raise HTTPException(413, f"body over the {max_body}-byte limit")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_body:
            raise HTTPException(413, f"body over the {max_body}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks), encoding
