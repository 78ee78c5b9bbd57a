"""Loading rules: located errors that skip only the broken rule, filters, the SigmaHQ pipeline."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from k3watch.rules.loader import load_rules
from k3watch.rules.model import RuleSet

Builder = Callable[..., dict[str, Any]]
Load = Callable[..., RuleSet]
Run = Callable[..., list[Any]]

GOOD = """
title: good
id: 00000000-0000-4000-8000-00000000000a
name: good
logsource: {product: kubernetes, service: audit}
detection:
    sel:
        verb: delete
    condition: sel
"""


def only_error(ruleset: RuleSet) -> tuple[str, int | None]:
    """The one load error: its message and line (asserting it names the rule file)."""
    assert len(ruleset.errors) == 1, [str(e) for e in ruleset.errors]
    error = ruleset.errors[0]
    assert error.location is not None
    assert error.location.source.endswith(".yml")
    return str(error), error.location.line


def rule_ids(ruleset: RuleSet) -> list[str]:
    return [rule.info.name or rule.id for rule in ruleset.all()]


def with_good(text: str) -> str:
    """``text`` as the first document of a file whose second document is a valid rule."""
    return textwrap.dedent(text).strip() + "\n---\n" + textwrap.dedent(GOOD).strip() + "\n"


def test_invalid_yaml_is_reported_with_its_line_and_other_files_still_load(
    tmp_path: Path,
) -> None:
    (tmp_path / "a_good.yml").write_text(textwrap.dedent(GOOD))
    (tmp_path / "b_broken.yml").write_text("title: x\ndetection:\n  sel:\n    verb: [get\n")
    ruleset = load_rules([tmp_path], builtin=False)
    message, line = only_error(ruleset)
    assert "b_broken.yml:" in message
    assert "invalid YAML" in message
    assert line is not None and line >= 4
    assert rule_ids(ruleset) == ["good"]


def test_documents_before_a_yaml_error_in_the_same_file_still_load(load: Load) -> None:
    text = textwrap.dedent(GOOD).strip() + "\n---\ntitle: x\ndetection: {sel: [a\n"
    ruleset = load(text, errors_ok=True)
    message, line = only_error(ruleset)
    assert "invalid YAML" in message
    assert line == 12
    assert rule_ids(ruleset) == ["good"]


def test_a_missing_rule_path_is_an_error(tmp_path: Path) -> None:
    ruleset = load_rules([tmp_path / "nope.yml"], builtin=False)
    assert [str(e) for e in ruleset.errors] == [
        f"{tmp_path / 'nope.yml'}: no such rule file or directory"
    ]


def test_an_unknown_modifier_points_at_its_line(load: Load) -> None:
    ruleset = load(
        with_good(
            """
            title: bad
            id: 00000000-0000-4000-8000-000000000001
            logsource: {product: kubernetes, service: audit}
            detection:
                sel:
                    verb: get
                    userAgent|containz: curl
                condition: sel
            """
        ),
        errors_ok=True,
    )
    message, line = only_error(ruleset)
    assert "Unknown modifier 'containz'" in message
    assert line == 7
    assert rule_ids(ruleset) == ["good"]


def test_a_condition_naming_an_undefined_detection_points_at_the_condition(load: Load) -> None:
    ruleset = load(
        with_good(
            """
            title: bad
            id: 00000000-0000-4000-8000-000000000001
            logsource: {product: kubernetes, service: audit}
            detection:
                sel:
                    verb: get
                condition: sel and not filter
            """
        ),
        errors_ok=True,
    )
    message, line = only_error(ruleset)
    assert "'filter' not defined" in message
    assert line == 7
    assert rule_ids(ruleset) == ["good"]


def test_an_unknown_k3watch_key_points_at_its_line(load: Load) -> None:
    ruleset = load(
        with_good(
            """
            title: bad
            id: 00000000-0000-4000-8000-000000000001
            logsource: {product: kubernetes, service: audit}
            detection:
                sel:
                    verb: get
                condition: sel
            k3watch:
                group_by: [user.username]
                severity: high
            """
        ),
        errors_ok=True,
    )
    message, line = only_error(ruleset)
    assert "unknown key 'k3watch.severity'" in message
    assert "allowed:" in message
    assert line == 10
    assert rule_ids(ruleset) == ["good"]


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        ("first_seen: {fields: [userAgent], learn: 1d}", "unknown key 'k3watch.first_seen.learn'"),
        ("first_seen: {fields: [], learning: 1d}", "first_seen.fields' must be a non-empty list"),
        ("first_seen: {fields: [userAgent], learning: soon}", "is not a duration"),
        ("tests: {match: {verb: get}}", "'k3watch.tests.match' must be a list"),
        ("tests: {matches: []}", "'k3watch.tests' must be a mapping"),
        ("group_by: 3", "'k3watch.group_by' must be a list"),
    ],
)
def test_a_malformed_k3watch_block_is_a_located_error(
    load: Load, block: str, expected: str
) -> None:
    text = f"""
        title: bad
        id: 00000000-0000-4000-8000-000000000001
        logsource: {{product: kubernetes, service: audit}}
        detection:
            sel:
                verb: get
            condition: sel
        k3watch:
            {block}
    """
    ruleset = load(with_good(text), errors_ok=True)
    message, line = only_error(ruleset)
    assert expected in message
    assert line is not None and 8 <= line <= 9
    assert rule_ids(ruleset) == ["good"]


def test_a_duplicate_rule_id_is_an_error_and_the_first_definition_wins(load: Load) -> None:
    second = GOOD.replace("name: good", "name: copy").replace("verb: delete", "verb: get")
    ruleset = load(textwrap.dedent(GOOD) + "---\n" + textwrap.dedent(second), errors_ok=True)
    message, line = only_error(ruleset)
    assert "duplicate rule id 00000000-0000-4000-8000-00000000000a" in message
    assert "first defined at" in message
    assert line == 12
    assert rule_ids(ruleset) == ["good"]


def test_a_document_that_is_not_a_rule_is_an_error(load: Load) -> None:
    ruleset = load(with_good("title: lonely\nlogsource: {product: kubernetes}"), errors_ok=True)
    message, line = only_error(ruleset)
    assert "no 'detection', 'correlation' or 'filter' section" in message
    assert line == 1
    assert rule_ids(ruleset) == ["good"]


@pytest.mark.parametrize(
    ("item", "expected", "line"),
    [
        ("userAgent|cidr|contains: 10.0.0.0/8", "incompatible", 7),
        ("userAgent|exists|contains: true", "incompatible", 1),
        ("responseStatus.code|gt: abc", "incompatible", 7),
        ("userAgent|base64: 'a*'", "Base64 encoding of strings with wildcards", 1),
        ("userAgent|re: '(['", "Regular expression", 7),
        ("sourceIPs|cidr: 10.0.0.0/33", "Invalid CIDR", 7),
        ("userAgent|utf16le: ab", "Unknown modifier 'utf16le'", 7),
        ("userAgent|fieldref: 'user*'", "Field references must not contain wildcards", 1),
    ],
)
def test_a_combination_pysigma_rejects_is_a_located_error(
    load: Load, item: str, expected: str, line: int
) -> None:
    """The item's line when pySigma's message names something in it, else the rule's line."""
    text = f"""
        title: bad
        id: 00000000-0000-4000-8000-000000000001
        logsource: {{product: kubernetes, service: audit}}
        detection:
            sel:
                verb: get
                {item}
            condition: sel
    """
    ruleset = load(with_good(text), errors_ok=True)
    message, found = only_error(ruleset)
    assert expected in message
    assert "\n" not in message
    assert found == line
    assert rule_ids(ruleset) == ["good"]


