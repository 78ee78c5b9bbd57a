"""Redaction throughput: ``Redactor.redact`` against bare dict access, in one process.

Builds a realistic K3s audit stream (``iter_events_bulk``, 200,000 events by default,
deterministic) in which one event in ``--secret-every`` is replaced by one that carries
credentials, as a forensic audit policy records them: a Secret create with its
last-applied annotation, a SecretList, a TokenRequest with its JWT, a ConfigMap holding a
bearer token. Each round parses the stream chunk by chunk (so the parsed events never all sit
in memory at once; the cyclic garbage collector runs between chunks), then times, on the same
events:

  a. the baseline: the per-event dict access redaction starts with (``objectRef``, the two
     bodies, the annotations, ``requestURI``), and nothing else;
  b. ``Redactor.redact`` with the default configuration (every built-in rule).

Prints events/s for both (best round), the ratio b/a (the median of the per-round ratios; a
shared machine's speed drifts between rounds), the same ratio once ``orjson.loads`` is counted
in both (what redaction costs an ingest pipeline), what was redacted, and peak RSS.

Run: ``python benchmarks/redaction_throughput.py [--events N] [--rounds N] [--secret-every N]``.
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import os
import resource
import statistics
import time
from typing import Any

import orjson

from k3watch.redact import Redactor
from k3watch.sample import iter_events_bulk
from k3watch.telemetry import Counters

CHUNK = 20_000

_JWT = (
    "eyJhbGciOiJSUzI1NiIsImtpZCI6IjNhWkJ4In0."
    "eyJhdWQiOlsiaHR0cHM6Ly9rdWJlcm5ldGVzLmRlZmF1bHQuc3ZjLmNsdXN0ZXIubG9jYWwiXSwic3ViIjoic3lzdGVt"
    "OnNlcnZpY2VhY2NvdW50OnNob3A6YXBpIn0."
    "Xk2m1Qf9cV3pLr7uT0aZyB4nD8sE6wG5hJ1kM2oN3qP4rS5tU6vW7xY8zA9bC0dE1fG2hI3jK4lM5nO6pQ7rS8tU"
)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _event(
    verb: str, resource: str, request: Any = None, response: Any = None, subresource: str = ""
) -> dict[str, Any]:
    ref = {"resource": resource, "namespace": "shop", "name": "api", "apiVersion": "v1"}
    if subresource:
        ref["subresource"] = subresource
    event: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "RequestResponse",
        "auditID": "2f0c6b1e-8d3a-4e59-b7c1-9a6d5e4f3b2a",
        "stage": "ResponseComplete",
        "requestURI": f"/api/v1/namespaces/shop/{resource}/api"
        + (f"/{subresource}" * bool(subresource)),
        "verb": verb,
        "user": {"username": "alice@example.com", "groups": ["devs", "system:authenticated"]},
        "sourceIPs": ["10.42.0.15"],
        "userAgent": "kubectl/v1.31.2+k3s1 (linux/amd64) kubernetes/8f7e6d5",
        "objectRef": ref,
        "responseStatus": {"metadata": {}, "code": 201 if verb == "create" else 200},
        "requestReceivedTimestamp": "2026-03-03T09:12:34.567890Z",
        "stageTimestamp": "2026-03-03T09:12:34.581234Z",
        "annotations": {"authorization.k8s.io/decision": "allow"},
    }
    if request is not None:
        event["requestObject"] = request
    if response is not None:
        event["responseObject"] = response
    return event


def credential_events() -> list[bytes]:
    """Audit lines that carry credentials, as a policy logging bodies at RequestResponse has."""
    data = {"username": _b64("shop"), "password": _b64("correct horse battery staple")}
    applied = {"apiVersion": "v1", "kind": "Secret", "data": data, "metadata": {"name": "api"}}
    secret = {
        "kind": "Secret",
        "apiVersion": "v1",
        "metadata": {
            "name": "api",
            "namespace": "shop",
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": json.dumps(applied)
            },
        },
        "data": data,
        "type": "Opaque",
    }
    secret_list = {"kind": "SecretList", "apiVersion": "v1", "items": [secret] * 5}
    token = {
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "spec": {"audiences": ["https://kubernetes.default.svc.cluster.local"]},
        "status": {"token": _JWT, "expirationTimestamp": "2026-03-03T10:12:41Z"},
    }
    script = f"curl -fsS -H 'Authorization: Bearer {_JWT}' https://registry.example.com/v2/\n"
    configmap = {
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {"name": "push", "namespace": "ci"},
        "data": {"push.sh": script},
    }
    events = [
        _event("create", "secrets", secret, secret),
        _event("list", "secrets", None, secret_list),
        _event("create", "serviceaccounts", token, token, "token"),
        _event("update", "configmaps", configmap, configmap),
    ]
    return [orjson.dumps(event) + b"\n" for event in events]


def build_stream(count: int, seed: int, secret_every: int) -> list[bytes]:
    extra = credential_events()
    lines = []
    for index, line in enumerate(iter_events_bulk(count, seed)):
        if secret_every and index % secret_every == secret_every - 1:
            lines.append(extra[(index // secret_every) % len(extra)])
        else:
            lines.append(line)
    return lines


def access(raw: dict[str, Any]) -> None:
    """What every event costs before redaction decides anything: the fields it looks at."""
    ref = raw.get("objectRef")
    if isinstance(ref, dict):
        ref.get("resource")
        ref.get("subresource")
        ref.get("apiGroup")
    raw.get("requestObject")
    raw.get("responseObject")
    raw.get("annotations")
    raw.get("requestURI")


def one_round(lines: list[bytes], redactor: Redactor) -> tuple[float, float, float, int]:
    """Seconds spent parsing, in the baseline and in redact(), and how many events changed."""
    loads = orjson.loads
    redact = redactor.redact
    parse_s = base_s = redact_s = 0.0
    changed = 0
    # A chunk of parsed events held in a list makes the cyclic collector rescan them again and
    # again, which a streaming consumer does not pay: collect between chunks, not within.
    gc.disable()
    try:
        for start in range(0, len(lines), CHUNK):
            began = time.perf_counter()
            events = [loads(line) for line in lines[start : start + CHUNK]]
            parsed = time.perf_counter()
            for event in events:
                access(event)
            based = time.perf_counter()
            for event in events:
                if redact(event):
                    changed += 1
            done = time.perf_counter()
            parse_s += parsed - began
            base_s += based - parsed
            redact_s += done - based
            del events
            gc.collect()
    finally:
        gc.enable()
    return parse_s, base_s, redact_s, changed


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--secret-every",
        type=int,
        default=100,
        help="replace one event in N by one carrying credentials (0: none)",
    )
    args = parser.parse_args()

    started = time.perf_counter()
    lines = build_stream(args.events, args.seed, args.secret_every)
    size = sum(len(line) for line in lines)
    print(
        f"stream: {len(lines):,} events, {size / 2**20:,.0f} MiB "
        f"({size / len(lines):,.0f} bytes/event), one in {args.secret_every or 'no'} with "
        f"credentials, built in {time.perf_counter() - started:.1f} s"
    )
    counters = Counters("bench")
    redactor = Redactor(counters=counters)
    best_base = best_redact = best_parse = float("inf")
    ratios: list[float] = []
    ingest_ratios: list[float] = []
    changed = 0
    for round_ in range(1, args.rounds + 1):
        parse_s, base_s, redact_s, changed_now = one_round(lines, redactor)
        if round_ == 1:
            changed = changed_now  # later rounds see events parsed afresh: the same count
        best_base, best_redact = min(best_base, base_s), min(best_redact, redact_s)
        best_parse = min(best_parse, parse_s)
        ratios.append(base_s / redact_s)
        ingest_ratios.append((parse_s + base_s) / (parse_s + redact_s))
        print(
            f"round {round_}: baseline {len(lines) / base_s:,.0f} ev/s, "
            f"redact {len(lines) / redact_s:,.0f} ev/s, ratio {ratios[-1]:.3f}, "
            f"with parsing {ingest_ratios[-1]:.2f}"
        )
    events = len(lines)
    print(f"(a) baseline dict access: {events / best_base:>12,.0f} events/s (best round)")
    print(f"(b) redact():             {events / best_redact:>12,.0f} events/s (best round)")
    print(
        f"ratio b/a:                {statistics.median(ratios):>12.3f}  (median of rounds; "
        f"{best_redact / events * 1e6:.2f} µs/event against {best_base / events * 1e6:.2f})"
    )
    print(
        f"with orjson.loads in both:{statistics.median(ingest_ratios):>12.2f}  "
        f"(loads alone {events / best_parse:,.0f} events/s)"
    )
    reasons = ", ".join(
        f"{reason} {count // args.rounds:,}"
        for reason, count in counters.by_reason("redacted").items()
    )
    print(f"redacted per round:       {changed:>12,} events; values: {reasons}")
    print(f"peak RSS:                 {peak_rss_mib():>12.0f} MiB  (pid {os.getpid()})")


if __name__ == "__main__":
    main()
