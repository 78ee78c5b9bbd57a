"""The background looks like K3s: its identities, user agents and benign look-alikes."""

from __future__ import annotations

from typing import Any

from k3watch.sample.engine import Tagged
from k3watch.sample.records import api_path, forbidden_message, watch_query


def _background(two_days: list[Tagged]) -> list[dict[str, Any]]:
    return [event for event, tag in two_days if tag is None]


def _username(event: dict[str, Any]) -> str:
    return str(event["user"].get("username", ""))


def test_k3s_components_send_the_k3s_user_agent(two_days: list[Tagged]) -> None:
    for event in _background(two_days):
        user = _username(event)
        if user.startswith("system:node:") or user == "system:kube-proxy":
            assert event["userAgent"] == "k3s/v1.31.4+k3s1 (linux/amd64) kubernetes/a562d09"
        if user.startswith("system:serviceaccount:kube-system:") and event["sourceIPs"] == [
            "127.0.0.1"
        ]:
            assert event["userAgent"].endswith("/" + user)  # controller-manager clients


def test_supervisor_controllers_have_distinct_user_agents(two_days: list[Tagged]) -> None:
    agents = {
        event["userAgent"].split("/")[0]
        for event in _background(two_days)
        if _username(event) == "system:k3s-supervisor"
    }
    assert agents == {"k3s-supervisor@server-1", "deploy@server-1", "helm-controller@server-1"}


def test_helm_controller_binds_its_service_accounts_to_cluster_admin(
    two_days: list[Tagged],
) -> None:
    bindings = [
        e
        for e in _background(two_days)
        if e["verb"] == "create"
        and e["objectRef"].get("resource") == "clusterrolebindings"
        and e["userAgent"].startswith("helm-controller@")
    ]
    assert {e["objectRef"]["name"] for e in bindings} == {
        "helm-kube-system-traefik",
        "helm-kube-system-traefik-crd",
    }
    assert all(e["requestObject"]["roleRef"]["name"] == "cluster-admin" for e in bindings)


def _created_pods(two_days: list[Tagged]) -> list[dict[str, Any]]:
    return [
        e
        for e in _background(two_days)
        if e["verb"] == "create"
        and e.get("objectRef", {}).get("resource") == "pods"
        and "subresource" not in e["objectRef"]
    ]


def test_servicelb_pods_add_net_admin_on_every_node(two_days: list[Tagged]) -> None:
    svclb = [
        e
        for e in _created_pods(two_days)
        if e["requestObject"]["metadata"].get("generateName", "").startswith("svclb-traefik-")
    ]
    assert len(svclb) == 3
    for event in svclb:
        containers = event["requestObject"]["spec"]["containers"]
        assert {c["image"] for c in containers} == {"rancher/klipper-lb:v0.4.9"}
        assert all(c["securityContext"]["capabilities"]["add"] == ["NET_ADMIN"] for c in containers)


def test_local_path_helper_pods_mount_the_storage_directory(two_days: list[Tagged]) -> None:
    helpers = [
        e
        for e in _created_pods(two_days)
        if e["objectRef"].get("name", "").startswith("helper-pod-create-pvc-")
    ]
    assert len(helpers) >= 3  # day 0 for postgres, then the nightly backup volume
    for event in helpers:
        assert event["objectRef"]["namespace"] == "kube-system"
        volumes = event["requestObject"]["spec"]["volumes"]
        assert {"path": "/var/lib/rancher/k3s/storage/", "type": "DirectoryOrCreate"} in [
            v.get("hostPath") for v in volumes
        ]


def test_routine_exec_is_by_alice_from_the_office(two_days: list[Tagged]) -> None:
    execs = [
        e for e in _background(two_days) if e.get("objectRef", {}).get("subresource") == "exec"
    ]
    assert {(_username(e), e["sourceIPs"][0].rsplit(".", 1)[0]) for e in execs} <= {
        ("alice@example.com", "192.0.2")
    }


def test_bob_is_denied_a_few_times_a_day(two_days: list[Tagged]) -> None:
    denied = [e for e in _background(two_days) if e["responseStatus"]["code"] == 403]
    assert denied and {_username(e) for e in denied} == {"bob@example.com"}
    assert len(denied) < 20


def test_forbidden_message_is_worded_like_the_api_server() -> None:
    message = forbidden_message("bob@example.com", "list", "pods", "ci", None, None, "")
    assert message == (
        'pods is forbidden: User "bob@example.com" cannot list resource "pods" in API group "" '
        'in the namespace "ci"'
    )
    message = forbidden_message("u", "get", "deployments", None, "x", "scale", "apps")
    assert message == (
        'deployments.apps "x" is forbidden: User "u" cannot get resource "deployments/scale" in '
        'API group "apps" at the cluster scope'
    )


def test_request_paths_follow_the_rest_layout() -> None:
    assert api_path("pods", "shop", "web-1", "exec") == "/api/v1/namespaces/shop/pods/web-1/exec"
    assert api_path("leases", "kube-node-lease", "agent-1", group="coordination.k8s.io") == (
        "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/agent-1"
    )
    assert api_path("namespaces", "shop", "shop") == "/api/v1/namespaces/shop"
    query = watch_query("42", 463, field_selector="metadata.name=x")
    assert query == (
        "allowWatchBookmarks=true&fieldSelector=metadata.name%3Dx&resourceVersion=42"
        "&timeout=7m43s&timeoutSeconds=463&watch=true"
    )