# --- correlations that cannot load --------------------------------------------------------------

BASE = """
title: base
id: 00000000-0000-4000-8000-000000000001
name: base
logsource: {product: kubernetes, service: audit}
detection:
    sel:
        verb: get
    condition: sel
"""


def correlation(body: str) -> str:
    return textwrap.dedent(BASE).strip() + "\n---\n" + textwrap.dedent(body).strip() + "\n"


def test_a_correlation_referencing_a_missing_rule_is_a_located_error(load: Load) -> None:
    ruleset = load(
        correlation(
            """
            title: many
            id: 00000000-0000-4000-8000-000000000002
            correlation:
                type: event_count
                rules: [base, ghost]
                group-by: [user.username]
                timespan: 5m
                condition: {gte: 3}
            """
        ),
        errors_ok=True,
    )
    message, line = only_error(ruleset)
    assert "Rule 'ghost' not found" in message
    assert line == 14
    assert rule_ids(ruleset) == ["base"]
    # The base rule is not consumed by the failed correlation: it alerts on its own.
    assert ruleset.event_rules[0].generate


@pytest.mark.parametrize("kind", ["value_sum", "value_avg", "value_median", "value_percentile"])
def test_an_unsupported_correlation_type_is_a_clear_error(load: Load, kind: str) -> None:
    ruleset = load(
        correlation(
            f"""
            title: sum
            id: 00000000-0000-4000-8000-000000000002
            correlation:
                type: {kind}
                rules: [base]
                group-by: [user.username]
                timespan: 5m
                condition: {{gte: 3, field: responseStatus.code, percentile: 50}}
            """
        ),
        errors_ok=True,
    )
    message, line = only_error(ruleset)
    assert f"correlation type '{kind}' is not supported" in message
    assert "supported: event_count, value_count, temporal, temporal_ordered" in message
    assert line == 13
    assert rule_ids(ruleset) == ["base"]


