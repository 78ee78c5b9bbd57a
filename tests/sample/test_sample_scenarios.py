"""The attack scenarios are injected as SCENARIOS documents them, and only on the last day."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from k3watch.event import exec_argv, parse_time
from k3watch.sample import DEFAULT_START, SCENARIOS, Scenario
from k3watch.sample.engine import Tagged
from k3watch.sample.scenarios import (
    ALICE,
    ALICE_NEW_IP,
    ATTACKER_IP,
    BUILD_BOT,
    ESCAPE_POD,
    ROGUE_BINDING,
    ROGUE_DAEMONSET,
    ROGUE_WEBHOOK,
)

LAST_DAY = (DEFAULT_START + timedelta(days=1)).timestamp()


def _of(two_days: list[Tagged], name: str) -> list[dict[str, Any]]:
    return [event for event, tag in two_days if tag == name]


def _by_attacker(events: list[dict[str, Any]], scenario: Scenario) -> list[dict[str, Any]]:
    return [
        e
        for e in events
        if e["sourceIPs"] == [scenario.source_ip]
        and e["user"].get("username", "") == scenario.username
    ]


def _t(event: dict[str, Any]) -> float:
    value = parse_time(event["requestReceivedTimestamp"])
    assert value is not None
    return value


def test_scenario_names_are_unique_and_documented() -> None:
    names = [s.name for s in SCENARIOS]
    assert len(names) == len(set(names)) == 7
    for scenario in SCENARIOS:
        assert scenario.events and scenario.rows and scenario.title


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_scenario_starts_at_its_documented_time_with_its_identity(
    two_days: list[Tagged], scenario: Scenario
) -> None:
    events = _by_attacker(_of(two_days, scenario.name), scenario)
    assert events, f"no event from {scenario.username or '(anonymous)'} at {scenario.source_ip}"
    assert all(e["userAgent"] == scenario.user_agent for e in events)
    start = LAST_DAY + scenario.offset_us / 1e6
    assert start <= _t(events[0]) < start + 1
    assert all(_t(e) < LAST_DAY + 15 * 3600 for e in events)


def test_attackers_are_never_seen_before_the_attack_day(two_days: list[Tagged]) -> None:
    for event, tag in two_days:
        if tag is None:
            assert event["sourceIPs"][0] not in (ATTACKER_IP, ALICE_NEW_IP)
            assert event["userAgent"] != "python-requests/2.32.3"


def test_alice_and_build_bot_have_a_baseline_on_the_first_day(two_days: list[Tagged]) -> None:
    first_day = [e for e, _ in two_days if _t(e) < LAST_DAY]
    alice_ips = {e["sourceIPs"][0] for e in first_day if e["user"].get("username") == ALICE}
    assert alice_ips and alice_ips <= {"192.0.2.23", "192.0.2.41"}
    bot = [e for e in first_day if e["user"].get("username") == BUILD_BOT]
    assert bot and {e["sourceIPs"][0].startswith("10.42.") for e in bot} == {True}


def test_brute_force_is_forty_rejected_requests_in_two_minutes(two_days: list[Tagged]) -> None:
    events = _of(two_days, "brute-force")
    assert len(events) == 40
    for event in events:
        assert event["user"] == {}
        assert event["stage"] == "ResponseStarted"
        assert event["responseStatus"]["code"] == 401
        assert event["responseStatus"]["message"] == "Authentication failed, attempted: bearer"
        assert "annotations" not in event
    assert _t(events[-1]) - _t(events[0]) <= 140


def test_stolen_token_enumerates_then_reads_fifteen_secrets_in_five_minutes(
    two_days: list[Tagged],
) -> None:
    events = [e for e in _of(two_days, "stolen-token") if e["stage"] == "ResponseComplete"]
    extra = events[0]["user"]["extra"]
    assert extra["authentication.kubernetes.io/pod-name"][0].startswith("build-runner-")
    verbs = [(e["verb"], e["objectRef"]["resource"]) for e in events]
    assert verbs[:2] == [("create", "selfsubjectrulesreviews")] * 2
    listed = [e for e in events if e["verb"] == "list" and e["objectRef"]["resource"] == "secrets"]
    assert len(listed) == 1 and "namespace" not in listed[0]["objectRef"]
    reads = [e for e in events if e["verb"] == "get" and e["objectRef"]["resource"] == "secrets"]
    names = {(e["objectRef"]["namespace"], e["objectRef"]["name"]) for e in reads}
    assert len(names) >= 15
    assert {ns for ns, _ in names} == {"kube-system", "shop", "ci", "default"}
    assert _t(reads[-1]) - _t(reads[0]) < 300
    denied = [e for e in events if e["responseStatus"]["code"] == 403]
    assert len(denied) == 4
    assert all(e["annotations"]["authorization.k8s.io/decision"] == "forbid" for e in denied)


def test_alice_execs_cat_of_the_token_from_a_new_address(two_days: list[Tagged]) -> None:
    execs = [e for e in _of(two_days, "alice-exec-new-ip") if e["objectRef"].get("subresource")]
    assert [e["stage"] for e in execs] == ["ResponseStarted", "ResponseComplete"]
    assert execs[0]["auditID"] == execs[1]["auditID"]
    for event in execs:
        assert event["verb"] == "get"  # kubectl >= 1.30 speaks WebSocket
        assert event["user"]["username"] == ALICE
        assert event["responseStatus"]["code"] == 101
        argv = exec_argv(event["requestURI"])
        assert argv == ("sh", "-c", "cat /var/run/secrets/kubernetes.io/serviceaccount/token")


def test_privileged_pod_escapes_to_the_host(two_days: list[Tagged]) -> None:
    created = [
        e
        for e in _of(two_days, "privileged-pod")
        if e["verb"] == "create" and e["objectRef"]["resource"] == "pods"
    ]
    assert len(created) == 1
    event = created[0]
    assert event["user"]["username"] == BUILD_BOT
    assert event["objectRef"] == {
        "resource": "pods",
        "namespace": "kube-system",
        "name": ESCAPE_POD,
        "apiVersion": "v1",
    }
    spec = event["requestObject"]["spec"]
    assert spec["hostPID"] is True and spec["hostNetwork"] is True
    assert spec["containers"][0]["securityContext"] == {"privileged": True}
    assert spec["containers"][0]["image"] == "docker.io/library/alpine:3.20"
    assert spec["volumes"] == [{"name": "host", "hostPath": {"path": "/"}}]
    assert spec["containers"][0]["volumeMounts"] == [{"name": "host", "mountPath": "/host"}]


def test_cluster_admin_binding_is_followed_by_a_daemonset_within_two_minutes(
    two_days: list[Tagged],
) -> None:
    events = _of(two_days, "rbac-then-workload")
    binding = next(e for e in events if e["objectRef"]["resource"] == "clusterrolebindings")
    assert binding["level"] == "RequestResponse" and binding["responseObject"]
    assert binding["objectRef"]["name"] == ROGUE_BINDING
    assert binding["requestObject"]["roleRef"]["name"] == "cluster-admin"
    assert binding["requestObject"]["subjects"] == [
        {"kind": "ServiceAccount", "name": "build-bot", "namespace": "default"}
    ]
    daemonset = next(e for e in events if e["objectRef"]["resource"] == "daemonsets")
    assert daemonset["user"]["username"] == BUILD_BOT
    assert daemonset["objectRef"]["namespace"] == "kube-system"
    assert daemonset["objectRef"]["name"] == ROGUE_DAEMONSET
    assert 0 < _t(daemonset) - _t(binding) < 120
    pods = [
        e
        for e in events
        if e["verb"] == "create"
        and e["objectRef"]["resource"] == "pods"
        and "subresource" not in e["objectRef"]
    ]
    assert len(pods) == 3  # one per node, by the daemon-set controller
    assert {e["user"]["username"] for e in pods} == {
        "system:serviceaccount:kube-system:daemon-set-controller"
    }


def test_webhook_points_outside_the_cluster(two_days: list[Tagged]) -> None:
    (event,) = _of(two_days, "webhook")
    assert event["objectRef"]["resource"] == "mutatingwebhookconfigurations"
    assert event["objectRef"]["name"] == ROGUE_WEBHOOK
    webhook = event["requestObject"]["webhooks"][0]
    assert webhook["clientConfig"]["url"] == f"https://{ATTACKER_IP}:8443/mutate"


def test_events_are_deleted_in_kube_system(two_days: list[Tagged]) -> None:
    deletes = [e for e in _of(two_days, "delete-events") if e["verb"] == "delete"]
    assert len(deletes) == 12
    for event in deletes:
        assert event["objectRef"]["resource"] == "events"
        assert event["objectRef"]["namespace"] == "kube-system"
        assert event["responseStatus"]["code"] == 200
