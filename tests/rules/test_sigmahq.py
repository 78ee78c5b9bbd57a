"""SigmaHQ's 16 Kubernetes audit rules load as written and, through the shipped field mapping,
match the events they were written for (and not their near misses)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from k3watch.event import Event
from k3watch.rules.engine import Engine
from k3watch.rules.loader import load_rules
from k3watch.telemetry import Counters

SIGMAHQ = Path(__file__).parents[1] / "corpus" / "sigmahq-kubernetes-rules"
RULES = load_rules([SIGMAHQ], builtin=False)


def ev(verb: str, resource: str | None, **fields: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "auditID": f"{verb}-{resource}-{len(fields)}",
        "stage": "ResponseComplete",
        "verb": verb,
        "user": {"username": "mallory"},
        "sourceIPs": ["203.0.113.9"],
        "requestReceivedTimestamp": "2026-01-05T10:00:00.000000Z",
        "responseStatus": {"code": 200},
        "annotations": {"authorization.k8s.io/decision": "allow"},
    }
    if resource is not None:
        raw["objectRef"] = {"resource": resource, "namespace": "default"}
    for key, value in fields.items():
        if key in ("subresource", "apiGroup", "namespace", "name"):
            raw.setdefault("objectRef", {})[key] = value
        else:
            raw[key] = value
    return raw


POD = {"spec": {"containers": [{"name": "c", "image": "alpine"}]}}
# title → (an intended event, a near miss)
CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "Kubernetes Admission Controller Modification": (
        ev("create", "mutatingwebhookconfigurations", apiGroup="admissionregistration.k8s.io"),
        ev("get", "mutatingwebhookconfigurations", apiGroup="admissionregistration.k8s.io"),
    ),
    "Kubernetes CronJob/Job Modification": (
        ev("patch", "cronjobs", apiGroup="batch"),
        ev("list", "cronjobs", apiGroup="batch"),
    ),
    "Deployment Deleted From Kubernetes Cluster": (
        ev("delete", "deployments", apiGroup="apps"),
        ev("delete", "replicasets", apiGroup="apps"),
    ),
    "Kubernetes Events Deleted": (ev("delete", "events"), ev("create", "events")),
    "Potential Remote Command Execution In Pod Container": (
        ev("create", "pods", subresource="exec"),
        ev("create", "pods", subresource="log"),
    ),
    "Container With A hostPath Mount Created": (
        ev(
            "create",
            "pods",
            requestObject={"spec": {**POD["spec"], "volumes": [{"hostPath": {"path": "/"}}]}},
        ),
        ev("create", "pods", requestObject=POD),
    ),
    "Creation Of Pod In System Namespace": (
        ev("create", "pods", namespace="kube-system"),
        ev("create", "pods", namespace="shop"),
    ),
    "Kubernetes Potential Enumeration Activity": (
        ev("create", "pods", subresource="exec", requestURI="/api/v1/x/exec?command=%2Fbin%2Fsh"),
        ev(
            "create",
            "pods",
            subresource="exec",
            requestURI="/api/v1/x/exec?command=%2Fbin%2Fsh",
            annotations={"authorization.k8s.io/decision": "forbid"},
        ),
    ),
    "Privileged Container Deployed": (
        ev(
            "create",
            "pods",
            requestObject={
                "spec": {
                    "containers": [
                        {"name": "c", "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}
                    ]
                }
            },
        ),
        ev("create", "pods", requestObject=POD),
    ),
    "RBAC Permission Enumeration Attempt": (
        ev("create", "selfsubjectrulesreviews", apiGroup="authorization.k8s.io"),
        ev("create", "selfsubjectrulesreviews", apiGroup="example.io"),
    ),
    "Kubernetes Rolebinding Modification": (
        ev("create", "clusterrolebindings", apiGroup="rbac.authorization.k8s.io"),
        ev("get", "clusterrolebindings", apiGroup="rbac.authorization.k8s.io"),
    ),
    "Kubernetes Secrets Enumeration": (ev("list", "secrets"), ev("list", "configmaps")),
    "Kubernetes Secrets Modified or Deleted": (ev("delete", "secrets"), ev("get", "secrets")),
    "New Kubernetes Service Account Created": (
        ev("create", "serviceaccounts"),
        ev("delete", "serviceaccounts"),
    ),
    "Potential Sidecar Injection Into Running Deployment": (
        ev("patch", "deployments", apiGroup="apps"),
        ev("patch", "deployments", apiGroup="extensions"),
    ),
    "Kubernetes Unauthorized or Unauthenticated Access": (
        ev("get", "secrets", responseStatus={"code": 403}),
        ev("get", "secrets", responseStatus={"code": 200}),
    ),
}


def fired(raw: dict[str, Any]) -> set[str]:
    counters = Counters("t")
    engine = Engine(RULES, counters=counters)
    engine.process(Event(raw, "test", 1))
    engine.flush()
    return {rule.info.title for rule in RULES.event_rules if counters.get("rule_matches", rule.id)}


def test_all_sixteen_rules_load_without_errors() -> None:
    assert RULES.errors == []
    assert sorted(r.info.title for r in RULES.event_rules) == sorted(CASES)


@pytest.mark.parametrize("title", sorted(CASES))
def test_rule_matches_its_intended_event_and_not_the_near_miss(title: str) -> None:
    intended, near_miss = CASES[title]
    assert title in fired(intended)
    assert title not in fired(near_miss)