def test_an_extended_correlation_condition_is_a_clear_error(load: Load) -> None:
    other = BASE.replace("name: base", "name: other").replace("01\n", "03\n")
    text = (
        textwrap.dedent(other).strip()
        + "\n---\n"
        + correlation(
            """
        title: seq
        id: 00000000-0000-4000-8000-000000000002
        correlation:
            type: temporal
            rules: [base, other]
            group-by: [user.username]
            timespan: 5m
            condition: base and not other
        """
        )
    )
    ruleset = load(text, errors_ok=True)
    message, line = only_error(ruleset)
    assert "extended (boolean) correlation conditions are not supported" in message
    assert line == 26
    assert sorted(rule_ids(ruleset)) == ["base", "other"]


def test_temporal_ordered_with_a_custom_condition_is_rejected(load: Load) -> None:
    ruleset = load(
        correlation(
            """
            title: seq
            id: 00000000-0000-4000-8000-000000000002
            correlation:
                type: temporal_ordered
                rules: [base, base]
                group-by: [user.username]
                timespan: 5m
                condition: {gte: 1}
            """
        ),
        errors_ok=True,
    )
    message, _ = only_error(ruleset)
    assert "temporal_ordered supports only the default condition" in message


def test_value_count_without_a_field_is_a_clear_error(load: Load) -> None:
    ruleset = load(
        correlation(
            """
            title: spread
            id: 00000000-0000-4000-8000-000000000002
            correlation:
                type: value_count
                rules: [base]
                group-by: [user.username]
                timespan: 5m
                condition: {gte: 3}
            """
        ),
        errors_ok=True,
    )
    message, line = only_error(ruleset)
    assert "Value count correlation rule without field reference" in message
    assert line == 10


def test_a_correlation_over_a_broken_rule_reports_both(load: Load) -> None:
    broken = BASE.replace("verb: get", "verb|nope: get")
    text = (
        textwrap.dedent(broken).strip()
        + "\n---\n"
        + textwrap.dedent(
            """
        title: many
        id: 00000000-0000-4000-8000-000000000002
        correlation:
            type: event_count
            rules: [base]
            group-by: [user.username]
            timespan: 5m
            condition: {gte: 3}
        """
        )
    )
    ruleset = load(text, errors_ok=True)
    assert len(ruleset) == 0
    assert len(ruleset.errors) == 2


# --- filters ------------------------------------------------------------------------------------

FILTERED = """
title: secret read
id: 00000000-0000-4000-8000-000000000001
name: secret_read
logsource: {product: kubernetes, service: audit}
detection:
    sel:
        verb: get
        objectRef.resource: secrets
    condition: sel
---
title: not for the backup job
logsource: {product: kubernetes, service: audit}
filter:
    rules: [00000000-0000-4000-8000-000000000001]
    backup:
        user.username: 'system:serviceaccount:backup:*'
    condition: not backup
"""


def test_a_filter_adds_its_exclusion_to_the_rule_it_names(
    load: Load, run: Run, event: Builder
) -> None:
    ruleset = load(FILTERED)
    assert ruleset.filters == 1
    assert not ruleset.warnings
    backup = event("get", "secrets", user="system:serviceaccount:backup:runner")
    alice = event("get", "secrets", user="alice", t=1)
    assert [a.group for a in run(ruleset, [backup, alice])] == [{"user.username": "alice"}]


def test_a_filter_that_names_no_loaded_rule_is_a_warning(load: Load) -> None:
    ruleset = load(FILTERED.replace("000000000001]", "0000000000ff]"))
    assert ruleset.filters == 0
    assert [w.message for w in ruleset.warnings] == ["filter applies to no loaded rule"]


def test_a_filter_leaves_other_rules_alone(load: Load, run: Run, event: Builder) -> None:
    other = GOOD.replace("verb: delete", "verb: get")
    ruleset = load(FILTERED + "---\n" + textwrap.dedent(other))
    backup = event("get", "secrets", user="system:serviceaccount:backup:runner")
    assert [a.rule_id for a in run(ruleset, [backup])] == ["00000000-0000-4000-8000-00000000000a"]


