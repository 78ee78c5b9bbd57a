"""iter_events_bulk: exactly ``count`` valid, ordered, deterministic JSON lines."""

from __future__ import annotations

from collections import defaultdict

import orjson

from k3watch.sample import BULK_AVERAGE_LINE_BYTES, iter_events_bulk


def test_yields_exactly_count_newline_terminated_json_lines() -> None:
    lines = list(iter_events_bulk(12_345))
    assert len(lines) == 12_345
    for line in lines:
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        event = orjson.loads(line)
        assert event["kind"] == "Event" and event["apiVersion"] == "audit.k8s.io/v1"
        assert event["stageTimestamp"] >= event["requestReceivedTimestamp"]


def test_zero_lines_is_fine() -> None:
    assert list(iter_events_bulk(0)) == []


def test_same_seed_same_lines_other_seed_other_ids() -> None:
    first = list(iter_events_bulk(2_000))
    assert first == list(iter_events_bulk(2_000))
    assert first != list(iter_events_bulk(2_000, seed=8))


def test_lines_span_several_replays_in_time_order_with_fresh_audit_ids() -> None:
    events = [orjson.loads(line) for line in iter_events_bulk(30_000)]  # over three replays
    received = [e["requestReceivedTimestamp"] for e in events]
    assert received == sorted(received)
    assert received[-1][:13] > received[0][:13]  # later hours
    stages: dict[str, list[str]] = defaultdict(list)
    for event in events:
        stages[event["auditID"]].append(event["stage"])
    last = events[-1]["auditID"]  # the count may stop between the two stages of a request
    for audit_id, kinds in stages.items():
        allowed = [["ResponseComplete"], ["ResponseStarted", "ResponseComplete"]]
        assert kinds in allowed or (audit_id == last and kinds == ["ResponseStarted"])
    assert len(stages) > 0.8 * len(events)  # IDs are fresh in every replay


def test_average_line_size_is_the_documented_one() -> None:
    lines = list(iter_events_bulk(25_000))
    average = sum(map(len, lines)) / len(lines)
    assert abs(average - BULK_AVERAGE_LINE_BYTES) < 0.05 * BULK_AVERAGE_LINE_BYTES
