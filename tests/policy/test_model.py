"""Reading a policy as kube-apiserver does: every refusal is an error with its line."""

from __future__ import annotations

import pytest
from tests.policy.conftest import policy_text

from k3watch.policy.model import PolicyError, decode_policy, parse_policy

GOOD = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
omitManagedFields: true
rules:
  - level: None
    users: ["system:kube-proxy"]
    verbs: [watch]
    resources:
      - group: ""
        resources: [endpoints, services]
  - level: Request
    userGroups: ["system:authenticated"]
    namespaces: [shop]
    resources:
      - group: apps
        resources: [deployments]
        resourceNames: [web]
    omitStages: [ResponseStarted]
    omitManagedFields: false
  - level: Metadata
    nonResourceURLs: ["/healthz*"]
  - level: Metadata
"""


def errors(text: str) -> list[tuple[str, int | None]]:
    """(code, line) of each error the text gets."""
    _, findings = decode_policy(text, "p.yaml")
    return [(f.code, f.line) for f in findings if f.severity == "error"]


def warnings(text: str) -> list[tuple[str, int | None]]:
    _, findings = decode_policy(text, "p.yaml")
    return [(f.code, f.line) for f in findings if f.severity == "warning"]


def test_a_valid_policy_decodes_into_typed_rules_with_their_lines() -> None:
    policy = parse_policy(GOOD, "p.yaml")
    assert policy.omit_stages == ("RequestReceived",)
    assert policy.omit_managed_fields is True
    first, second, third, last = policy.rules
    assert (first.level, first.users, first.verbs, first.line) == (
        "None",
        ("system:kube-proxy",),
        ("watch",),
        6,
    )
    assert first.resources[0].group == ""
    assert first.resources[0].resources == ("endpoints", "services")
    assert second.resources[0].resource_names == ("web",)
    assert second.namespaces == ("shop",) and second.user_groups == ("system:authenticated",)
    assert second.omit_stages == ("ResponseStarted",) and second.omit_managed_fields is False
    assert second.line_of("namespaces") == 14
    assert third.non_resource_urls == ("/healthz*",)
    assert last.index == 3 and last.line == 23 and last.omit_managed_fields is None


def test_a_json_policy_is_read_too() -> None:
    text = '{"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [{"level": "Metadata"}]}'
    assert parse_policy(text).rules[0].level == "Metadata"


@pytest.mark.parametrize(
    ("head", "line"),
    [
        ("apiVersion: audit.k8s.io/v1beta1\nkind: Policy\n", 1),
        ("apiVersion: audit.k8s.io/v1\nkind: Event\n", 1),
        ("kind: Policy\n", 1),
        ("apiVersion: v1\nkind: Policy\n", 1),
    ],
)
def test_only_audit_k8s_io_v1_policy_is_accepted(head: str, line: int) -> None:
    assert errors(head + "rules:\n  - level: Metadata\n") == [("api-version", line)]


def test_a_policy_without_rules_is_refused() -> None:
    assert errors("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: []\n") == [("no-rules", 3)]
    assert errors("apiVersion: audit.k8s.io/v1\nkind: Policy\n") == [("no-rules", 1)]


@pytest.mark.parametrize(
    ("rule", "code"),
    [
        ("{verbs: [get]}", "level-required"),
        ("{level: metadata}", "level-invalid"),
        ("{level: Verbose}", "level-invalid"),
        ("{level: Metadata, omitStages: [RequestRecieved]}", "stage-invalid"),
        (
            "{level: Metadata, resources: [{group: apps/v1, resources: [deployments]}]}",
            "group-version",
        ),
        (
            "{level: Metadata, resources: [{group: Apps, resources: [deployments]}]}",
            "group-invalid",
        ),
        ("{level: Metadata, resources: [{group: '*'}]}", "group-invalid"),
        ("{level: Metadata, resources: [{group: '', resourceNames: [x]}]}", "resource-names"),
        ("{level: Metadata, nonResourceURLs: [/healthz], resources: [{group: ''}]}", "mixed-urls"),
        ("{level: Metadata, nonResourceURLs: [/healthz], namespaces: [a]}", "mixed-urls"),
        ("{level: Metadata, nonResourceURLs: [healthz]}", "non-resource-url"),
        ("{level: Metadata, nonResourceURLs: ['/api/*/x']}", "non-resource-wildcard"),
        ("{level: Metadata, verbs: get}", "type"),
        ("{level: 3}", "type"),
        ("{level: Metadata, omitManagedFields: 'yes please'}", "type"),
    ],
)
def test_each_rule_the_api_server_refuses_is_an_error_on_its_line(rule: str, code: str) -> None:
    text = f"apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - level: None\n  - {rule}\n"
    found = errors(text)
    assert found and all(c == code and line == 5 for c, line in found), found


def test_field_errors_point_at_the_field_line() -> None:
    text = (
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - level: Metadata\n"
        "    resources:\n      - group: ''\n        resources: [pods]\n"
        "      - group: apps/v1\n        resources: [deployments]\n"
    )
    assert errors(text) == [("group-version", 8)]
    _, findings = decode_policy(text, "p.yaml")
    assert findings[0].rule == 0 and "group: apps" in findings[0].fix


def test_a_bad_top_level_stage_is_refused() -> None:
    text = "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [Done]\nrules:\n- level: None\n"
    assert errors(text) == [("stage-invalid", 3)]


def test_yaml_syntax_errors_carry_their_line() -> None:
    text = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - level: [Metadata\n"
    ((code, line),) = errors(text)
    assert code == "yaml-syntax" and line is not None and line >= 4


def test_a_document_that_is_not_a_mapping_is_refused() -> None:
    assert errors("- level: Metadata\n") == [("not-a-policy", 1)]
    assert errors("") == [("not-a-policy", None)]


def test_unknown_keys_are_warnings_because_the_api_server_ignores_them() -> None:
    text = (
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nredactions: []\nrules:\n"
        "  - Level: Request\n    level: Metadata\n    namespace: [shop]\n"
    )
    assert warnings(text) == [("unknown-key", 3), ("unknown-key", 5), ("unknown-key", 7)]
    policy = parse_policy(text)
    assert policy.rules[0].level == "Metadata" and policy.rules[0].namespaces == ()
    _, findings = decode_policy(text, "p.yaml")
    assert "write 'level'" in findings[1].fix


def test_a_key_written_twice_keeps_the_last_value_with_a_warning() -> None:
    text = (
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - level: None\n    level: Metadata\n"
    )
    assert parse_policy(text).rules[0].level == "Metadata"
    assert warnings(text) == [("duplicate-key", 5)]


def test_a_miscased_level_without_the_right_key_is_refused_as_missing() -> None:
    text = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - Level: Metadata\n"
    assert errors(text) == [("level-required", 4)]


def test_parse_policy_raises_with_the_first_error_location_and_all_findings() -> None:
    text = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - level: Loud\n  - {}\n"
    with pytest.raises(PolicyError) as info:
        parse_policy(text, "bad.yaml")
    error = info.value
    assert str(error.location) == "bad.yaml:4"
    assert "and 1 more errors" in str(error)
    assert [f.code for f in error.findings] == ["level-invalid", "level-required"]


def test_only_the_first_document_counts() -> None:
    text = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n---\nkind: Other\n"
    assert parse_policy(text).rules[0].level == "None"
    assert warnings(text) == [("extra-document", None)]


def test_null_lists_mean_empty_and_null_items_are_empty_strings() -> None:
    text = policy_text("{level: Metadata, users: null, namespaces: [~]}")
    rule = parse_policy(text).rules[0]
    assert rule.users == () and rule.namespaces == ("",)
