"""Lint: each known mistake has a policy that triggers it and a near miss that does not."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.policy.conftest import policy_text

from k3watch.policy.lint import lint_policy_text

CORPUS = Path(__file__).parents[1] / "corpus"
CATCH_ALL = "{level: Metadata}"
SAFE = (
    "{level: Metadata, resources: [{group: '', resources: [secrets, configmaps, "
    "serviceaccounts/token]}, {group: authentication.k8s.io, resources: [tokenreviews]}]}"
)


def codes(text: str) -> dict[str, list[int | None]]:
    """The codes found, each with the rules it was found on."""
    out: dict[str, list[int | None]] = {}
    for finding in lint_policy_text(text, "p.yaml"):
        out.setdefault(finding.code, []).append(finding.rule)
    return out


def test_a_clean_policy_has_no_findings() -> None:
    assert (
        codes(
            policy_text(
                SAFE,
                "{level: Request, verbs: [create]}",
                CATCH_ALL,
                top="omitStages: [RequestReceived]\nomitManagedFields: true\n",
            )
        )
        == {}
    )


@pytest.mark.parametrize(
    "rules",
    [
        ["{level: RequestResponse}"],  # everything, secrets included
        ["{level: Request}"],  # secret writes carry the values
        ["{level: RequestResponse, verbs: [get, list]}", CATCH_ALL],  # reads return them
        ["{level: Request, resources: [{group: authentication.k8s.io}]}", CATCH_ALL],
        ["{level: RequestResponse, resources: [{group: '', resources: ['*/token']}]}", CATCH_ALL],
        ["{level: Request, users: [ci-bot]}", CATCH_ALL],  # a user named in the policy
        ["{level: RequestResponse, namespaces: [vault]}", CATCH_ALL],  # a namespace it names
    ],
)
def test_secret_values_reachable_in_the_log_are_errors(rules: list[str]) -> None:
    found = lint_policy_text(policy_text(*rules), "p.yaml")
    leaks = [f for f in found if f.code == "leaks-secrets"]
    assert leaks and all(f.severity == "error" and f.rule == 0 for f in leaks)


@pytest.mark.parametrize(
    "rules",
    [
        [SAFE, "{level: RequestResponse, verbs: [create, update, patch, delete]}", CATCH_ALL],
        # Request on reads logs no body: a get has none.
        ["{level: Request, verbs: [get, list, watch]}", CATCH_ALL],
        # A TokenRequest's request holds no token; only its response does.
        [
            "{level: Request, resources: [{group: '', resources: [serviceaccounts/token]}]}",
            CATCH_ALL,
        ],
    ],
)
def test_metadata_for_credential_bodies_is_not_a_leak(rules: list[str]) -> None:
    assert "leaks-secrets" not in codes(policy_text(*rules))


def test_a_policy_without_catch_all_is_an_error_naming_unlogged_requests() -> None:
    found = lint_policy_text(policy_text("{level: Metadata, verbs: [create, update]}"), "p.yaml")
    (finding,) = [f for f in found if f.code == "no-catch-all"]
    assert finding.severity == "error" and "get" not in finding.message.split("unlogged")[0]
    assert "pods" in finding.message and finding.line == 4
    assert "no-catch-all" not in codes(policy_text("{level: None, verbs: [get]}", CATCH_ALL))


def test_explicit_drops_are_not_a_missing_catch_all() -> None:
    text = policy_text(
        "{level: None, users: [system:anonymous]}",
        "{level: Metadata, userGroups: [system:authenticated]}",
        "{level: None}",
    )
    assert "no-catch-all" not in codes(text)


def test_request_received_must_be_omitted_somewhere() -> None:
    assert "request-received" in codes(policy_text(CATCH_ALL, top=""))
    per_rule = policy_text("{level: Metadata, omitStages: [RequestReceived]}", top="")
    assert "request-received" not in codes(per_rule)
    assert "request-received" not in codes(policy_text("{level: None}", top=""))


def test_pods_does_not_cover_its_subresources() -> None:
    text = policy_text(
        SAFE, "{level: Request, resources: [{group: '', resources: [pods]}]}", "{level: None}"
    )
    found = [f for f in lint_policy_text(text, "p.yaml") if f.code == "subresources"]
    assert len(found) == 1 and found[0].rule == 1
    assert "pods/exec" in found[0].message and "pods/ephemeralcontainers" in found[0].message
    fixed = policy_text(
        SAFE, "{level: Request, resources: [{group: '', resources: ['pods/*']}]}", "{level: None}"
    )
    assert "subresources" not in codes(fixed)


def test_subresources_named_by_another_rule_are_intended() -> None:
    text = policy_text(
        "{level: Metadata, resources: [{group: '', resources: [pods/exec, pods/attach, "
        "pods/portforward, pods/proxy]}]}",
        "{level: Request, resources: [{group: '', resources: [pods, pods/ephemeralcontainers]}]}",
        CATCH_ALL,
    )
    assert "subresources" not in codes(text)


def test_a_lower_catch_all_only_matters_for_subresources_with_bodies() -> None:
    text = policy_text(
        "{level: Request, resources: [{group: '', resources: [pods]}]}", SAFE, CATCH_ALL
    )
    (finding,) = [f for f in lint_policy_text(text, "p.yaml") if f.code == "subresources"]
    assert "ephemeralcontainers" in finding.message and "pods/exec" not in finding.message


def test_namespaces_on_cluster_scoped_resources_never_match() -> None:
    text = policy_text(
        "{level: Request, namespaces: [kube-system], resources: [{group: "
        "rbac.authorization.k8s.io, resources: [roles, clusterroles]}]}",
        CATCH_ALL,
    )
    assert codes(text)["namespaces-cluster-scoped"] == [0]
    namespaced = policy_text(
        "{level: Request, namespaces: [kube-system], resources: [{group: "
        "rbac.authorization.k8s.io, resources: [roles]}]}",
        CATCH_ALL,
    )
    assert "namespaces-cluster-scoped" not in codes(namespaced)


def test_namespace_scoped_logging_that_drops_cluster_objects_is_flagged() -> None:
    dropped = policy_text(
        SAFE, "{level: Metadata, namespaces: [shop, kube-system]}", "{level: None}"
    )
    found = [
        f for f in lint_policy_text(dropped, "p.yaml") if f.code == "namespaces-cluster-scoped"
    ]
    assert found and found[0].rule == 1 and "clusterroles" in found[0].message
    caught = policy_text(SAFE, "{level: Request, namespaces: [shop]}", CATCH_ALL)
    assert "namespaces-cluster-scoped" not in codes(caught)
    with_empty = policy_text(SAFE, "{level: Metadata, namespaces: [shop, '']}", "{level: None}")
    assert "namespaces-cluster-scoped" not in codes(with_empty)


def test_request_response_on_reads_is_a_volume_warning() -> None:
    text = policy_text(SAFE, "{level: RequestResponse, resources: [{group: apps}]}", CATCH_ALL)
    assert codes(text)["response-on-reads"] == [1]
    writes = policy_text(
        SAFE,
        "{level: RequestResponse, verbs: [create, update, patch], resources: [{group: apps}]}",
        CATCH_ALL,
    )
    assert "response-on-reads" not in codes(writes)


def test_a_rule_behind_a_broader_one_is_shadowed() -> None:
    text = policy_text(
        "{level: Metadata, verbs: [get, list, watch]}",
        "{level: None, users: [system:kube-proxy], verbs: [watch]}",
        CATCH_ALL,
    )
    found = [f for f in lint_policy_text(text, "p.yaml") if f.code == "shadowed-rule"]
    assert [f.rule for f in found] == [1] and "rules[0]" in found[0].message
    reordered = policy_text(
        "{level: None, users: [system:kube-proxy], verbs: [watch]}",
        "{level: Metadata, verbs: [get, list, watch]}",
        CATCH_ALL,
    )
    assert "shadowed-rule" not in codes(reordered)


def test_a_rule_shadowed_by_several_earlier_rules_together() -> None:
    text = policy_text(
        "{level: None, verbs: [get, list, watch]}",
        "{level: Metadata, verbs: [create, update, patch, delete, deletecollection]}",
        "{level: Request, resources: [{group: '', resources: [pods]}]}",
        CATCH_ALL,
    )
    # The catch-all still gets non-resource requests with other methods (post, head, options).
    assert codes(text)["shadowed-rule"] == [2]


def test_a_catch_all_after_a_partial_rule_is_not_shadowed() -> None:
    text = policy_text(
        "{level: None, userGroups: [system:nodes]}",
        "{level: None, nonResourceURLs: ['/*']}",
        CATCH_ALL,
    )
    assert "shadowed-rule" not in codes(text)


def test_stars_in_users_namespaces_or_verbs_are_literal() -> None:
    text = policy_text(
        "{level: None, users: ['system:node:*'], namespaces: ['openshift-*']}",
        "{level: None, resources: [{group: '', resources: ['pod*']}]}",
        CATCH_ALL,
    )
    assert codes(text)["literal-wildcard"] == [0, 0, 1]
    assert "literal-wildcard" not in codes(
        policy_text("{level: None, resources: [{group: '', resources: ['*/status']}]}", CATCH_ALL)
    )


def test_bodies_with_managed_fields_get_a_note() -> None:
    found = lint_policy_text(policy_text(SAFE, "{level: Request}"), "p.yaml")
    (note,) = [f for f in found if f.code == "managed-fields"]
    assert note.severity == "info"
    assert "managed-fields" not in codes(
        policy_text(SAFE, "{level: Request}", top="omitManagedFields: true\n")
    )


def test_findings_carry_severity_rule_line_explanation_and_fix() -> None:
    text = policy_text("{level: RequestResponse}")
    finding = next(f for f in lint_policy_text(text, "p.yaml") if f.code == "leaks-secrets")
    assert (finding.severity, finding.rule, finding.line) == ("error", 0, 5)
    assert finding.fix and "Metadata" in finding.fix
    assert str(finding).startswith("p.yaml:5: error: rules[0]: logs secret values")
    assert finding.to_dict()["code"] == "leaks-secrets"


def test_the_hkerma_policy_is_clean() -> None:
    path = CORPUS / "hkerma-perfspec-audit-csv" / "audit-policy.yaml"
    assert lint_policy_text(path.read_text(), str(path)) == []


def test_the_openshift_example_is_refused_and_its_mistakes_found() -> None:
    path = CORPUS / "openshift-clo-audit" / "example_policy.yaml"
    found = codes(path.read_text())
    # It is a log-forwarder filter, not an API-server policy: no apiVersion, extra keys.
    assert {"api-version", "no-catch-all", "unknown-key"} <= set(found)
    assert found["shadowed-rule"] == [2]  # rule 2's users and verbs are all in rule 1
    assert 9 in found["literal-wildcard"]  # users: system:node:* is not a wildcard
    assert found["subresources"] == [10]  # pods at Request, pods/exec not logged at all