# --- the SigmaHQ Kubernetes pipeline (applied by default) ---------------------------------------


def sigmahq(detection: str) -> str:
    body = textwrap.indent(textwrap.dedent(detection).strip(), "    ")
    return (
        "title: sigmahq style\nid: 00000000-0000-4000-8000-000000000001\n"
        "logsource: {category: application, product: kubernetes, service: audit}\n"
        f"detection:\n{body}\n"
    )


def test_sigmahq_apigroup_is_mapped_to_objectref_apigroup(
    load: Load, run: Run, event: Builder
) -> None:
    ruleset = load(
        sigmahq(
            """
            selection:
                verb: create
                apiGroup: authorization.k8s.io
                objectRef.resource: selfsubjectrulesreviews
            condition: selection
            """
        )
    )
    review = event("create", "selfsubjectrulesreviews")
    review["objectRef"]["apiGroup"] = "authorization.k8s.io"
    other_group = event("create", "selfsubjectrulesreviews", t=1)
    other_group["objectRef"]["apiGroup"] = "authorization.example.com"
    assert len(run(ruleset, [review])) == 1
    assert run(ruleset, [other_group]) == []


def test_sigmahq_hostpath_placeholder_is_mapped_to_the_pod_volumes(
    load: Load, run: Run, event: Builder
) -> None:
    ruleset = load(
        sigmahq(
            """
            selection:
                verb: create
                objectRef.resource: pods
                hostPath: '*'
            condition: selection
            """
        )
    )
    volumes = [
        {"name": "cfg", "configMap": {"name": "c"}},
        {"name": "root", "hostPath": {"path": "/"}},
    ]
    mounted = event("create", requestObject={"spec": {"volumes": volumes}})
    no_host = event("create", requestObject={"spec": {"volumes": volumes[:1]}}, t=1)
    assert len(run(ruleset, [mounted])) == 1
    assert run(ruleset, [no_host]) == []


@pytest.mark.parametrize("kind", ["containers", "initContainers", "ephemeralContainers"])
def test_sigmahq_capabilities_placeholder_covers_every_container_list(
    load: Load, run: Run, event: Builder, kind: str
) -> None:
    ruleset = load(
        sigmahq(
            """
            selection:
                verb: create
                objectRef.resource: pods
                capabilities: '*'
            condition: selection
            """
        )
    )
    added = {"securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}
    dropped = {"securityContext": {"capabilities": {"drop": ["ALL"]}}}
    assert len(run(ruleset, [event("create", requestObject={"spec": {kind: [added]}})])) == 1
    assert run(ruleset, [event("create", requestObject={"spec": {kind: [dropped]}})]) == []


def test_sigmahq_response_code_allow_is_mapped_to_the_decision_annotation(
    load: Load, run: Run, event: Builder
) -> None:
    ruleset = load(
        sigmahq(
            """
            selection_status:
                responseStatus.code: 'ALLOW'
            selection_uri:
                requestURI|contains: 'exec?command=whoami'
            condition: all of selection_*
            """
        )
    )
    uri = "/api/v1/namespaces/d/pods/p/exec?command=whoami"
    allowed = event("create", subresource="exec", requestURI=uri)
    forbidden = event(
        "create",
        subresource="exec",
        requestURI=uri,
        code=403,
        annotations={"authorization.k8s.io/decision": "forbid"},
        t=1,
    )
    assert len(run(ruleset, [allowed])) == 1
    assert run(ruleset, [forbidden]) == []


def test_numeric_response_codes_are_not_remapped(load: Load, run: Run, event: Builder) -> None:
    ruleset = load(
        sigmahq(
            """
            selection:
                responseStatus.code: [401, 403]
            condition: selection
            """
        )
    )
    assert len(run(ruleset, [event(code=403)])) == 1
    assert run(ruleset, [event(code=200, t=1)]) == []


def test_the_pipeline_leaves_rules_of_other_log_sources_alone(
    load: Load, run: Run, event: Builder
) -> None:
    text = sigmahq("selection:\n    apiGroup: apps\ncondition: selection").replace(
        "{category: application, product: kubernetes, service: audit}", "{product: custom}"
    )
    ruleset = load(text)
    assert run(ruleset, [event(apiGroup="apps")])
    assert not run(ruleset, [event(objectRef={"resource": "deployments", "apiGroup": "apps"})])
