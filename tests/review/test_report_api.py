"""``GET /api/v1/reviews/report`` on a real server, and the rejected input the server's ingest
pipeline counts for the report's pipeline health."""

from __future__ import annotations

import time

import httpx
import orjson
from tests.server import conftest as server_conftest
from tests.server.conftest import StartServer

from k3watch.review.model import from_json
from k3watch.sample import generate_events

start_server = server_conftest.start_server  # the real server fixture of tests/server


def _get(url: str, token: str, **params: str) -> httpx.Response:
    return httpx.get(
        f"{url}/api/v1/reviews/report",
        params=params,
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )


def test_rejected_input_is_counted_per_node_and_reason(start_server: StartServer) -> None:
    running = start_server()
    good = [orjson.dumps(e) for e in generate_events(days=0.01, seed=5, attacks=False)][:3]
    body = b"\n".join([good[0], b"{not json", good[1], b"[1, 2]", good[2], b"{also not"])
    response = httpx.post(
        f"{running.url}/api/v1/ingest",
        params={"batch": "bad", "node": "server-7"},
        content=body,
        headers={"Authorization": f"Bearer {running.tokens['agent']}"},
    )
    rejected = response.json()["rejected"]
    assert rejected >= 3
    now = time.time()
    errors = running.runtime.store.ingest_errors(now - 3600, now + 3600)
    assert sum(e.count for e in errors) == rejected
    assert {(e.node, e.source) for e in errors} == {("server-7", "audit")}
    again = httpx.post(  # the same batch sent again: counted once
        f"{running.url}/api/v1/ingest",
        params={"batch": "bad", "node": "server-7"},
        content=body,
        headers={"Authorization": f"Bearer {running.tokens['agent']}"},
    )
    assert again.json()["rejected"] == rejected
    errors = running.runtime.store.ingest_errors(now - 3600, now + 3600)
    assert sum(e.count for e in errors) == rejected
    report = from_json(_get(running.url, running.tokens["viewer"], period="1d").content)
    assert report.pipeline.ingest_errors_total == rejected


def test_the_report_in_every_format_for_a_viewer(start_server: StartServer) -> None:
    running = start_server()
    viewer = running.tokens["viewer"]
    json = _get(running.url, viewer, period="2d", end="now", min_gap="30m", limit="5")
    assert json.status_code == 200
    assert json.headers["content-type"] == "application/json"
    report = from_json(json.content)
    assert report.period.days == 2
    assert report.pipeline.min_gap == 1800
    html = _get(running.url, viewer, format="html")
    assert html.headers["content-type"].startswith("text/html")
    assert html.text.startswith("<!doctype html>")
    assert _get(running.url, viewer, format="md").text.startswith("# Security review")
    pdf = _get(running.url, viewer, format="pdf")
    assert pdf.content.startswith(b"%PDF-")
    assert 'filename="review-' in pdf.headers["content-disposition"]
    blinded = from_json(_get(running.url, viewer, policy="minimal").content)
    assert blinded.rules.blinded is not None and blinded.rules.policy == "minimal"


def test_bad_parameters_and_missing_tokens_are_refused(start_server: StartServer) -> None:
    running = start_server()
    viewer = running.tokens["viewer"]
    assert _get(running.url, viewer, period="soon").status_code == 422
    assert _get(running.url, viewer, end="yesterday-ish").status_code == 422
    assert _get(running.url, viewer, min_gap="10s").status_code == 422
    assert _get(running.url, viewer, format="docx").status_code == 422
    assert _get(running.url, viewer, policy="/etc/passwd").status_code == 422
    assert _get(running.url, "not-a-token").status_code == 401
