"""How much the audit parser adds over bare ``orjson.loads`` on K3s-style JSON lines.

Generates about 200k audit events of about 1.1 KB each (deterministic, in memory), then
measures in this one process, best of interleaved rounds:

  a. ``orjson.loads`` on each line of the data split into lines once (the floor);
  b. ``AuditParser.parse_stream`` over the same bytes from a ``BytesIO`` (line splitting,
     validation, ``Event`` objects and counters included);
  c. ``bytes.split`` + ``orjson.loads`` per round, to show where the difference goes: splitting
     allocates and copies each line, which (a) does not pay.

Prints events/s for each, the ratio b/a and peak RSS.
Run: ``python benchmarks/parse_throughput.py [--events N] [--runs N]``.
"""

from __future__ import annotations

import argparse
import io
import random
import resource
import sys
import time
import uuid
from collections.abc import Callable

import orjson

from k3watch.errors import InputError
from k3watch.parse.audit import AuditParser
from k3watch.telemetry import Counters

_USERS = [
    ("system:k3s-supervisor", ["system:masters", "system:authenticated"], "k3s-supervisor/v1.30"),
    ("system:kube-controller-manager", ["system:authenticated"], "kube-controller-manager/v1.30"),
    ("system:kube-scheduler", ["system:authenticated"], "kube-scheduler/v1.30.4+k3s1"),
    ("system:node:server-1", ["system:nodes", "system:authenticated"], "kubelet/v1.30.4+k3s1"),
    ("system:serviceaccount:kube-system:coredns", ["system:serviceaccounts"], "coredns/v1.11"),
    ("alice@example.com", ["devs", "system:authenticated"], "kubectl/v1.30.2 (linux/amd64)"),
]
_RESOURCES = [
    ("", "v1", "pods"),
    ("", "v1", "configmaps"),
    ("", "v1", "secrets"),
    ("", "v1", "endpoints"),
    ("coordination.k8s.io", "v1", "leases"),
    ("apps", "v1", "deployments"),
    ("helm.cattle.io", "v1", "helmcharts"),
]
_NAMESPACES = ["kube-system", "default", "monitoring", "cattle-system", "apps"]
_VERBS = ["get", "list", "watch", "update", "patch", "create", "delete"]


def generate(count: int, seed: int = 42) -> bytes:
    """``count`` audit event lines (``audit.k8s.io/v1``, ResponseComplete), same every run."""
    rnd = random.Random(seed)
    out = io.BytesIO()
    base = 1_714_550_000
    for n in range(count):
        user, groups, agent = rnd.choice(_USERS)
        group, version, resource_name = rnd.choice(_RESOURCES)
        namespace = rnd.choice(_NAMESPACES)
        verb = rnd.choice(_VERBS)
        name = f"{resource_name[:-1]}-{rnd.randrange(10_000):04d}"
        path = f"/api/{version}" if not group else f"/apis/{group}/{version}"
        seconds = base + n // 50
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        micros = rnd.randrange(1_000_000)
        code = 200 if rnd.random() < 0.95 else rnd.choice([403, 404, 409])
        event = {
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": "Metadata" if verb in ("get", "list", "watch") else "Request",
            "auditID": str(uuid.UUID(int=rnd.getrandbits(128), version=4)),
            "stage": "ResponseComplete",
            "requestURI": f"{path}/namespaces/{namespace}/{resource_name}/{name}?timeout=10s",
            "verb": verb,
            "user": {
                "username": user,
                "uid": str(uuid.UUID(int=rnd.getrandbits(128), version=4)),
                "groups": groups,
                "extra": {"authentication.kubernetes.io/node-name": ["server-1"]},
            },
            "sourceIPs": [f"10.42.{rnd.randrange(4)}.{rnd.randrange(2, 250)}"],
            "userAgent": agent,
            "objectRef": {
                "resource": resource_name,
                "namespace": namespace,
                "name": name,
                "apiGroup": group,
                "apiVersion": version,
                "resourceVersion": str(rnd.randrange(10**6)),
            },
            "responseStatus": {"metadata": {}, "code": code},
            "requestReceivedTimestamp": f"{stamp}.{micros:06d}Z",
            "stageTimestamp": f"{stamp}.{min(micros + 1500, 999_999):06d}Z",
            "annotations": {
                "authorization.k8s.io/decision": "allow" if code != 403 else "forbid",
                "authorization.k8s.io/reason": (
                    'RBAC: allowed by ClusterRoleBinding "system:k3s-controller" of ClusterRole '
                    '"system:k3s-controller" to User "system:k3s-controller"'
                ),
            },
        }
        if event["level"] == "Request":
            event["requestObject"] = {
                "kind": "Lease",
                "apiVersion": "coordination.k8s.io/v1",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"holderIdentity": f"server-1_{rnd.getrandbits(64):016x}"},
            }
        out.write(orjson.dumps(event))
        out.write(b"\n")
    return out.getvalue()


def _timed(work: Callable[[], int]) -> tuple[float, int]:
    """Wall time of one run of ``work``, and what it returned."""
    started = time.perf_counter()
    result = work()
    return time.perf_counter() - started, result


def _peak_rss_mib() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    args_parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args_parser.add_argument("--events", type=int, default=200_000)
    args_parser.add_argument("--runs", type=int, default=3)
    args = args_parser.parse_args(argv)

    data = generate(args.events)
    print(
        f"input: {args.events} lines, {len(data) / 2**20:.1f} MiB, "
        f"{len(data) / args.events:.0f} bytes/line; peak RSS after generating "
        f"{_peak_rss_mib():.0f} MiB"
    )

    errors: list[InputError] = []

    def parse() -> int:
        parser = AuditParser(Counters("bench"), errors.append)
        n = 0
        for _event in parser.parse_stream(io.BytesIO(data), "bench.log"):
            n += 1
        return n

    # One parser run before (a)'s split copy exists, so that the peak RSS it shows is its own.
    _, parsed = _timed(parse)
    parse_rss = _peak_rss_mib()
    assert parsed == args.events and not errors, (parsed, errors[:3])

    lines = data.splitlines()
    loads = orjson.loads

    def bare() -> int:
        n = 0
        for line in lines:
            loads(line)
            n += 1
        return n

    def split_and_load() -> int:
        n = 0
        for line in data.split(b"\n"):
            if line:
                loads(line)
                n += 1
        return n

    # Interleaved rounds, best of each: load from other processes then hits all three alike.
    best = {"bare": float("inf"), "parse": float("inf"), "split": float("inf")}
    for _ in range(args.runs):
        for name, work in (("bare", bare), ("parse", parse), ("split", split_and_load)):
            seconds, produced = _timed(work)
            assert produced == args.events, (name, produced)
            best[name] = min(best[name], seconds)
    bare_time, parse_time, split_time = best["bare"], best["parse"], best["split"]

    bare_rate = args.events / bare_time
    parse_rate = args.events / parse_time
    print(f"a. bare orjson.loads per line: {bare_rate:>10,.0f} events/s")
    print(f"b. AuditParser.parse_stream:   {parse_rate:>10,.0f} events/s")
    print(f"c. split + orjson.loads:       {args.events / split_time:>10,.0f} events/s")
    print(f"time ratio b/a: {parse_time / bare_time:.2f} (b/c: {parse_time / split_time:.2f})")
    print(
        f"peak RSS: {parse_rss:.0f} MiB after (b), {_peak_rss_mib():.0f} MiB after (a) "
        f"(the input alone is {len(data) / 2**20:.0f} MiB; (a) also holds a split copy)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
