"""The evaluation datasets are faithful audit events: the converters keep what the data says."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from tests.library import datasets
from tests.library.datasets import (
    HKERMA_COLUMNS,
    hkerma_row_to_event,
    hkerma_rows,
    load_hkerma,
    panther_event,
    parse_request_uri,
)
from tests.library.evaluate import evaluate

GOOD_ROW = [
    '{"name":"k8s-master-perfspec"}',
    "2023-01-27T18:29:55.572000Z",
    "kubernetes-admin",
    "create",
    "mutatingwebhookconfigurations",
    "",
    "my-cert-manager-webhook",
    "",
    "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations?fieldManager=helm",
    "0b1e4c1e-2f5a-4d8e-9a61-3c2d9f8b7a10",
    "ResponseComplete",
    "201",
    "",
    "",
    "",
]


# --- hkerma --------------------------------------------------------------------------------


def test_hkerma_keeps_every_complete_row_and_skips_only_the_truncated_last_one() -> None:
    data = load_hkerma()
    assert data.rows == 16_564
    assert len(data.events) == 16_563
    assert len(data.skipped) == 1
    skipped = data.skipped[0]
    assert skipped.line == data.rows  # the last line of the file
    assert "10 of 15 columns" in skipped.reason
    assert "truncated" in skipped.reason and "4,030,464 bytes" in skipped.reason


def test_a_row_cut_short_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="10 of 15 columns"):
        hkerma_row_to_event(GOOD_ROW[:10])
    cut_id = [*GOOD_ROW[:9], "aa19a29f-4f4e-4f05-a756-235678", *GOOD_ROW[10:]]
    with pytest.raises(ValueError, match=r"auditID .* is not a UUID"):
        hkerma_row_to_event(cut_id)


def test_a_row_becomes_an_audit_v1_event_with_its_namespace_and_group_from_the_uri() -> None:
    assert hkerma_row_to_event(GOOD_ROW) == {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": "0b1e4c1e-2f5a-4d8e-9a61-3c2d9f8b7a10",
        "stage": "ResponseComplete",
        "requestURI": GOOD_ROW[8],
        "verb": "create",
        "user": {"username": "kubernetes-admin"},
        "objectRef": {
            "resource": "mutatingwebhookconfigurations",
            "name": "my-cert-manager-webhook",
            "apiGroup": "admissionregistration.k8s.io",
            "apiVersion": "v1",
        },
        "responseStatus": {"code": 201},
        "requestReceivedTimestamp": "2023-01-27T18:29:55.572000Z",
    }


def test_hkerma_object_columns_are_exactly_what_the_api_server_derives_from_the_uri() -> None:
    """Pins the column mapping: resource, subresource and name agree with requestURI everywhere."""
    assert datasets.hkerma_uri_mismatches() == []


def test_hkerma_columns_hold_what_the_mapping_says() -> None:
    rows = [row for _, row in hkerma_rows() if len(row) == len(HKERMA_COLUMNS)]
    assert {row[0] for row in rows} == {'{"name":"k8s-master-perfspec"}'}
    for index, (_, target, _) in enumerate(HKERMA_COLUMNS):
        if target is None and index:
            assert {row[index] for row in rows} == {""}, HKERMA_COLUMNS[index]
    assert {row[3] for row in rows} == {
        "get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"
    }  # fmt: skip
    for row in rows:
        assert (row[3] == "watch") == ("watch=true" in row[8].lower()), row
        assert row[11] != "201" or row[3] == "create", row
        assert row[10] != "ResponseStarted" or row[3] == "watch", row
    # An auditID repeats only for the two stages of one watch, with the same received time.
    by_id: dict[str, list[list[str]]] = {}
    for row in rows:
        by_id.setdefault(row[9], []).append(row)
    for repeated in (group for group in by_id.values() if len(group) > 1):
        assert sorted(r[10] for r in repeated) == ["ResponseComplete", "ResponseStarted"]
        assert {r[3] for r in repeated} == {"watch"}
        assert len({r[1] for r in repeated}) == 1


def test_k3watch_reads_every_hkerma_event_without_a_parse_error() -> None:
    from tests.library.churn import hkerma_run

    run = hkerma_run()
    assert run.events == 16_563
    assert run.result.parse_errors == {}


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (
            "/api/v1/namespaces/kube-system/configmaps"
            "?fieldSelector=metadata.name%3Dkube-root-ca.crt&watch=true",
            {"resource": "configmaps", "namespace": "kube-system", "name": "kube-root-ca.crt"},
        ),
        (
            "/apis/apps/v1/namespaces/shop/deployments/web/status",
            {"resource": "deployments", "namespace": "shop", "name": "web", "subresource": "status",
             "apiGroup": "apps"},
        ),
        ("/api/v1/namespaces/foo", {"resource": "namespaces", "namespace": "foo", "name": "foo"}),
        (
            "/api/v1/namespaces/foo/finalize",
            {"resource": "namespaces", "namespace": "foo", "name": "foo",
             "subresource": "finalize"},
        ),
        ("/api/v1/namespaces?fieldManager=helm", {"resource": "namespaces"}),
        ("/api/v1/watch/namespaces/a/pods", {"resource": "pods", "namespace": "a"}),
        (
            "/apis/rbac.authorization.k8s.io/v1/clusterroles/view",
            {"resource": "clusterroles", "name": "view", "apiGroup": "rbac.authorization.k8s.io"},
        ),
    ],
)  # fmt: skip
def test_request_uris_parse_like_the_api_server(uri: str, expected: dict[str, str]) -> None:
    blank = dict.fromkeys(("namespace", "name", "apiGroup", "subresource"), "")
    assert parse_request_uri(uri) == {**blank, "apiVersion": "v1", **expected}


@pytest.mark.parametrize("uri", ["/readyz", "/api", "/apis", "/api/v1", "/apis/apps/v1"])
def test_non_resource_and_discovery_uris_have_no_object(uri: str) -> None:
    assert parse_request_uri(uri) is None


# --- normal K3s days -----------------------------------------------------------------------


def test_a_normal_k3s_day_is_deterministic_and_benign() -> None:
    first = datasets.normal_k3s_days(days=1)
    assert first == datasets.normal_k3s_days(days=1)
    assert len(first) > 5_000
    from k3watch.sample import generate_tagged_events

    tags = {tag for _, tag in generate_tagged_events(attacks=False, days=1, seed=7)}
    assert tags == {None}


# --- Falco ---------------------------------------------------------------------------------


def test_every_falco_case_comes_with_its_trace_events() -> None:
    cases = datasets.falco_cases()
    assert len(cases) == 66
    assert sum(c.detect for c in cases) == 45
    assert all(c.events for c in cases)
    assert all(c.detect == bool(c.expected_rules) for c in cases)
    by_name = {c.name: c for c in cases}
    assert by_name["create_configmap_private_creds"].expected_rules == {
        "Create/Modify Configmap With Private Credentials": 6
    }
    assert by_name["fal_01_003"].events == ({"kind": 0},)
    assert by_name["create_privileged_trusted_pod"].rules_files == ("trust_nginx_container.yaml",)


# --- Panther -------------------------------------------------------------------------------


def test_panther_cases_are_all_accounted_for() -> None:
    corpus = datasets.load_panther()
    assert len(corpus.cases) + len(corpus.skipped) == 287
    assert Counter(c.shape for c in corpus.cases) == {"audit": 188, "gke": 47, "aks": 34}
    assert Counter(s.kind for s in corpus.skipped) == {
        "Azure activity-log operation": 6,
        "GCP log of another service": 6,
        "GCP log without a Kubernetes request": 2,
        "GKE non-resource request": 2,
        "GKE log without an HTTP status": 1,
        "GKE log without the object": 1,
    }


def test_panther_cases_are_scanned_without_parse_errors() -> None:
    run = evaluate(case.event for case in datasets.panther_cases())
    assert run.events == len(datasets.panther_cases())
    assert run.result.parse_errors == {}


def test_panther_enrichment_is_dropped_and_its_time_format_normalized() -> None:
    shape, event = panther_event(
        {
            "kind": "Event",
            "verb": "get",
            "requestReceivedTimestamp": "2022-11-29 00:09:04.38",
            "p_log_type": "Amazon.EKS.Audit",
            "p_any_ip_addresses": ["8.8.8.8"],
        }
    )
    assert shape == "audit"
    assert event == {
        "kind": "Event",
        "verb": "get",
        "requestReceivedTimestamp": "2022-11-29T00:09:04.380000Z",
    }


def test_the_aks_wrapper_is_unwrapped_to_the_audit_event_it_carries() -> None:
    inner = {"kind": "Event", "verb": "create", "objectRef": {"resource": "pods"}}
    shape, event = panther_event(
        {"category": "kube-audit", "properties": {"log": json.dumps(inner)}, "p_log_type": "x"}
    )
    assert (shape, event) == ("aks", inner)


def test_a_gke_exec_becomes_the_audit_event_of_the_same_request() -> None:
    shape, event = panther_event(
        {
            "protoPayload": {
                "authenticationInfo": {"principalEmail": "user@company.com"},
                "authorizationInfo": [{"granted": True, "permission": "x.pods.exec.create"}],
                "methodName": "io.k8s.core.v1.pods.exec.create",
                "requestMetadata": {"callerIP": "8.8.8.8",
                                    "callerSuppliedUserAgent": "kubectl/v1.28"},
                "resourceName": "core/v1/namespaces/prod/pods/db/exec",
                "serviceName": "k8s.io",
                "request": {"command": ["sh", "-c", "cat /x y"], "container": "pg"},
                "status": {"code": 7},
            },
            "timestamp": "2024-02-16 11:48:22.742154000",
        }
    )  # fmt: skip
    assert shape == "gke"
    assert event["verb"] == "create"
    assert event["user"] == {"username": "user@company.com"}
    assert event["sourceIPs"] == ["8.8.8.8"]
    assert event["userAgent"] == "kubectl/v1.28"
    assert event["objectRef"] == {
        "resource": "pods",
        "namespace": "prod",
        "name": "db",
        "apiVersion": "v1",
        "subresource": "exec",
    }
    assert event["requestURI"] == (
        "/api/v1/namespaces/prod/pods/db/exec?command=sh&command=-c&command=cat%20%2Fx%20y"
        "&container=pg"
    )
    assert event["responseStatus"] == {"code": 403}  # gRPC PERMISSION_DENIED
    assert event["annotations"] == {"authorization.k8s.io/decision": "allow"}
    assert event["requestReceivedTimestamp"] == "2024-02-16T11:48:22.742154Z"


def test_logs_that_are_not_audit_events_are_refused_not_guessed() -> None:
    with pytest.raises(datasets.Unmappable, match="Azure activity-log operation"):
        panther_event({"category": "Administrative", "operationName": "X/ROLEBINDINGS/WRITE"})
    with pytest.raises(datasets.Unmappable, match="GCP log of another service"):
        panther_event(
            {
                "protoPayload": {
                    "methodName": "v2.deploymentmanager.deployments.insert",
                    "serviceName": "deploymentmanager.googleapis.com",
                }
            }
        )
