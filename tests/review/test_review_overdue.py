"""An overdue review raises one alert per overdue period, through a real server: stored with
the other alerts, delivered to a real destination (a JSON-lines file), not raised again while
it stays overdue, and resolved once the review is signed off."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from tests.conftest import builtin_rules

from k3watch.alerting.config import AlertingConfig, FileConfig
from k3watch.config import Config
from k3watch.review.config import ReviewsConfig, ScheduleConfig
from k3watch.review.overdue import RULE_ID, overdue_fingerprint
from k3watch.review.store import ReviewStore, review_path
from k3watch.server.config import ServerConfig
from k3watch.server.run import BackgroundServer
from k3watch.server.runtime import Runtime
from k3watch.server.tokens import Role

REVIEWS = ReviewsConfig(
    schedules=(ScheduleConfig(name="daily", grace="0s"),),
    check_interval="1s",
)
DAY = 86400.0


class Server:
    def __init__(self, tmp_path: Path, tracked_since: float) -> None:
        self.data = tmp_path / "data"
        self.alerts_file = tmp_path / "alerts.jsonl"
        # The server has kept these schedules since `tracked_since` (three days ago).
        ReviewStore(review_path(self.data), REVIEWS.resolved(), clock=lambda: tracked_since).close()
        config = Config(
            server=ServerConfig(
                data_dir=str(self.data),
                listen="127.0.0.1:0",
                insecure_http=True,
                workers=0,
                cluster="test",
            ),
            alerting=AlertingConfig(
                destinations=(FileConfig(name="file", path=str(self.alerts_file)),)
            ),
            reviews=REVIEWS,
        )
        self.runtime = Runtime.build(config, builtin_rules())
        self.tokens = {
            role.value: self.runtime.tokens.create(f"{role.value}-token", role)[1] for role in Role
        }
        self.server = BackgroundServer(self.runtime).start()

    def http(self, role: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.server.url, headers={"Authorization": f"Bearer {self.tokens[role]}"}
        )

    def delivered(self) -> list[dict[str, Any]]:
        assert self.runtime.dispatcher is not None
        self.runtime.dispatcher.flush()
        if not self.alerts_file.exists():
            return []
        return [msgspec.json.decode(line) for line in self.alerts_file.read_bytes().splitlines()]

    def wait_delivered(self, count: int) -> list[dict[str, Any]]:
        deadline = time.monotonic() + 30
        while len(found := self.delivered()) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return found


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = Server(tmp_path, time.time() - 3 * DAY)
    yield running
    running.server.stop()


def stored_overdue(server: Server) -> list[dict[str, Any]]:
    with server.http("viewer") as http:
        response = http.get("/api/v1/alerts", params={"rule_id": RULE_ID})
    response.raise_for_status()
    alerts: list[dict[str, Any]] = response.json()["alerts"]
    return sorted(alerts, key=lambda a: a["group"]["review.period"])


def test_each_overdue_period_raises_one_alert_stored_and_delivered(server: Server) -> None:
    (status,) = server.runtime.reviews.status()  # type: ignore[union-attr]
    periods = [p.label for p in status.overdue]
    assert len(periods) == 3  # the day tracking began and the two days after it
    daily = sorted(server.wait_delivered(3), key=lambda a: a["group"]["review.period"])
    assert [a["group"]["review.period"] for a in daily] == periods
    assert {(a["rule_id"], a["severity"]) for a in daily} == {(RULE_ID, "high")}
    assert [a["fingerprint"] for a in daily] == [overdue_fingerprint("daily", p) for p in periods]
    assert "is not signed off" in daily[0]["summary"]
    assert [
        (a["group"]["review.period"], a["count"], a["status"]) for a in stored_overdue(server)
    ] == [(p, 1, "open") for p in periods]


def test_an_overdue_review_is_raised_once_while_it_stays_overdue(server: Server) -> None:
    first = server.wait_delivered(3)
    watch = server.runtime.overdue
    assert watch is not None
    again = watch.check.run()
    assert again.raised == []
    time.sleep(1.5)  # the thread's next passes find nothing new either
    assert len(server.delivered()) == len(first) == 3
    assert {a["count"] for a in stored_overdue(server)} == {1}


def test_signing_the_review_off_resolves_its_overdue_alert(server: Server) -> None:
    server.wait_delivered(3)
    status = server.runtime.reviews.status()  # type: ignore[union-attr]
    oldest = status[0].overdue[0].label
    with server.http("analyst") as http:
        review = http.post("/api/v1/reviews", json={"schedule": "daily", "period": oldest}).json()
        for item in review["items"]:
            http.put(
                f"/api/v1/reviews/{review['id']}/items/{item['id']}", json={"state": "done"}
            ).raise_for_status()
        http.post(
            f"/api/v1/reviews/{review['id']}/signoff", json={"statement": "Late, but done."}
        ).raise_for_status()
    watch = server.runtime.overdue
    assert watch is not None
    assert watch.check.run().resolved == 1
    by_period = {a["group"]["review.period"]: a for a in stored_overdue(server)}
    assert by_period[oldest]["status"] == "resolved"
    assert [a["status"] for p, a in by_period.items() if p != oldest] == ["open", "open"]
    with server.http("viewer") as http:
        alert = http.get(f"/api/v1/alerts/{by_period[oldest]['id']}").json()
    assert alert["history"][-1]["actor"] == "analyst-token"
    assert "signed off" in alert["history"][-1]["note"]
