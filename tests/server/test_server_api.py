"""The query API: roles, triage, silences, rules, stats, metrics, OpenAPI, health."""

from __future__ import annotations

import httpx
import pytest
from tests.server.conftest import Running, StartServer
from tests.server.test_server_ingest import attack_day, lines

from k3watch.client import ApiError


def with_attacks(start_server: StartServer) -> Running:
    running = start_server()
    with running.client("agent") as agent:
        agent.ingest(lines(attack_day()[0]), batch="attacks")
    return running


def get(running: Running, path: str, role: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {running.tokens[role]}"} if role else {}
    return httpx.get(f"{running.url}{path}", headers=headers)


@pytest.mark.parametrize(
    ("path", "role", "status"),
    [
        ("/api/v1/events", None, 401),
        ("/api/v1/events", "agent", 403),
        ("/api/v1/events", "viewer", 200),
        ("/api/v1/tokens", "analyst", 403),
        ("/api/v1/tokens", "admin", 200),
        ("/metrics", None, 401),
        ("/metrics", "viewer", 200),
        ("/api/v1/openapi.json", None, 401),
        ("/healthz", None, 200),
        ("/readyz", None, 200),
    ],
)
def test_every_endpoint_but_health_needs_a_token_with_the_right_role(
    start_server: StartServer, path: str, role: str | None, status: int
) -> None:
    running = start_server()
    assert get(running, path, role).status_code == status


def test_a_wrong_token_is_refused(start_server: StartServer) -> None:
    running = start_server()
    headers = {"Authorization": "Bearer k3w_" + "x" * 43}
    response = httpx.get(f"{running.url}/api/v1/alerts", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_a_viewer_cannot_triage_and_an_analyst_can(start_server: StartServer) -> None:
    running = with_attacks(start_server)
    alert = running.client("viewer").alerts()["alerts"][0]
    with pytest.raises(ApiError) as refused:
        running.client("viewer").act(alert["id"], "ack", "mine")
    assert refused.value.status == 403
    analyst = running.client("analyst")
    acked = analyst.act(alert["id"], "ack", "looking into it")
    assert acked["status"] == "acknowledged"
    assigned = analyst.act(alert["id"], "assign", "", "bob")
    resolved = analyst.act(alert["id"], "resolve", "was the CI job")
    assert assigned["assignee"] == "bob"
    assert resolved["status"] == "resolved"
    history = analyst.alert(alert["id"])["history"]
    assert [h["action"] for h in history][-3:] == ["ack", "assign", "resolve"]
    assert history[-3]["actor"] == "test-analyst" and history[-3]["note"] == "looking into it"


def test_alerts_filter_by_status_and_severity(start_server: StartServer) -> None:
    running = with_attacks(start_server)
    client = running.client()
    every = client.alerts(limit=500)["alerts"]
    client.act(every[0]["id"], "false_positive", "known tool")
    fps = client.alerts(status="false_positive")["alerts"]
    assert [a["id"] for a in fps] == [every[0]["id"]]
    severity = every[0]["severity"]
    assert all(a["severity"] == severity for a in client.alerts(severity=severity)["alerts"])


def test_a_silence_hides_new_alerts_from_delivery_but_they_are_stored(
    start_server: StartServer,
) -> None:
    running = start_server()
    analyst = running.client("analyst")
    silence = analyst.add_silence(["cluster=test"], "1h", "maintenance window")
    assert silence["active"] is True
    with running.client("agent") as agent:
        agent.ingest(lines(attack_day()[0]), batch="during-silence")
    alerts = analyst.alerts(limit=500)["alerts"]
    assert alerts and all(a["silenced_by"] == silence["id"] for a in alerts)
    assert running.delivered() == []
    expired = analyst.expire_silence(silence["id"])
    assert expired["active"] is False
    assert analyst.silences(active=True) == []


def test_a_bad_matcher_is_a_422(start_server: StartServer) -> None:
    running = start_server()
    with pytest.raises(ApiError) as bad:
        running.client("analyst").add_silence(["rule_id=~("], "1h", "x")
    assert bad.value.status == 422


def test_rules_list_hit_counts(start_server: StartServer) -> None:
    running = with_attacks(start_server)
    assert not any(r["alerts"] for r in running.client().rules(since="1h"))  # the sample is old
    rules = running.client().rules(since="3650d")
    assert len(rules) > 100
    fired = [r for r in rules if r["alerts"]]
    assert fired and all(r["last_seen"] for r in fired)


def test_stats_count_events_per_bucket_and_field(start_server: StartServer) -> None:
    running = with_attacks(start_server)
    total = len(attack_day()[0])
    per_hour = running.client().stats(start="3650d", bucket="1h")
    assert sum(b["count"] for b in per_hour["buckets"]) == total
    by_verb = running.client().stats(start="3650d", bucket="", by="verb")
    assert sum(b["count"] for b in by_verb["buckets"]) == total
    assert per_hour["alerts_by_status"].get("open", 0) > 0


def test_metrics_show_ingest_and_alert_counters(start_server: StartServer) -> None:
    running = with_attacks(start_server)
    text = get(running, "/metrics", "viewer").text
    assert "k3watch_ingest_stored_total" in text
    assert "k3watch_ingest_queue_events" in text
    assert 'k3watch_alerts_total{rule_id="' in text
    assert "k3watch_rule_evaluation_seconds_total" in text


def test_the_openapi_document_is_served_under_api_v1(start_server: StartServer) -> None:
    running = start_server()
    document = get(running, "/api/v1/openapi.json", "viewer").json()
    paths = set(document["paths"])
    assert {"/api/v1/ingest", "/k8s-audit", "/api/v1/events", "/api/v1/alerts"} <= paths
    assert "HTTPBearer" in document["components"]["securitySchemes"]


def test_tokens_are_managed_through_the_api(start_server: StartServer) -> None:
    running = start_server()
    headers = {"Authorization": f"Bearer {running.tokens['admin']}"}
    created = httpx.post(
        f"{running.url}/api/v1/tokens",
        json={"name": "node-7", "role": "agent"},
        headers=headers,
    )
    assert created.status_code == 201
    secret = created.json()["secret"]
    ok = httpx.post(
        f"{running.url}/api/v1/ingest?batch=t",
        content=b"\n".join(lines(attack_day()[1][:1])),
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert ok.status_code == 200
    revoked = httpx.delete(f"{running.url}/api/v1/tokens/node-7", headers=headers)
    assert revoked.json()["revoked"] is True
    running.runtime.tokens.cache_ttl = 0
    refused = httpx.post(
        f"{running.url}/api/v1/ingest?batch=t2",
        content=b"{}",
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert refused.status_code == 401


def test_event_search_pages_with_a_cursor(start_server: StartServer) -> None:
    running = start_server()
    events = attack_day()[1][:120]
    with running.client("agent") as agent:
        agent.ingest(lines(events), batch="p")
    client = running.client()
    seen: list[str] = []
    cursor = None
    while True:
        page = client.search(start="3650d", limit=50, cursor=cursor)
        seen.extend(e["key"] for e in page["events"])
        cursor = page["cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 120
