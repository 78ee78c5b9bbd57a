"""First-match semantics, as kube-apiserver's policy checker applies them."""

from __future__ import annotations

import pytest
from tests.policy.conftest import policy_text, request

from k3watch.event import Event
from k3watch.policy.evaluate import RequestAttributes, attributes_from_event, evaluate
from k3watch.policy.model import parse_policy


def decide(rules: list[str], req: RequestAttributes, top: str = "") -> tuple[int | None, str]:
    decision = evaluate(parse_policy(policy_text(*rules, top=top)), req)
    return decision.rule, decision.level


def test_the_first_matching_rule_wins_and_no_match_is_none() -> None:
    rules = ["{level: Request, verbs: [create]}", "{level: Metadata, verbs: [create, get]}"]
    assert decide(rules, request("create", "pods")) == (0, "Request")
    assert decide(rules, request("get", "pods")) == (1, "Metadata")
    assert decide(rules, request("delete", "pods")) == (None, "None")


@pytest.mark.parametrize(
    ("spec", "resource", "sub", "matches"),
    [
        ("pods", "pods", "", True),
        ("pods", "pods", "exec", False),
        ("pods/exec", "pods", "exec", True),
        ("pods/exec", "pods", "", False),
        ("pods/*", "pods", "exec", True),
        ("pods/*", "pods", "", True),  # checker.go does not require a subresource here
        ("pods/*", "services", "proxy", False),
        ("*/scale", "replicationcontrollers", "scale", True),
        ("*/status", "pods", "status", True),
        ("*/status", "pods", "", False),
        ("*", "pods", "exec", True),
    ],
)
def test_resource_entries_match_like_the_api_server(
    spec: str, resource: str, sub: str, matches: bool
) -> None:
    rules = [f"{{level: Request, resources: [{{group: '', resources: ['{spec}']}}]}}"]
    got = decide(rules, request("create", resource, subresource=sub))
    assert got == ((0, "Request") if matches else (None, "None"))


def test_scale_of_apps_resources_needs_the_apps_group() -> None:
    req = request("update", "deployments", api_group="apps", subresource="scale")
    core = ["{level: Request, resources: [{group: '', resources: ['*/scale']}]}"]
    assert decide(core, req) == (None, "None")
    apps = ["{level: Request, resources: [{group: apps, resources: ['*/scale']}]}"]
    assert decide(apps, req) == (0, "Request")


def test_group_is_exact_and_empty_is_the_core_group() -> None:
    rules = ["{level: Request, resources: [{group: ''}]}"]
    assert decide(rules, request("get", "pods")) == (0, "Request")
    assert decide(rules, request("get", "deployments", api_group="apps")) == (None, "None")


def test_an_empty_resources_list_of_a_group_means_all_of_it() -> None:
    rules = ["{level: Request, resources: [{group: rbac.authorization.k8s.io}]}"]
    req = request("create", "clusterroles", api_group="rbac.authorization.k8s.io")
    assert decide(rules, req) == (0, "Request")


def test_resource_names_restrict_by_object_name() -> None:
    rules = [
        "{level: None, resources: [{group: '', resources: [configmaps], resourceNames: [a]}]}",
        "{level: Metadata}",
    ]
    assert decide(rules, request("update", "configmaps", name="a", namespace="x"))[0] == 0
    assert decide(rules, request("update", "configmaps", name="b", namespace="x"))[0] == 1


def test_non_resource_urls_match_exactly_or_by_trailing_star_prefix() -> None:
    rules = ["{level: None, nonResourceURLs: ['/healthz*', /version]}", "{level: Metadata}"]
    assert decide(rules, request("get", path="/healthz/etcd"))[0] == 0
    assert decide(rules, request("get", path="/version"))[0] == 0
    assert decide(rules, request("get", path="/version/x"))[0] == 1
    assert decide(rules, request("get", "pods"))[0] == 1  # a resource request never matches


