"""Ingest through HTTP: idempotent batches, the audit webhook, bad input, limits, detection."""

from __future__ import annotations

import functools
import gzip
import threading
from typing import Any

import httpx
import orjson
import pytest
import zstandard
from tests.server.conftest import StartServer

from k3watch.sample import generate_tagged_events
from k3watch.server.config import LimitsConfig
from k3watch.server.pipeline import Request
from k3watch.server.prepare import Outcome


@functools.cache
def attack_day() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(attack events, background events) of a generated day with the attacks in it."""
    attacks, background = [], []
    for event, scenario in generate_tagged_events(days=1.0, seed=3):
        (attacks if scenario else background).append(event)
    return attacks, background


def lines(events: list[dict[str, Any]]) -> list[bytes]:
    return [orjson.dumps(e) for e in events]


def post(url: str, token: str, body: bytes, **params: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    if "encoding" in params:
        headers["Content-Encoding"] = params.pop("encoding")
    return httpx.post(f"{url}/api/v1/ingest", params=params, content=body, headers=headers)


def test_a_batch_is_stored_and_a_retry_stores_nothing_twice(start_server: StartServer) -> None:
    running = start_server()
    events = attack_day()[1][:300]
    with running.client("agent") as agent:
        first = agent.ingest(lines(events), batch="b-1", node="server-1")
        again = agent.ingest(lines(events), batch="b-1", node="server-1")
        other_id = agent.ingest(lines(events[:10]), batch="b-2", node="server-1")
    assert (first["accepted"], first["duplicates"], first["rejected"]) == (300, 0, 0)
    assert (again["accepted"], again["duplicates"]) == (0, 300)
    assert (other_id["accepted"], other_id["duplicates"]) == (0, 10)
    assert running.runtime.store.stats().events == 300


def test_attacks_raise_alerts_that_are_stored_and_delivered(start_server: StartServer) -> None:
    running = start_server()
    attacks, background = attack_day()
    stream = sorted(attacks + background[:2000], key=lambda e: e["requestReceivedTimestamp"])
    with running.client("agent") as agent:
        for start in range(0, len(stream), 500):
            result = agent.ingest(lines(stream[start : start + 500]), batch=f"b{start}")
            assert result["rejected"] == 0
    with running.client("viewer") as viewer:
        alerts = viewer.alerts(limit=500)["alerts"]
    titles = {a["title"] for a in alerts}
    assert len(alerts) >= 5
    assert any("exec" in t.lower() for t in titles), titles
    assert all(a["cluster"] == "test" and a["status"] == "open" for a in alerts)
    delivered = running.delivered()
    assert {d["fingerprint"] for d in delivered if not d.get("update")} <= {
        a["fingerprint"] for a in alerts
    }
    assert delivered, "the JSON-lines destination received nothing"


def test_retried_batches_never_raise_an_alert_twice(start_server: StartServer) -> None:
    running = start_server()
    attacks = attack_day()[0]
    with running.client("agent") as agent:
        agent.ingest(lines(attacks), batch="attacks")
        before = {
            a["fingerprint"]: a["count"] for a in running.client().alerts(limit=500)["alerts"]
        }
        agent.ingest(lines(attacks), batch="attacks-retry-under-a-new-id")
    after = {a["fingerprint"]: a["count"] for a in running.client().alerts(limit=500)["alerts"]}
    assert before and before == after


def test_the_audit_webhook_takes_an_event_list(start_server: StartServer) -> None:
    running = start_server()
    events = attack_day()[1][:50]
    body = orjson.dumps({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": events})
    headers = {"Authorization": f"Bearer {running.tokens['agent']}"}
    response = httpx.post(f"{running.url}/k8s-audit?node=server-1", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 50
    again = httpx.post(f"{running.url}/k8s-audit?node=server-1", content=body, headers=headers)
    assert again.json()["duplicates"] == 50
    page = running.client().search(node="server-1", start="3650d", limit=5)
    assert page["events"] and page["events"][0]["node"] == "server-1"


@pytest.mark.parametrize("encoding", ["gzip", "zstd", "identity"])
def test_compressed_bodies_are_accepted(start_server: StartServer, encoding: str) -> None:
    running = start_server()
    body = b"\n".join(lines(attack_day()[1][:20]))
    if encoding == "gzip":
        body = gzip.compress(body)
    elif encoding == "zstd":
        body = zstandard.ZstdCompressor().compress(body)
    response = post(running.url, running.tokens["agent"], body, batch="c", encoding=encoding)
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 20


def test_a_corrupt_compressed_body_is_a_400(start_server: StartServer) -> None:
    running = start_server()
    response = post(running.url, running.tokens["agent"], b"not gzip", batch="c", encoding="gzip")
    assert response.status_code == 400
    assert "decompress" in response.json()["detail"]


def test_bad_lines_are_rejected_with_locations_and_the_rest_stored(
    start_server: StartServer,
) -> None:
    running = start_server()
    good = lines(attack_day()[1][:3])
    body = b"\n".join([good[0], b"{not json", good[1], b"[1, 2]", b"\xff\xfe{}", good[2]])
    response = post(running.url, running.tokens["agent"], body, batch="bad")
    result = response.json()
    assert response.status_code == 200
    assert result["accepted"] == 3
    assert result["rejected"] >= 2
    assert all(error["location"].startswith("audit:") for error in result["errors"])
    assert {e["reason"] for e in result["errors"]} & {"invalid_json", "not_an_object"}


def test_an_oversize_event_is_stored_truncated(start_server: StartServer) -> None:
    running = start_server(limits=LimitsConfig(max_event_size="4KiB"))
    event = dict(attack_day()[1][0])
    event["requestObject"] = {"kind": "ConfigMap", "data": {"big": "x" * 10_000}}
    response = post(running.url, running.tokens["agent"], orjson.dumps(event), batch="big")
    assert response.json()["truncated"] == 1
    assert response.json()["accepted"] == 1
    stored = running.client().event(f"{event['auditID']}/{event['stage']}")
    assert stored["truncated"] is True
    assert "requestObject" not in stored["event"]


def test_a_body_over_the_limit_is_refused(start_server: StartServer) -> None:
    running = start_server(limits=LimitsConfig(max_body="64KiB"))
    body = b"\n".join(lines(attack_day()[1][:400]))
    assert len(body) > 64 * 1024
    response = post(running.url, running.tokens["agent"], body, batch="huge")
    assert response.status_code == 413
    packed = gzip.compress(body)
    response = post(running.url, running.tokens["agent"], packed, batch="huge", encoding="gzip")
    assert response.status_code == 413


def test_secrets_are_redacted_before_storage(start_server: StartServer) -> None:
    running = start_server()
    event = dict(attack_day()[1][0])
    event.update(
        auditID="6d1d3a68-8a4e-4c2f-9a57-1f4d3c0e5b11",
        verb="create",
        objectRef={"resource": "secrets", "namespace": "shop", "name": "db", "apiVersion": "v1"},
        requestObject={
            "kind": "Secret",
            "apiVersion": "v1",
            "metadata": {"name": "db"},
            "stringData": {"password": "hunter2-very-secret"},
        },
    )
    post(running.url, running.tokens["agent"], orjson.dumps(event), batch="secret")
    stored = running.client().event(event["auditID"])
    assert stored["event"]["requestObject"]["stringData"]["password"] != "hunter2-very-secret"
    database = (running.data_dir / "events.sqlite").read_bytes()
    running.runtime.store.close()
    assert b"hunter2-very-secret" not in database


def test_a_full_queue_answers_503_with_retry_after(start_server: StartServer) -> None:
    running = start_server(limits=LimitsConfig(queue_events=10, wait="1s"))
    pipeline = running.runtime.pipeline
    stuck = threading.Event()
    process = pipeline.process

    def slow_store(request: Request) -> Outcome:
        stuck.wait(30)  # the store does not keep up: nothing drains the queue meanwhile
        return process(request)

    pipeline.process = slow_store  # type: ignore[method-assign]
    try:
        body = b"\n".join(lines(attack_day()[1][:5]))
        slow = post(running.url, running.tokens["agent"], body, batch="q1")
        assert slow.status_code == 503 and "Retry-After" in slow.headers
        full = post(running.url, running.tokens["agent"], body * 3, batch="q2")
        assert full.status_code == 503
        assert "queue full" in full.json()["detail"]
        assert pipeline.counters.get("refused", "queue_full") > 0
    finally:
        stuck.set()


def test_each_token_is_rate_limited(start_server: StartServer) -> None:
    running = start_server(limits=LimitsConfig(requests_per_second=0.5))
    body = b"\n".join(lines(attack_day()[1][:2]))
    statuses = [
        post(running.url, running.tokens["agent"], body, batch=f"r{i}").status_code
        for i in range(3)
    ]
    assert statuses[0] == 200
    assert 429 in statuses
    other = post(running.url, running.tokens["admin"], body, batch="r-admin")
    assert other.status_code == 200


def test_events_are_searchable_right_after_ingest(start_server: StartServer) -> None:
    running = start_server()
    events = attack_day()[1][:200]
    user = events[0]["user"]["username"]
    with running.client("agent") as agent:
        agent.ingest(lines(events), batch="s")
    page = running.client("viewer").search(user=user, start="3650d", limit=1000)
    expected = sum(1 for e in events if e["user"]["username"] == user)
    assert len(page["events"]) == expected


def test_log_records_are_identified_by_node_source_and_key(start_server: StartServer) -> None:
    running = start_server()
    records = [
        {
            "kind": "k3watch.log/v1",
            "time": f"2026-03-02T10:00:0{i}Z",
            "message": f"line {i}",
            "_key": f"/var/log/k3s.log@{i * 100}",
        }
        for i in range(3)
    ]
    body = b"\n".join(orjson.dumps(r) for r in records)
    token = running.tokens["agent"]
    first = post(running.url, token, body, batch="l1", node="a", source="k3s", format="log")
    retry = post(running.url, token, body, batch="l2", node="a", source="k3s", format="log")
    other = post(running.url, token, body, batch="l3", node="b", source="k3s", format="log")
    assert first.json()["accepted"] == 3
    assert retry.json()["duplicates"] == 3
    assert other.json()["accepted"] == 3  # the same offsets on another node are other lines
    page = running.client().search(node="b", q="line", start="3650d")
    assert sorted(e["event"]["message"] for e in page["events"]) == ["line 0", "line 1", "line 2"]
