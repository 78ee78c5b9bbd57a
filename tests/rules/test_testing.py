"""The embedded-test runner (``k3watch rules test``) and the linter (``k3watch rules lint``)."""

from __future__ import annotations

from collections.abc import Callable

from k3watch.rules.lint import Finding, lint
from k3watch.rules.model import RuleSet
from k3watch.rules.testing import complete_events, run_rule_tests

Load = Callable[..., RuleSet]

TESTED = """
title: Secret read
id: 00000000-0000-4000-8000-000000000001
name: secret_read
tags: [attack.t1552.007]
logsource: {product: kubernetes, service: audit}
detection:
    sel:
        verb: get
        objectRef.resource: secrets
    condition: sel
k3watch:
    tests:
        match:
            - {verb: get, objectRef: {resource: secrets}}
        nomatch:
            - {verb: list, objectRef: {resource: secrets}}
"""


def test_a_rule_whose_tests_hold_passes(load: Load) -> None:
    (result,) = run_rule_tests(load(TESTED))
    assert result.passed
    assert result.failures == []
    assert result.summary() == "2/2 cases"


def test_a_wrong_embedded_test_is_reported_with_its_location(load: Load) -> None:
    wrong = TESTED.replace("- {verb: list, objectRef", "- {verb: get, objectRef")
    (result,) = run_rule_tests(load(wrong))
    assert not result.passed
    (failure,) = result.failures
    assert "rules.yml:17 nomatch[0]: expected to stay quiet, fired 1x" in failure
    assert result.to_dict()["passed"] is False


def test_a_match_case_that_does_not_fire_is_a_failure(load: Load) -> None:
    wrong = TESTED.replace("- {verb: get, objectRef", "- {verb: watch, objectRef")
    (result,) = run_rule_tests(load(wrong))
    assert [f.split(" ", 1)[1] for f in result.failures] == [
        "match[0]: expected to fire, did not fire"
    ]


def test_a_rule_without_a_near_miss_case_fails(load: Load) -> None:
    text = TESTED.split("        nomatch:", maxsplit=1)[0]
    (result,) = run_rule_tests(load(text))
    assert result.failures == [
        "no 'nomatch' test case: every rule needs a near miss that must not fire"
    ]


def test_correlation_cases_are_event_sequences(load: Load) -> None:
    text = (
        TESTED
        + """---
title: Secret read burst
id: 00000000-0000-4000-8000-000000000002
tags: [attack.t1552.007]
correlation:
    type: event_count
    rules: [secret_read]
    group-by: [user.username]
    timespan: 1m
    condition: {gte: 2}
k3watch:
    tests:
        match:
            - - {verb: get, objectRef: {resource: secrets}}
              - {verb: get, objectRef: {resource: secrets}}
        nomatch:
            - - {verb: get, objectRef: {resource: secrets}}
              - {verb: list, objectRef: {resource: secrets}}
"""
    )
    results = {r.rule.id: r for r in run_rule_tests(load(text))}
    assert results["00000000-0000-4000-8000-000000000002"].passed
    # The base rule is consumed by the correlation: it never alerts, but its matches still count.
    assert results["00000000-0000-4000-8000-000000000001"].passed


def test_component_log_records_get_only_a_time_and_a_key() -> None:
    given = {"kind": "k3watch.log/v1", "message": "Node became not ready", "host": "agent-1"}
    timed = {"kind": "k3watch.log/v1", "message": "x", "time": "2026-03-01T08:00:00.000000Z"}
    first, second = complete_events((given, timed))
    assert first == given | {"time": "2026-01-05T10:00:00.000000Z", "_key": "<rule test>@0"}
    assert second["time"] == "2026-03-01T08:00:00.000000Z"  # a record's own time wins
    assert not {"apiVersion", "auditID", "stage", "requestReceivedTimestamp"} & set(second)


LOG_RULE = """
title: Node not ready
id: 00000000-0000-4000-8000-000000000003
name: node_not_ready
tags: [attack.t1499]
logsource: {product: k3s, service: k3s}
detection:
    sel:
        kind: k3watch.log/v1
        message|startswith: Node became not ready
    condition: sel
k3watch:
    tests:
        match:
            - {kind: k3watch.log/v1, message: Node became not ready, host: agent-1}
        nomatch:
            - {kind: k3watch.log/v1, message: Node became ready, host: agent-1}
---
title: Node flapping
id: 00000000-0000-4000-8000-000000000004
tags: [attack.t1499]
correlation:
    type: event_count
    rules: [node_not_ready]
    group-by: [host]
    timespan: 10m
    condition: {gte: 2}
k3watch:
    tests:
        match:
            - - {kind: k3watch.log/v1, message: Node became not ready, host: a,
                 time: '2026-01-05T10:00:00Z'}
              - {kind: k3watch.log/v1, message: Node became not ready, host: a,
                 time: '2026-01-05T10:09:00Z'}
        nomatch:
            - - {kind: k3watch.log/v1, message: Node became not ready, host: a,
                 time: '2026-01-05T10:00:00Z'}
              - {kind: k3watch.log/v1, message: Node became not ready, host: a,
                 time: '2026-01-05T10:11:00Z'}
"""


