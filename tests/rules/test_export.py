"""``k3watch rules export``: rules converted by real pySigma backends, or skipped with a reason."""

from __future__ import annotations

import copy
import dataclasses
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result
from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
from tests.rules.conftest import Load, rule_yaml, uuid_for

from k3watch.cli import main
from k3watch.rules.compile import build_predicate
from k3watch.rules.export import TARGETS, ExportResult, backend_class, export_rules
from k3watch.rules.export_pipelines import DerivedFieldTransformation, SkipReason
from k3watch.rules.ir import rule_to_ir
from k3watch.rules.loader import load_rules
from k3watch.rules.model import RuleSet

_MISSING = [t.package for t in TARGETS.values() if backend_class(t) is None]
needs_backends = pytest.mark.skipif(
    bool(_MISSING),
    reason=f"pySigma backends not installed ({', '.join(sorted(set(_MISSING)))}): "
    "pip install --no-deps them (see docs/export.md)",
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "export.md"
SECRETS_LISTED = "95ab6251-9c8f-4f34-b7ca-df88fa072210"
ANONYMOUS_ALLOWED = "d7fc5b51-9b9e-42a7-b376-87e9ac83cfad"


@pytest.fixture(scope="module")
def library() -> RuleSet:
    return load_rules()


def by_id(results: list[ExportResult], rule_id: str) -> ExportResult:
    return next(r for r in results if r.rule_id.startswith(rule_id[:8]))


def one(load: Load, detection: str, target: str, extra: str = "") -> ExportResult:
    (result,) = export_rules(load(rule_yaml(detection, extra=extra)), target)
    return result


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


# --- queries for built-in rules ---


@needs_backends
def test_lucene_queries_search_elastic_kubernetes_integration_fields(library: RuleSet) -> None:
    results = export_rules(library, "lucene")
    (secrets,) = by_id(results, SECRETS_LISTED).queries
    assert secrets.startswith("event.dataset:kubernetes.audit_logs AND ")
    assert "kubernetes.audit.objectRef.resource:secrets" in secrets
    assert "kubernetes.audit.verb:(list OR watch)" in secrets
    assert "NOT _exists_:kubernetes.audit.objectRef.namespace" in secrets
    assert "kubernetes.audit.objectRef.namespace:kube\\-system" in secrets
    (anonymous,) = by_id(results, ANONYMOUS_ALLOWED).queries
    # Annotation keys are de-dotted by the integration; "/" is escaped in a Lucene field name.
    assert "kubernetes.audit.annotations.authorization_k8s_io\\/decision:allow" in anonymous
    assert "kubernetes.audit.user.username:system\\:anonymous" in anonymous


@needs_backends
def test_logql_queries_parse_json_lines_and_use_flattened_label_names(library: RuleSet) -> None:
    results = export_rules(library, "loki")
    (secrets,) = by_id(results, SECRETS_LISTED).queries
    assert secrets.startswith('{job=~".+"} | json | ')
    assert "objectRef_resource=~`(?i)^secrets$`" in secrets
    assert "verb=~`(?i)^list$` or verb=~`(?i)^watch$`" in secrets
    assert 'objectRef_namespace=""' in secrets  # objectRef.namespace|exists: false
    (anonymous,) = by_id(results, ANONYMOUS_ALLOWED).queries
    assert "annotations_authorization_k8s_io_decision=~`(?i)^allow$`" in anonymous


@needs_backends
def test_esql_and_loki_search_where_source_says(load: Load) -> None:
    detection = "sel: {verb: delete, objectRef.resource: secrets}\ncondition: sel"
    assert (
        one(load, detection, "esql")
        .queries[0]
        .startswith("from logs-kubernetes.audit_logs-* metadata")
    )
    ruleset = load(rule_yaml(detection))
    (esql,) = export_rules(ruleset, "esql", source="k3s-audit-*")
    assert esql.queries[0].startswith("from k3s-audit-* metadata")
    (loki,) = export_rules(ruleset, "loki", source='{job="k3s-audit"}')
    assert loki.queries[0].startswith('{job="k3s-audit"} | json | ')


@needs_backends
def test_eql_quotes_field_names_that_contain_a_slash(load: Load) -> None:
    result = one(
        load, "sel: {annotations.authorization.k8s.io/decision: forbid}\ncondition: sel", "eql"
    )
    assert "`kubernetes.audit.annotations.authorization_k8s_io/decision`" in result.queries[0]


@needs_backends
def test_loki_compares_booleans_as_the_json_parser_writes_them(load: Load) -> None:
    result = one(load, "sel: {requestObject.spec.hostNetwork: true}\ncondition: sel", "loki")
    assert "requestObject_spec_hostNetwork=`true`" in result.queries[0]


# --- derived fields ---


@needs_backends
def test_rule_on_a_computed_derived_field_is_skipped_with_its_reason(load: Load) -> None:
    detection = "sel: {k3watch.exec.command|contains: /dev/tcp/}\ncondition: sel"
    for target in TARGETS:
        result = one(load, detection, target)
        assert result.queries == []
        assert result.reason is SkipReason.DERIVED_FIELD
        assert result.skipped_reason is not None
        assert result.skipped_reason.startswith("derived field: k3watch.exec.command: ")
        assert "requestURI" in result.skipped_reason


@needs_backends
def test_pod_spec_derived_fields_become_their_raw_paths_per_resource(load: Load) -> None:
    result = one(load, "sel: {k3watch.pod.spec.hostPID: true}\ncondition: sel", "lucene")
    query = result.queries[0]
    pods = "kubernetes.audit.objectRef.resource:pods"
    assert f"{pods} AND kubernetes.audit.requestObject.spec.hostPID:true" in query
    assert "kubernetes.audit.requestObject.spec.template.spec.hostPID:true" in query
    assert (
        "kubernetes.audit.requestObject.spec.jobTemplate.spec.template.spec.hostPID:true" in query
    )


REWRITTEN = """\
title: rewrite
id: {id}
logsource: {{product: kubernetes, service: audit}}
detection:
  host_pid:
    k3watch.pod.spec.hostPID: true
  privileged:
    k3watch.pod.containers.securityContext.privileged: true
  allowlisted:
    k3watch.object.name|startswith: svclb-
  condition: (host_pid or privileged) and not allowlisted
"""


def _workload(resource: str, spec: dict[str, Any], **metadata: str) -> dict[str, Any]:
    body: dict[str, Any] = {"spec": spec}
    if metadata:
        body["metadata"] = metadata
    return {"objectRef": {"resource": resource}, "requestObject": body}


@pytest.mark.parametrize(
    "raw",
    [
        _workload("pods", {"hostPID": True}),
        _workload("pods", {"hostPID": True}, name="svclb-traefik-x"),
        _workload("configmaps", {"hostPID": True}),
        _workload("deployments", {"template": {"spec": {"hostPID": True}}}),
        _workload("deployments", {"hostPID": True}),
        _workload(
            "daemonsets",
            {"template": {"spec": {"containers": [{"securityContext": {"privileged": True}}]}}},
            generateName="svclb-",
        ),
        _workload(
            "cronjobs",
            {
                "jobTemplate": {
                    "spec": {
                        "template": {
                            "spec": {
                                "initContainers": [{}, {"securityContext": {"privileged": True}}]
                            }
                        }
                    }
                }
            },
        ),
        {
            "objectRef": {"resource": "pods", "name": "web-0"},
            "requestObject": {"metadata": {"name": "svclb-x"}, "spec": {"hostPID": True}},
        },
    ],
)
def test_rewritten_derived_fields_match_the_same_events(load: Load, raw: dict[str, Any]) -> None:
    """k3watch's own engine gives the same answer for the derived rule and its raw rewrite."""
    (rule,) = load(REWRITTEN.format(id=uuid_for("rewrite"))).event_rules
    rewritten = copy.deepcopy(rule.sigma)
    ProcessingPipeline([ProcessingItem(DerivedFieldTransformation())]).apply(rewritten)
    original = build_predicate(rule_to_ir(rule.sigma))
    assert build_predicate(rule_to_ir(rewritten))(raw) == original(raw)


@needs_backends
def test_object_name_needs_the_request_body_that_elastic_drops(load: Load) -> None:
    detection = "sel: {k3watch.object.name|startswith: helper-pod-}\ncondition: sel"
    elastic = one(load, detection, "esql")
    assert elastic.reason is SkipReason.NOT_IN_TARGET
    assert "requestObject.metadata" in elastic.detail
    loki = one(load, detection, "loki")
    assert "requestObject_metadata_generateName=~`(?i)^helper\\-pod\\-.*`" in loki.queries[0]


# --- what a target cannot express ---


@needs_backends
def test_loki_refuses_fields_inside_lists(load: Load) -> None:
    result = one(load, "sel: {sourceIPs|cidr: 203.0.113.0/24}\ncondition: sel", "loki")
    assert result.reason is SkipReason.NOT_IN_TARGET
    assert "'sourceIPs' is a list" in result.detail
    # Elasticsearch indexes every element of a list: the same rule exports there.
    assert one(load, "sel: {sourceIPs|cidr: 203.0.113.0/24}\ncondition: sel", "lucene").queries


@needs_backends
def test_first_seen_rule_is_skipped(load: Load) -> None:
    extra = "k3watch:\n  first_seen:\n    fields: [user.username]\n    learning: 1d\n"
    result = one(load, "sel: {verb: create}\ncondition: sel", "esql", extra)
    assert result.reason is SkipReason.FIRST_SEEN


CORRELATION = """\
title: denied
id: {input_id}
name: denied
logsource: {{product: kubernetes, service: audit}}
detection:
  sel:
    {field}: {value}
  condition: sel
---
title: many denied
id: {id}
correlation:
  type: event_count
  rules: [denied]
  group-by: [user.username]
  timespan: 10m
  condition: {{gte: 20}}
"""


@needs_backends
def test_correlation_exports_where_the_backend_supports_it(load: Load) -> None:
    text = CORRELATION.format(
        input_id=uuid_for("denied"), id=uuid_for("many"), field="responseStatus.code", value=403
    )
    ruleset = load(text)
    denied, correlation = export_rules(ruleset, "loki")
    assert correlation.queries == [
        'sum by (user_username) (count_over_time({job=~".+"} | json | '
        "responseStatus_code=403 [10m])) >= 20"
    ]
    assert denied.reason is SkipReason.CORRELATION_INPUT
    assert "'many denied'" in denied.detail
    denied, correlation = export_rules(ruleset, "lucene")
    assert correlation.reason is SkipReason.UNSUPPORTED
    assert "could not be exported" in denied.detail


@needs_backends
def test_correlation_over_an_unexportable_rule_is_skipped(load: Load) -> None:
    text = CORRELATION.format(
        input_id=uuid_for("exec"), id=uuid_for("many-exec"), field="k3watch.exec.argv", value="sh"
    )
    denied, correlation = export_rules(load(text), "esql")
    assert denied.reason is SkipReason.DERIVED_FIELD
    assert correlation.reason is SkipReason.INPUT_NOT_EXPORTED
    assert "'denied' cannot be exported (derived field: " in correlation.detail


# --- the whole library ---


def _first_column(section: str) -> set[str]:
    """The code cells that start the table rows of ``section`` (the docs' reference tables)."""
    text = DOCS.read_text(encoding="utf-8")
    targets, _, reasons = text.partition("### What cannot be exported")
    chosen = reasons if section == "reasons" else targets
    return set(re.findall(r"^\| `([^`]+)` \|", chosen, re.MULTILINE))


def _documented_reasons() -> set[str]:
    return _first_column("reasons")


def test_every_skip_reason_and_target_is_documented() -> None:
    assert _documented_reasons() == {str(r) for r in SkipReason}
    assert _first_column("targets") == set(TARGETS)


@needs_backends
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_whole_library_converts_with_documented_skip_reasons(library: RuleSet, target: str) -> None:
    results = export_rules(library, target)
    assert [r.rule_id for r in results] == [r.id for r in library.all()]
    converted = [r for r in results if r.reason is None]
    skipped = [r for r in results if r.reason is not None]
    audit_rules = [r for r in library.all() if not r.info.reads_component_logs]
    assert len(converted) >= len(audit_rules) // 3
    assert all(r.queries and all(q.strip() for q in r.queries) for r in converted)
    assert {str(r.reason) for r in skipped} <= _documented_reasons()
    # A crash inside a backend is reported, but none of the built-in rules may cause one.
    assert [r.title for r in skipped if r.reason is SkipReason.CONVERSION_FAILED] == []
    # The exec rules read the decoded command; first-seen rules have no Sigma equivalent.
    reasons = {r.reason for r in skipped}
    assert {SkipReason.DERIVED_FIELD, SkipReason.FIRST_SEEN} <= reasons


@needs_backends
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_component_log_rules_are_not_exported_to_audit_event_targets(
    library: RuleSet, target: str
) -> None:
    results = {r.rule_id: r for r in export_rules(library, target)}
    component = [r for r in library.all() if r.info.reads_component_logs]
    assert component
    for rule in component:
        result = results[rule.id]
        assert result.queries == []
        assert result.reason in (SkipReason.NOT_IN_TARGET, SkipReason.INPUT_NOT_EXPORTED)


# --- command line ---


def test_unknown_target_is_a_usage_error_listing_the_targets() -> None:
    result = invoke("rules", "export", "--target", "splunk")
    assert result.exit_code == 2
    assert "unknown target 'splunk'" in result.stderr
    for name in TARGETS:
        assert f"  {name} " in result.stderr


@needs_backends
def test_json_output_lists_every_rule(tmp_path: Path) -> None:
    out = tmp_path / "loki.json"
    result = invoke("rules", "export", "--target", "loki", "--format", "json", "--output", str(out))
    assert result.exit_code == 0
    assert result.stdout == ""
    entries = orjson.loads(out.read_bytes())
    assert len(entries) >= 30
    for entry in entries:
        assert set(entry) == {"rule_id", "title", "target", "queries", "skipped_reason"}
        assert entry["target"] == "loki"
        assert bool(entry["queries"]) != bool(entry["skipped_reason"])
    assert re.search(r"^\d+ rules converted to loki, \d+ skipped \(", result.stderr, re.MULTILINE)


@needs_backends
def test_text_output_puts_each_query_under_its_rule_title(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(
        rule_yaml("sel: {verb: delete, objectRef.resource: secrets}\ncondition: sel", name="del")
        + "---\n"
        + rule_yaml("sel: {k3watch.exec.command|contains: curl}\ncondition: sel", name="curl"),
        encoding="utf-8",
    )
    result = invoke("rules", "export", "--no-builtin", "--rules", str(rules), "--target", "lucene")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        f"# rule del ({uuid_for('del')})",
        "event.dataset:kubernetes.audit_logs AND (kubernetes.audit.verb:delete AND "
        "kubernetes.audit.objectRef.resource:secrets)",
    ]
    assert "skipped: rule curl: derived field: k3watch.exec.command: " in result.stderr
    assert "1 rules converted to lucene, 1 skipped (1 derived field)" in result.stderr


@needs_backends
def test_exit_status_is_1_when_no_rule_converts(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(
        rule_yaml("sel: {k3watch.exec.argv: sh}\ncondition: sel", name="sh"), encoding="utf-8"
    )
    result = invoke("rules", "export", "--no-builtin", "--rules", str(rules), "--target", "loki")
    assert result.exit_code == 1
    assert result.stdout == ""


def test_target_without_its_backend_names_the_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    absent = dataclasses.replace(TARGETS["loki"], module="sigma.backends.k3watch_absent")
    monkeypatch.setitem(TARGETS, "loki", absent)
    result = invoke("rules", "export", "--target", "loki")
    assert result.exit_code == 2
    assert "needs the pySigma backend pysigma-backend-loki, which is not installed" in result.stderr
    assert "pip install --no-deps 'pysigma-backend-loki>=0.15,<0.16'" in result.stderr
