"""The FastAPI application: ingest, query API, metrics and health, on one or two listeners.

With mutual TLS on (``server.tls.client_ca_file``), the ingest endpoints are served only by the
ingest listener, which requires client certificates; the main listener serves the rest.
"""

from typing import Any, Literal

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse, Response

from k3watch import __version__
from k3watch.server import api, ingest, report_api, review_api
from k3watch.server.metrics import render
from k3watch.server.runtime import Runtime
from k3watch.server.tokens import Role
from k3watch.web.app import install as install_web

Surface = Literal["all", "api", "ingest"]
OPENAPI_PATH = "/api/v1/openapi.json"


def create_app(runtime: Runtime, surface: Surface = "all") -> FastAPI:
    """The application for a listener: ``all`` endpoints, the ``api`` without ingest, or only
    ``ingest``."""
    app = FastAPI(
        title="k3watch",
        version=__version__,
        description="Security monitoring for K3s clusters: ingest, search, alerts, triage.",
        openapi_url=None,  # served below, behind a token
        docs_url=None,  # the interactive pages load scripts from a CDN: not on air-gapped sites
        redoc_url=None,
    )
    viewer = runtime.auth.require(Role.VIEWER)

    @app.get("/healthz", tags=["health"], include_in_schema=surface != "ingest")
    def healthz() -> dict[str, str]:
        """Liveness: the process answers (no token needed)."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz() -> JSONResponse:
        """Readiness: the ingest thread runs and its queue has room (no token needed)."""
        pipeline = runtime.pipeline
        problems = []
        if not pipeline.alive:
            problems.append("ingest thread not running")
        if pipeline.queued_events >= pipeline.queue_events:
            problems.append("ingest queue full")
        body: dict[str, Any] = {
            "status": "ok" if not problems else "unavailable",
            "queued_events": pipeline.queued_events,
            "problems": problems,
        }
        return JSONResponse(body, status_code=503 if problems else 200)

    if surface in ("all", "ingest"):
        app.include_router(ingest.router(runtime))
    if surface in ("all", "api"):
        app.include_router(api.router(runtime))
        app.include_router(report_api.router(runtime))
        app.include_router(review_api.router(runtime))

        @app.get("/metrics", tags=["health"], dependencies=[Depends(viewer)])
        def metrics() -> Response:
            """Prometheus metrics (a viewer token: ``bearer_token`` in the scrape config)."""
            return Response(render(runtime), media_type="text/plain; version=0.0.4")

        if runtime.config.server.web.enabled:
            install_web(app, runtime)

        @app.get(OPENAPI_PATH, include_in_schema=False, dependencies=[Depends(viewer)])
        def openapi() -> JSONResponse:
            return JSONResponse(app.openapi())

    return app