def test_component_log_cases_run_in_the_records_own_time(load: Load) -> None:
    """The correlation's window is measured with the records' ``time``, not filled-in audit
    timestamps (which would put every event one second apart)."""
    results = run_rule_tests(load(LOG_RULE))
    assert [r.failures for r in results] == [[], []]


# --- lint ---------------------------------------------------------------------------------------


def messages(findings: list[Finding], severity: str) -> list[str]:
    return [f.message.split(": ", 1)[1] for f in findings if f.severity == severity]


def test_a_clean_rule_has_no_lint_warnings(load: Load) -> None:
    findings = lint(load(TESTED))
    assert messages(findings, "error") == []
    assert messages(findings, "warning") == []


def test_lint_flags_a_field_that_audit_events_do_not_have(load: Load) -> None:
    text = TESTED.replace("objectRef.resource: secrets", "resource: secrets")
    findings = lint(load(text))
    (warning,) = [f for f in findings if "not a field" in f.message]
    assert "field 'resource' is not a field of audit.k8s.io/v1 events" in warning.message
    assert warning.hint == "did you mean objectRef.resource?"
    assert warning.rule_id == "00000000-0000-4000-8000-000000000001"
    assert str(warning.location).endswith("rules.yml:2")  # the rule's first line


def test_lint_accepts_fields_under_open_prefixes(load: Load) -> None:
    text = TESTED.replace(
        "objectRef.resource: secrets", "requestObject.spec.hostNetwork: true"
    ).replace("verb: get", "annotations.authorization.k8s.io/decision: allow")
    assert not [f for f in lint(load(text)) if "not a field" in f.message]


def test_lint_flags_a_condition_that_can_never_match(load: Load) -> None:
    text = TESTED.replace(
        "    sel:\n        verb: get\n",
        "    sel:\n        verb: create\n    other:\n        verb: delete\n",
    ).replace("condition: sel", "condition: sel and other")
    assert messages(lint(load(text)), "error") == [
        "can never match: contradictory values required for 'verb'"
    ]


def test_lint_does_not_flag_alternatives_on_one_field(load: Load) -> None:
    text = TESTED.replace(
        "    sel:\n        verb: get\n",
        "    sel:\n        verb: create\n    other:\n        verb: delete\n",
    ).replace("condition: sel", "condition: sel or other")
    assert messages(lint(load(text)), "error") == []


def test_lint_does_not_flag_a_list_field_required_twice(load: Load) -> None:
    text = TESTED.replace(
        "    condition: sel",
        "    a:\n        user.groups: dev\n    b:\n        user.groups: ops\n"
        "    condition: sel and a and b",
    )
    assert messages(lint(load(text)), "error") == []


def test_lint_flags_an_unused_detection(load: Load) -> None:
    text = TESTED.replace(
        "    condition: sel", "    leftover:\n        verb: list\n    condition: sel"
    )
    assert messages(lint(load(text)), "warning") == [
        "detection 'leftover' is not used by the condition"
    ]


def test_lint_counts_detections_used_through_patterns(load: Load) -> None:
    text = TESTED.replace(
        "    condition: sel",
        "    sel_b:\n        verb: list\n    condition: 1 of sel*",
    )
    assert messages(lint(load(text)), "warning") == []


def test_lint_flags_a_rule_without_tests(load: Load) -> None:
    text = TESTED.split("k3watch:", maxsplit=1)[0]
    assert messages(lint(load(text)), "warning") == [
        "no embedded tests (k3watch.tests.match / nomatch)"
    ]


def test_lint_flags_a_rule_without_a_near_miss_test(load: Load) -> None:
    text = TESTED.split("        nomatch:", maxsplit=1)[0]
    assert messages(lint(load(text)), "warning") == ["no near-miss test event that must not fire"]


def test_lint_reports_load_errors_as_errors(load: Load) -> None:
    ruleset = load(TESTED.replace("verb: get", "verb|nope: get"), errors_ok=True)
    (finding,) = lint(ruleset)
    assert finding.severity == "error"
    assert "Unknown modifier 'nope'" in finding.message
    assert finding.to_dict()["location"].endswith("rules.yml:9")
