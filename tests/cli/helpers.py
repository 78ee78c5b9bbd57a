"""Helpers for command-line tests: small audit logs written from a template."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
from click.testing import Result

Invoke = Callable[..., Result]


def event(verb: str, resource: str, **extra: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Request",
        "auditID": extra.pop("auditID", f"a-{verb}-{resource}-{len(extra)}"),
        "stage": "ResponseComplete",
        "verb": verb,
        "user": {"username": extra.pop("user", "mallory")},
        "sourceIPs": ["203.0.113.9"],
        "objectRef": {"resource": resource, "namespace": extra.pop("namespace", "default")},
        "responseStatus": {"metadata": {}, "code": extra.pop("code", 200)},
        "requestReceivedTimestamp": extra.pop("time", "2026-01-05T10:00:00.000000Z"),
    }
    raw["objectRef"].update(extra.pop("objectRef", {}))
    raw.update(extra)
    return raw


def write_log(path: Path, events: list[dict[str, Any]], extra_lines: Sequence[bytes] = ()) -> Path:
    lines = [orjson.dumps(e) for e in events] + list(extra_lines)
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


EXEC_TOKEN = event(
    "get",
    "pods",
    auditID="exec-1",
    objectRef={"subresource": "exec", "name": "web-0"},
    requestURI=(
        "/api/v1/namespaces/default/pods/web-0/exec?command=sh&command=-c&command="
        "cat%20%2Fvar%2Frun%2Fsecrets%2Fkubernetes.io%2Fserviceaccount%2Ftoken"
    ),
)