def test_a_rule_with_resources_or_namespaces_never_matches_a_non_resource_request() -> None:
    rules = ["{level: None, namespaces: [shop]}", "{level: Metadata}"]
    assert decide(rules, request("get", path="/api"))[0] == 1


def test_namespaces_only_match_namespaced_requests_unless_empty_is_listed() -> None:
    rules = ["{level: Request, namespaces: [shop]}", "{level: Metadata}"]
    assert decide(rules, request("create", "pods", namespace="shop"))[0] == 0
    cluster = request("create", "clusterroles", api_group="rbac.authorization.k8s.io")
    assert decide(rules, cluster)[0] == 1
    assert decide(["{level: Request, namespaces: ['']}"], cluster)[0] == 0


def test_users_and_groups_match_exactly_and_need_a_user() -> None:
    rules = [
        "{level: None, users: ['system:node:*']}",
        "{level: Request, userGroups: [ops]}",
        "{level: Metadata}",
    ]
    assert decide(rules, request("get", "pods", user="system:node:a"))[0] == 2
    assert decide(rules, request("get", "pods", groups=("dev", "ops")))[0] == 1
    unauthenticated = RequestAttributes(verb="get", resource="pods")
    assert decide(rules, unauthenticated)[0] == 2


def test_omitted_stages_are_the_union_of_policy_and_rule() -> None:
    policy = parse_policy(policy_text("{level: Metadata, omitStages: [ResponseStarted]}"))
    decision = evaluate(policy, request("watch", "pods"))
    assert decision.omit_stages == {"RequestReceived", "ResponseStarted"}
    assert not decision.logs_stage("ResponseStarted")
    assert decision.logs_stage("ResponseComplete")
    unmatched = evaluate(
        parse_policy(policy_text("{level: None, verbs: [get]}")), request("list", "pods")
    )
    assert unmatched.rule is None and unmatched.omit_stages == {"RequestReceived"}


def test_omit_managed_fields_of_a_rule_overrides_the_policy() -> None:
    text = policy_text(
        "{level: Request, verbs: [create], omitManagedFields: false}",
        "{level: Request}",
        top="omitManagedFields: true\n",
    )
    policy = parse_policy(text)
    assert evaluate(policy, request("create", "pods")).omit_managed_fields is False
    assert evaluate(policy, request("update", "pods")).omit_managed_fields is True


def test_detection_sees_nothing_when_the_completing_stages_are_omitted() -> None:
    policy = parse_policy(policy_text("{level: Metadata, omitStages: [ResponseComplete]}"))
    get = request("get", "pods")
    assert evaluate(policy, get).effective_level(get.long_running) == "None"
    watch = request("watch", "pods")
    assert evaluate(policy, watch).effective_level(watch.long_running) == "Metadata"


def test_attributes_come_from_the_audit_event() -> None:
    raw = {
        "verb": "create",
        "user": {"username": "alice", "groups": ["dev"]},
        "impersonatedUser": {"username": "system:admin"},
        "objectRef": {
            "resource": "pods",
            "subresource": "exec",
            "namespace": "shop",
            "name": "web",
            "apiGroup": "",
        },
        "requestURI": "/api/v1/namespaces/shop/pods/web/exec?command=sh",
    }
    attrs = attributes_from_event(Event(raw))
    assert attrs == RequestAttributes(
        verb="create",
        user="alice",
        groups=("dev",),
        resource="pods",
        subresource="exec",
        namespace="shop",
        name="web",
    )
    assert attrs.kind == "pods/exec" and attrs.long_running


def test_a_non_resource_event_keeps_its_path_and_a_failed_login_has_no_user() -> None:
    raw = {"verb": "get", "user": {}, "requestURI": "/version?timeout=32s"}
    attrs = attributes_from_event(raw)
    assert attrs.resource is None and attrs.path == "/version" and attrs.user is None
