"""A 20 MiB audit line with the default limits: kept as a truncated event, reported once."""

from __future__ import annotations

import io

import orjson
import pytest

from k3watch.errors import InputError
from k3watch.parse.audit import AuditParser
from k3watch.telemetry import Counters

pytestmark = pytest.mark.slow


def huge_line() -> bytes:
    """A ConfigMap create whose requestObject carries 20 MiB of data."""
    raw = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "RequestResponse",
        "auditID": "2f6d1c1e-5b0a-4c2e-9a3f-1d2c3b4a5e6f",
        "stage": "ResponseComplete",
        "requestURI": "/api/v1/namespaces/default/configmaps",
        "verb": "create",
        "user": {"username": "system:admin", "groups": ["system:masters"]},
        "objectRef": {"resource": "configmaps", "namespace": "default", "name": "blob"},
        "requestObject": {"kind": "ConfigMap", "data": {"blob": "x" * (20 * 1024 * 1024)}},
        "responseStatus": {"metadata": {}, "code": 201},
        "requestReceivedTimestamp": "2024-05-01T10:20:30.123456Z",
    }
    return orjson.dumps(raw)


def test_20_mib_line_becomes_a_truncated_event_with_one_diagnostic() -> None:
    """Default limits: the 20 MiB event loses its bodies, keeps metadata; the next line is read."""
    errors: list[InputError] = []
    counters = Counters("large")
    parser = AuditParser(counters, errors.append)
    small = b'{"kind":"Event","auditID":"after","verb":"get"}'
    data = huge_line() + b"\n" + small + b"\n"
    events = list(parser.parse_stream(io.BytesIO(data), "big.log"))

    assert [(e.location, e.truncated) for e in events] == [
        ("big.log:1", True),
        ("big.log:2", False),
    ]
    first = events[0]
    assert "requestObject" not in first.raw
    assert first.verb == "create" and first.name == "blob" and first.status_code == 201
    assert [(str(e.location), e.reason) for e in errors] == [("big.log:1", "event_too_large")]
    assert counters.get("parse_errors", reason="event_too_large") == 1


def test_20_mib_webhook_body_is_truncated_the_same_way() -> None:
    """parse_bytes on the same document gives the same truncated event and diagnostic."""
    errors: list[InputError] = []
    parser = AuditParser(Counters("large"), errors.append)
    events = list(parser.parse_bytes(huge_line(), "webhook"))
    assert [(e.location, e.truncated) for e in events] == [("webhook:1", True)]
    assert [e.reason for e in errors] == ["event_too_large"]
