"""generate_events: deterministic, well-formed, ordered audit streams."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from k3watch.event import parse_time
from k3watch.sample import attack_day, generate_events
from k3watch.sample.engine import Tagged
from k3watch.sample.records import DAY, HOUR

LEVELS = {"Metadata", "Request", "RequestResponse"}
STAGES = {"ResponseStarted", "ResponseComplete"}


def _lines(**kwargs: Any) -> list[bytes]:
    return [orjson.dumps(event) for event in generate_events(**kwargs)]


def test_same_arguments_give_identical_bytes() -> None:
    assert _lines(days=0.3, seed=11) == _lines(days=0.3, seed=11)


def test_a_different_seed_gives_a_different_stream() -> None:
    assert _lines(days=0.3, seed=11, attacks=False) != _lines(days=0.3, seed=12, attacks=False)


def test_every_event_is_an_audit_v1_event(two_days: list[Tagged]) -> None:
    for event, _ in two_days:
        assert event["kind"] == "Event"
        assert event["apiVersion"] == "audit.k8s.io/v1"
        assert event["level"] in LEVELS
        assert event["stage"] in STAGES  # RequestReceived is omitted by the policy
        assert len(event["auditID"]) == 36
        assert event["requestURI"].startswith("/")
        assert isinstance(event["user"], dict)
        assert event["sourceIPs"] and event["userAgent"]
        assert isinstance(event["responseStatus"]["code"], int)
        assert parse_time(event["requestReceivedTimestamp"]) is not None


def test_request_received_timestamps_never_go_back(two_days: list[Tagged]) -> None:
    received = [event["requestReceivedTimestamp"] for event, _ in two_days]
    assert received == sorted(received)
    for event, _ in two_days:
        assert event["stageTimestamp"] >= event["requestReceivedTimestamp"]


def test_timestamps_are_rfc3339_microseconds_utc(two_days: list[Tagged]) -> None:
    for event, _ in two_days[:2000]:
        for key in ("requestReceivedTimestamp", "stageTimestamp"):
            value = event[key]
            assert len(value) == 27 and value.endswith("Z") and value[19] == "."


def test_long_running_requests_have_both_stages_with_one_audit_id(two_days: list[Tagged]) -> None:
    stages: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event, _ in two_days:
        stages[event["auditID"]].append(event)
    pairs = 0
    for events in stages.values():
        kinds = [e["stage"] for e in events]
        if events[0]["responseStatus"]["code"] == 401:
            assert kinds == ["ResponseStarted"]  # rejected before the handler: no completion
            continue
        subresource = events[0].get("objectRef", {}).get("subresource")
        long_running = events[0]["verb"] == "watch" or subresource in {
            "exec",
            "attach",
            "log",
            "proxy",
        }
        if long_running:
            pairs += 1
            assert kinds == ["ResponseStarted", "ResponseComplete"]
            first, last = events
            assert first["requestReceivedTimestamp"] == last["requestReceivedTimestamp"]
            assert first["requestURI"] == last["requestURI"]
            assert last["stageTimestamp"] >= first["stageTimestamp"]
        else:
            assert kinds == ["ResponseComplete"]
    assert pairs > 100


def test_watch_completes_when_its_timeout_expires(two_days: list[Tagged]) -> None:
    for event, _ in two_days:
        if event["verb"] == "watch" and event["stage"] == "ResponseComplete":
            timeout = int(event["requestURI"].split("timeoutSeconds=")[1].split("&")[0])
            start = parse_time(event["requestReceivedTimestamp"])
            end = parse_time(event["stageTimestamp"])
            assert start is not None and end is not None
            if "deployer" not in event["user"]["username"]:  # rollout status stops early
                assert end - start == pytest.approx(timeout, abs=0.001)


def test_quiet_stream_has_the_same_background_and_no_attacks(
    two_days: list[Tagged], two_quiet_days: list[dict[str, Any]]
) -> None:
    background = [orjson.dumps(event) for event, tag in two_days if tag is None]
    assert background == [orjson.dumps(event) for event in two_quiet_days]
    assert any(tag is not None for _, tag in two_days)


def test_a_day_at_scale_one_is_a_few_thousand_events(two_quiet_days: list[dict[str, Any]]) -> None:
    per_day = Counter(event["requestReceivedTimestamp"][:10] for event in two_quiet_days)
    assert all(4_000 <= count <= 10_000 for count in per_day.values()), per_day


def test_scale_multiplies_background_volume() -> None:
    small = sum(1 for _ in generate_events(days=0.5, attacks=False, scale=1))
    large = sum(1 for _ in generate_events(days=0.5, attacks=False, scale=4))
    assert 2.5 * small < large < 5 * small


def test_node_count_sets_agents_and_their_addresses() -> None:
    kubelets = {
        (e["user"]["username"], e["sourceIPs"][0])
        for e in generate_events(days=0.1, nodes=4, attacks=False)
        if e["user"].get("username", "").startswith("system:node:")
    }
    assert kubelets == {
        ("system:node:server-1", "127.0.0.1"),  # the server's kubelet goes through loopback
        ("system:node:agent-1", "10.0.0.12"),
        ("system:node:agent-2", "10.0.0.13"),
        ("system:node:agent-3", "10.0.0.14"),
    }


def test_stream_starts_with_the_k3s_boot_at_the_default_start() -> None:
    first = next(generate_events(days=0.1, attacks=False))
    assert first["requestReceivedTimestamp"] == "2026-03-02T00:00:00.000000Z"
    assert first["user"]["username"] == "system:apiserver"


def test_naive_start_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next(generate_events(start=datetime(2026, 3, 2), days=0.1))


@pytest.mark.parametrize("kwargs", [{"days": 0}, {"scale": 0}, {"nodes": 0}])
def test_invalid_arguments_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        next(generate_events(**kwargs))


def test_attacks_move_to_the_last_hour_of_a_stream_that_ends_early() -> None:
    start = int(datetime(2026, 3, 2, tzinfo=UTC).timestamp()) * 1_000_000
    assert attack_day(start, start + 2 * DAY) == start + DAY
    end = start + 12 * HOUR  # ends at noon: 14:02 is out of reach
    day = attack_day(start, end)
    assert day + 14 * HOUR + 2 * 60 * 1_000_000 == end - HOUR
    with pytest.raises(ValueError, match="too short"):
        attack_day(start, start + HOUR)
