"""The normalized Event: timestamps, identity, typed accessors and the one-line description."""

from __future__ import annotations

from typing import Any

import pytest

from k3watch.event import Event, exec_argv, format_time, parse_time

T0 = 1767607200.0  # 2026-01-05T10:00:00Z


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-05T10:00:00Z", T0),
        ("2026-01-05T10:00:00.250000Z", T0 + 0.25),
        ("2026-01-05T10:00:00.123456789Z", T0 + 0.123456),  # nanoseconds are cut, not rejected
        ("2026-01-05T12:00:00.123456789+02:00", T0 + 0.123456),
        ("2026-01-05T12:00:00+02:00", T0),
        (T0, T0),
        (int(T0), T0),
    ],
)
def test_parse_time_reads_rfc3339_and_epoch_seconds(text: Any, expected: float) -> None:
    assert parse_time(text) == pytest.approx(expected)


@pytest.mark.parametrize("bad", ["", "yesterday", "2026-13-01T00:00:00Z", "1.5", None, True, []])
def test_parse_time_returns_none_for_anything_else(bad: Any) -> None:
    assert parse_time(bad) is None


def test_format_time_is_utc_with_microseconds() -> None:
    assert format_time(T0 + 0.5) == "2026-01-05T10:00:00.500000Z"
    assert parse_time(format_time(T0 + 0.123456)) == pytest.approx(T0 + 0.123456)
    assert format_time(None) == ""


def test_event_time_prefers_request_received_then_stage_then_v1beta1_timestamp() -> None:
    raw = {
        "requestReceivedTimestamp": "2026-01-05T10:00:00Z",
        "stageTimestamp": "2026-01-05T10:00:01Z",
        "timestamp": "2026-01-05T10:00:02Z",
    }
    assert Event(dict(raw)).time == T0
    del raw["requestReceivedTimestamp"]
    assert Event(dict(raw)).time == T0 + 1
    del raw["stageTimestamp"]
    assert Event(dict(raw)).time == T0 + 2
    assert Event({}).time is None


def test_an_invalid_timestamp_falls_back_to_the_next_field() -> None:
    raw = {"requestReceivedTimestamp": "garbage", "stageTimestamp": "2026-01-05T10:00:01Z"}
    assert Event(raw).time == T0 + 1


def test_the_id_is_the_audit_id_or_else_the_location() -> None:
    assert Event({"auditID": "abc"}, "audit.log", 3).id == "abc"
    assert Event({}, "audit.log", 3).id == "audit.log:3"
    assert Event({}, "hook", 1, item=4).id == "hook:1[4]"
    assert Event({"auditID": 7}, "audit.log", 3).id == "audit.log:3"


def test_accessors_read_the_common_fields() -> None:
    event = Event(
        {
            "stage": "ResponseComplete",
            "level": "Request",
            "verb": "create",
            "requestURI": "/api/v1/namespaces/prod/pods",
            "user": {"username": "alice", "groups": ["dev", 3, "ops"]},
            "impersonatedUser": {"username": "bob"},
            "userAgent": "kubectl/v1.31",
            "sourceIPs": ["203.0.113.9", "10.0.0.1"],
            "objectRef": {
                "resource": "pods",
                "subresource": "exec",
                "apiGroup": "",
                "namespace": "prod",
                "name": "web",
            },
            "responseStatus": {"code": 201},
            "annotations": {"authorization.k8s.io/decision": "allow"},
        }
    )
    assert (event.stage, event.level, event.verb) == ("ResponseComplete", "Request", "create")
    assert event.request_uri == "/api/v1/namespaces/prod/pods"
    assert (event.user, event.groups, event.impersonated_user) == ("alice", ["dev", "ops"], "bob")
    assert event.user_agent == "kubectl/v1.31"
    assert (event.source_ip, event.source_ips) == ("203.0.113.9", ["203.0.113.9", "10.0.0.1"])
    assert (event.resource, event.subresource, event.api_group) == ("pods", "exec", "")
    assert (event.namespace, event.name) == ("prod", "web")
    assert (event.status_code, event.decision) == (201, "allow")


def test_accessors_return_none_for_missing_or_mistyped_fields() -> None:
    event = Event(
        {"user": "alice", "objectRef": ["pods"], "responseStatus": {"code": True}, "verb": 3}
    )
    assert event.user is None
    assert event.groups == []
    assert event.resource is None
    assert event.status_code is None
    assert event.verb is None
    assert event.source_ip is None


def test_exec_argv_decodes_percent_and_plus_encoding() -> None:
    uri = "/api/v1/namespaces/d/pods/p/exec?command=sh&command=-c&command=cat+%2Fetc%2Fshadow"
    assert exec_argv(uri) == ("sh", "-c", "cat /etc/shadow")
    assert exec_argv("/api/v1/namespaces/d/pods/p/exec?container=a") == ()
    assert exec_argv("/apis/x/v1/things?subcommand=id") == ()


def test_exec_command_is_none_without_a_command_parameter() -> None:
    assert Event({"requestURI": "/api/v1/namespaces/d/pods/p/exec?command=id"}).exec_command == "id"
    assert Event({"requestURI": "/apis/x/v1/things?subcommand=id"}).exec_command is None
    assert Event({}).exec_command is None


@pytest.mark.parametrize(
    ("raw", "sentence"),
    [
        (
            {
                "verb": "get",
                "user": {"username": "alice"},
                "sourceIPs": ["10.0.0.7"],
                "objectRef": {"resource": "secrets", "namespace": "prod", "name": "db"},
            },
            "alice read secrets prod/db from 10.0.0.7",
        ),
        (
            {
                "verb": "create",
                "user": {"username": "alice"},
                "requestURI": "/api/v1/namespaces/prod/pods/web/exec?command=id",
                "objectRef": {
                    "resource": "pods",
                    "subresource": "exec",
                    "namespace": "prod",
                    "name": "web",
                },
            },
            "alice ran `id` in pod prod/web",
        ),
        (
            {
                "verb": "list",
                "objectRef": {"resource": "secrets"},
                "responseStatus": {"code": 401},
            },
            "an unauthenticated client listed secrets (denied, 401)",
        ),
        (
            {
                "verb": "delete",
                "user": {"username": "alice"},
                "impersonatedUser": {"username": "bob"},
                "objectRef": {"resource": "pods", "namespace": "d", "name": "p"},
                "responseStatus": {"code": 500},
            },
            "alice (as bob) deleted pods d/p (failed, 500)",
        ),
        (
            {
                "verb": "get",
                "user": {"username": "eve"},
                "requestURI": "/metrics",
                "annotations": {"authorization.k8s.io/decision": "forbid"},
            },
            "eve read /metrics (forbidden)",
        ),
    ],
)
def test_describe_is_one_sentence_about_who_did_what(raw: dict[str, Any], sentence: str) -> None:
    assert Event(raw).describe() == sentence
