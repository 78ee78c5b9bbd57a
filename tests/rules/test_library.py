"""The built-in rule library: it loads cleanly and every rule's embedded tests hold."""

from __future__ import annotations

import pytest

from k3watch.rules.lint import lint
from k3watch.rules.loader import load_rules
from k3watch.rules.model import Rule
from k3watch.rules.testing import run_tests_of

LIBRARY = load_rules()


def test_the_library_loads_without_errors_or_warnings() -> None:
    assert LIBRARY.errors == []
    assert LIBRARY.warnings == []
    assert len(LIBRARY) >= 30


def test_lint_finds_no_error_or_warning_in_the_library() -> None:
    findings = [f for f in lint(LIBRARY) if f.severity in ("error", "warning")]
    assert findings == []


@pytest.mark.parametrize("rule", LIBRARY.all(), ids=lambda r: r.info.title)
def test_every_rule_carries_tests_that_hold(rule: Rule) -> None:
    """Each rule has an event that must fire and a near miss that must not, and both hold."""
    result = run_tests_of(LIBRARY, rule)
    assert result.failures == []
    assert any(case.test.must_fire for case in result.cases)
    assert any(not case.test.must_fire for case in result.cases)


@pytest.mark.parametrize("rule", LIBRARY.all(), ids=lambda r: r.info.title)
def test_every_alerting_rule_is_documented_for_the_responder(rule: Rule) -> None:
    info = rule.info
    assert len(info.id) == 36
    assert info.description
    if rule.generate:
        assert info.response, "what the responder should do"
        assert info.attack_ids, "an ATT&CK technique"
        assert info.tactics, "an ATT&CK tactic"


def test_rule_ids_are_unique() -> None:
    ids = [rule.id for rule in LIBRARY.all()]
    assert len(ids) == len(set(ids))


def test_the_library_has_each_kind_of_stateful_rule() -> None:
    kinds = {rule.info.kind for rule in LIBRARY.all()}
    assert {"event", "event_count", "value_count", "temporal_ordered", "first_seen"} <= kinds


def test_correlation_inputs_do_not_alert_on_their_own() -> None:
    inputs = {source.id for c in LIBRARY.correlations for source in c.inputs}
    for rule in LIBRARY.event_rules:
        assert rule.generate is (rule.id not in inputs), rule.info.title


def test_component_log_rules_read_only_component_log_records() -> None:
    """Rules over the nodes' logs (logsource product k3s) require kind k3watch.log/v1, so the
    index keeps audit events away from them; no other rule does."""
    component = [r for r in LIBRARY.event_rules if r.info.reads_component_logs]
    assert len(component) >= 10
    for rule in LIBRARY.event_rules:
        wanted = {"k3watch.log/v1"} if rule.info.reads_component_logs else None
        assert rule.requires.get("kind") == wanted, rule.info.title
    for correlation in LIBRARY.correlations:
        kinds = {source.info.reads_component_logs for source in correlation.inputs}
        assert kinds == {correlation.info.reads_component_logs}, correlation.info.title


def test_docs_rules_md_lists_the_current_library() -> None:
    """docs/rules.md ends with the generated rule list; regenerate it when rules change."""
    from pathlib import Path

    from k3watch.rules.describe import rules_markdown

    doc = (Path(__file__).parents[2] / "docs" / "rules.md").read_text(encoding="utf-8")
    marker = "## Built-in rules\n"
    assert marker in doc
    assert doc.endswith(rules_markdown(LIBRARY)), (
        "run: k3watch rules list --format markdown, and replace the list in docs/rules.md"
    )
