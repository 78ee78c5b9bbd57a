"""Field paths on raw audit events: dotted paths, literal keys, lists, missing vs null, derived."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from k3watch.rules.fields import MISSING, compile_getter, iter_strings

Matches = Callable[[str, dict[str, Any]], bool]
Builder = Callable[..., dict[str, Any]]

SECRET_EXEC = (
    "/api/v1/namespaces/prod/pods/web-0/exec?command=sh&command=-c"
    "&command=cat+%2Fvar%2Frun%2Fsecrets%2Fkubernetes.io%2Fserviceaccount%2Ftoken"
    "&container=app&stdin=true&stdout=true"
)


def container(privileged: bool | None) -> dict[str, Any]:
    context = {} if privileged is None else {"privileged": privileged}
    return {"name": "c", "image": "nginx", "securityContext": context}


def pod(*containers: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "Pod", "spec": {"containers": list(containers)}}


# --- getters -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["verb", "objectRef.resource", "responseStatus.metadata.x", "a.b.c.d"],
)
def test_a_path_absent_from_the_event_is_missing_not_none(path: str) -> None:
    assert compile_getter(path)({"objectRef": {}, "responseStatus": {"metadata": {}}}) is MISSING


def test_a_dotted_path_descends_nested_objects() -> None:
    raw = {"objectRef": {"resource": "secrets"}, "a": {"b": {"c": {"d": 4}}}}
    assert compile_getter("objectRef.resource")(raw) == "secrets"
    assert compile_getter("a.b.c.d")(raw) == 4


def test_a_json_null_is_returned_as_none_not_missing() -> None:
    assert compile_getter("user.username")({"user": {"username": None}}) is None
    assert compile_getter("a.b.c")({"a": {"b": {"c": None}}}) is None


def test_the_annotation_key_containing_dots_and_a_slash_is_reached() -> None:
    raw = {"annotations": {"authorization.k8s.io/decision": "forbid"}}
    assert compile_getter("annotations.authorization.k8s.io/decision")(raw) == "forbid"
    assert compile_getter("annotations.authorization.k8s.io/reason")(raw) is MISSING


def test_a_top_level_key_containing_a_dot_wins_over_splitting() -> None:
    raw = {"objectRef.resource": "literal", "objectRef": {"resource": "nested"}}
    assert compile_getter("objectRef.resource")(raw) == "literal"
    assert compile_getter("objectRef.resource")({"objectRef": {"resource": "nested"}}) == "nested"


def test_a_literal_key_wins_at_a_deeper_level_too() -> None:
    raw = {"a": {"b.c": {"d": "literal"}, "b": {"c": {"d": "nested"}}}}
    assert compile_getter("a.b.c.d")(raw) == "literal"
    del raw["a"]["b.c"]
    assert compile_getter("a.b.c.d")(raw) == "nested"


def test_a_list_on_the_path_yields_the_value_of_every_element() -> None:
    raw = {"requestObject": pod(container(False), container(True))}
    get = compile_getter("requestObject.spec.containers.securityContext.privileged")
    assert get(raw) == [False, True]


def test_elements_without_the_field_are_skipped_and_none_found_is_missing() -> None:
    get = compile_getter("requestObject.spec.containers.securityContext.privileged")
    assert get({"requestObject": pod(container(None), container(True))}) == [True]
    assert get({"requestObject": pod(container(None), container(None))}) is MISSING
    assert get({"requestObject": pod()}) is MISSING


def test_nested_lists_are_flattened_into_one_list() -> None:
    raw = {
        "requestObject": {
            "spec": {
                "containers": [
                    {"ports": [{"containerPort": 80}, {"containerPort": 443}]},
                    {"ports": [{"containerPort": 8080}]},
                ]
            }
        }
    }
    assert compile_getter("requestObject.spec.containers.ports.containerPort")(raw) == [
        80,
        443,
        8080,
    ]


def test_a_list_valued_leaf_is_flattened_into_the_fan_out() -> None:
    raw = {"a": [{"b": ["x", "y"]}, {"b": "z"}]}
    assert compile_getter("a.b")(raw) == ["x", "y", "z"]


def test_iter_strings_finds_strings_at_any_depth_and_nothing_else() -> None:
    found = iter_strings({"a": ["x", {"b": "y"}, 3, None, True], "c": "z"})
    assert sorted(found) == ["x", "y", "z"]


# --- through rules -------------------------------------------------------------------------


def test_a_rule_matches_the_privileged_flag_of_the_second_container(
    matches: Matches, event: Builder
) -> None:
    detection = """
        sel:
          requestObject.spec.containers.securityContext.privileged: true
        condition: sel
    """
    second = event("create", requestObject=pod(container(False), container(True)))
    neither = event("create", requestObject=pod(container(False), container(None)))
    assert matches(detection, second)
    assert not matches(detection, neither)


def test_a_rule_matches_any_of_the_source_ips(matches: Matches, event: Builder) -> None:
    detection = """
        sel:
          sourceIPs: 192.168.1.9
        condition: sel
    """
    assert matches(detection, event(sourceIPs=["10.0.0.1", "192.168.1.9"]))
    assert not matches(detection, event(sourceIPs=["10.0.0.1", "192.168.1.90"]))


def test_a_rule_reads_the_decision_annotation(matches: Matches, event: Builder) -> None:
    detection = """
        sel:
          annotations.authorization.k8s.io/decision: forbid
        condition: sel
    """
    assert matches(detection, event(annotations={"authorization.k8s.io/decision": "forbid"}))
    assert not matches(detection, event(annotations={"authorization.k8s.io/decision": "allow"}))


def test_null_matches_a_missing_field_and_a_json_null_but_not_a_value(
    matches: Matches, event: Builder
) -> None:
    detection = """
        sel:
          impersonatedUser.username: null
        condition: sel
    """
    assert matches(detection, event())
    assert matches(detection, event(impersonatedUser={"username": None}))
    assert not matches(detection, event(impersonatedUser={"username": "bob"}))
    assert not matches(detection, event(impersonatedUser={"username": ""}))


def test_exists_is_true_for_a_json_null_and_false_for_a_missing_field(
    matches: Matches, event: Builder
) -> None:
    detection = """
        sel:
          impersonatedUser.username|exists: true
        condition: sel
    """
    assert matches(detection, event(impersonatedUser={"username": None}))
    assert not matches(detection, event())


# --- derived exec fields ---------------------------------------------------------------------


def test_exec_command_is_decoded_from_the_request_uri(matches: Matches, event: Builder) -> None:
    detection = """
        sel:
          k3watch.exec.command|contains: cat /var/run/secrets/
        condition: sel
    """
    assert matches(detection, event("create", subresource="exec", requestURI=SECRET_EXEC))
    harmless = SECRET_EXEC.replace("%2Fvar%2Frun%2Fsecrets", "%2Ftmp")
    assert not matches(detection, event("create", subresource="exec", requestURI=harmless))


def test_exec_command_joins_the_arguments_with_spaces() -> None:
    raw = {"requestURI": SECRET_EXEC}
    assert compile_getter("k3watch.exec.command")(raw) == (
        "sh -c cat /var/run/secrets/kubernetes.io/serviceaccount/token"
    )


def test_exec_argv_is_a_list_that_matches_any_argument(matches: Matches, event: Builder) -> None:
    raw = {"requestURI": SECRET_EXEC}
    assert compile_getter("k3watch.exec.argv")(raw) == [
        "sh",
        "-c",
        "cat /var/run/secrets/kubernetes.io/serviceaccount/token",
    ]
    detection = """
        sel:
          k3watch.exec.argv: '-c'
        condition: sel
    """
    assert matches(detection, event("create", subresource="exec", requestURI=SECRET_EXEC))
    no_flag = "/api/v1/namespaces/prod/pods/web-0/exec?command=id&container=app"
    assert not matches(detection, event("create", subresource="exec", requestURI=no_flag))


def test_exec_container_is_the_container_parameter() -> None:
    get = compile_getter("k3watch.exec.container")
    assert get({"requestURI": SECRET_EXEC}) == "app"
    assert get({"requestURI": "/api/v1/namespaces/d/pods/p/exec?command=id"}) is MISSING


def test_exec_fields_are_missing_without_a_command_parameter() -> None:
    for path in ("k3watch.exec.command", "k3watch.exec.argv"):
        get = compile_getter(path)
        assert get({"requestURI": "/api/v1/namespaces/d/pods/p/log?container=app"}) is MISSING
        assert get({"requestURI": "/apis/x/v1/things?subcommand=id"}) is MISSING
        assert get({}) is MISSING


# --- derived pod fields --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resource", "body"),
    [
        ("pods", {"spec": {"hostPID": True}}),
        ("deployments", {"spec": {"template": {"spec": {"hostPID": True}}}}),
        (
            "cronjobs",
            {"spec": {"jobTemplate": {"spec": {"template": {"spec": {"hostPID": True}}}}}},
        ),
    ],
)
def test_pod_spec_finds_the_pod_spec_of_every_workload(resource: str, body: dict[str, Any]) -> None:
    raw = {"objectRef": {"resource": resource}, "requestObject": body}
    assert compile_getter("k3watch.pod.spec.hostPID")(raw) is True


def test_pod_spec_is_missing_for_other_resources() -> None:
    raw = {"objectRef": {"resource": "services"}, "requestObject": {"spec": {"hostPID": True}}}
    assert compile_getter("k3watch.pod.spec.hostPID")(raw) is MISSING
    assert compile_getter("k3watch.pod.spec")({"objectRef": {"resource": "pods"}}) is MISSING


def test_pod_containers_include_init_and_ephemeral_containers(
    matches: Matches, event: Builder
) -> None:
    detection = """
        sel:
          k3watch.pod.containers.securityContext.privileged: true
        condition: sel
    """
    init = {"spec": {"containers": [container(False)], "initContainers": [container(True)]}}
    plain = {"spec": {"containers": [container(False)], "initContainers": [container(None)]}}
    assert matches(detection, event("create", requestObject=init))
    assert not matches(detection, event("create", requestObject=plain))
