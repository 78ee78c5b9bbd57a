"""The review API on a real server: viewers read schedules, reviews and the export; analysts
open reviews, walk the checklist, record findings and sign off, as the token's name."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.review.test_review_overdue import DAY, Server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = Server(tmp_path, time.time() - 3 * DAY)
    yield running
    running.server.stop()


def test_a_viewer_reads_but_cannot_open_change_or_sign_off(server: Server) -> None:
    with server.http("analyst") as analyst:
        review = analyst.post("/api/v1/reviews", json={"schedule": "daily"}).json()
    with server.http("viewer") as viewer:
        (daily,) = viewer.get("/api/v1/reviews/schedules").json()
        assert (daily["name"], daily["period"], daily["overdue"]) == ("daily", "1d", True)
        assert daily["open_reviews"] == [review["id"]]
        assert viewer.get(f"/api/v1/reviews/{review['id']}").json()["state"] == "open"
        refused = [
            viewer.post("/api/v1/reviews", json={"schedule": "daily", "period": "2020-01-01"}),
            viewer.put(f"/api/v1/reviews/{review['id']}/items/pipeline", json={"state": "done"}),
            viewer.post(
                f"/api/v1/reviews/{review['id']}/findings",
                json={"text": "x", "severity": "low"},
            ),
            viewer.post(f"/api/v1/reviews/{review['id']}/signoff", json={"statement": "ok"}),
        ]
    assert [r.status_code for r in refused] == [403, 403, 403, 403]
    with server.http("agent") as agent:
        assert agent.get("/api/v1/reviews").status_code == 403


def test_an_analyst_runs_a_review_to_its_sign_off(server: Server) -> None:
    with server.http("analyst") as analyst:
        opened = analyst.post("/api/v1/reviews", json={"schedule": "daily"})
        assert opened.status_code == 201
        review = opened.json()
        assert review["opened_by"] == "analyst-token"
        again = analyst.post("/api/v1/reviews", json={"schedule": "daily"})
        assert again.status_code == 409
        url = f"/api/v1/reviews/{review['id']}"
        no_note = analyst.put(f"{url}/items/pipeline", json={"state": "issue"})
        assert (no_note.status_code, no_note.json()["detail"]) == (
            422,
            "an item marked issue needs a note",
        )
        analyst.put(
            f"{url}/items/pipeline", json={"state": "issue", "note": "node srv-2 silent 2h"}
        ).raise_for_status()
        for item in review["items"][:-1]:
            analyst.put(f"{url}/items/{item['id']}", json={"state": "done"}).raise_for_status()
        unknown_alert = analyst.post(
            f"{url}/findings", json={"text": "gap", "severity": "medium", "alert_ids": [999]}
        )
        assert unknown_alert.status_code == 422
        finding = analyst.post(
            f"{url}/findings",
            json={
                "text": "srv-2's agent was down for two hours",
                "severity": "medium",
                "owner": "ops",
                "due": "7d",
                "item": "pipeline",
                "event_keys": ["journal:srv-2:abc"],
            },
        )
        assert finding.status_code == 201
        signed = analyst.post(f"{url}/signoff", json={"statement": "Reviewed; gap followed up."})
        assert signed.status_code == 200
        body = signed.json()
        late = analyst.put(f"{url}/items/pipeline", json={"state": "done"})
    assert body["state"] == "signed"
    assert body["signoff"]["reviewer"] == "analyst-token"
    assert body["signoff"]["seq"] == 1
    assert body["findings"][0]["owner"] == "ops"
    assert late.status_code == 409
    with server.http("viewer") as viewer:
        assert viewer.get("/api/v1/reviews/verify").json()["ok"] is True
        listed = viewer.get("/api/v1/reviews", params={"state": "signed"}).json()
        assert [r["id"] for r in listed] == [review["id"]]
        (daily,) = viewer.get("/api/v1/reviews/schedules").json()
        assert daily["last_signed_period"] == review["period"]
        exported = viewer.get("/api/v1/reviews/export", params={"format": "csv"})
        markdown = viewer.get("/api/v1/reviews/export", params={"format": "md"}).text
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert rows[0]["kind"] == "verification"
    assert rows[0]["state_or_severity"] == "ok"
    assert {r["kind"] for r in rows[1:]} == {"item", "finding", "signoff"}
    assert body["signoff"]["hash"] in markdown
    assert "**OK**: 1 signed review(s)" in markdown


def test_unknown_reviews_schedules_and_periods_are_client_errors(server: Server) -> None:
    with server.http("analyst") as analyst:
        assert analyst.get("/api/v1/reviews/999").status_code == 404
        # only numbers are review ids: other paths under /api/v1/reviews stay free
        assert analyst.get("/api/v1/reviews/no-such-page").status_code == 404
        assert analyst.post("/api/v1/reviews", json={"schedule": "hourly"}).status_code == 404
        bad = analyst.post("/api/v1/reviews", json={"schedule": "daily", "period": "soon"})
        assert bad.status_code == 422
        future = analyst.post("/api/v1/reviews", json={"schedule": "daily", "period": "2999-01-01"})
        assert future.status_code == 422
