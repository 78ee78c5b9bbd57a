"""``k3watch rules list|lint|test``: what users and tools see of the rules."""

from __future__ import annotations

from pathlib import Path

import orjson
from tests.cli.helpers import Invoke

GOOD_RULE = """\
title: Pod read by mallory
id: 0f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b
logsource: {product: kubernetes, service: audit}
detection:
  sel: {verb: get, objectRef.resource: pods, user.username: mallory}
  condition: sel
level: low
tags: [attack.discovery, attack.t1613]
k3watch:
  tests:
    match:
      - {verb: get, objectRef: {resource: pods}, user: {username: mallory}}
    nomatch:
      - {verb: get, objectRef: {resource: pods}, user: {username: alice}}
"""


def test_list_as_json_shows_every_builtin_rule_with_its_metadata(invoke: Invoke) -> None:
    result = invoke("rules", "list", "--format", "json")
    assert result.exit_code == 0
    rules = orjson.loads(result.stdout)
    assert len(rules) >= 30
    by_title = {r["title"]: r for r in rules}
    exec_rule = by_title["Command run in a pod container (kubectl exec / attach)"]
    assert exec_rule["severity"] == "low"
    assert exec_rule["attack"] == ["T1609"]
    assert exec_rule["index"]["objectRef.subresource"] == ["attach", "exec"]
    assert exec_rule["response"]
    assert by_title["Many different secrets read by one identity"]["correlation"]["type"] == (
        "value_count"
    )


def test_list_as_a_table_names_the_rules(invoke: Invoke) -> None:
    result = invoke("rules", "list")
    assert result.exit_code == 0
    assert "Reverse shell started through kubectl exec" in result.stdout


def test_lint_passes_on_the_library_and_fails_on_a_contradiction(
    tmp_path: Path, invoke: Invoke
) -> None:
    assert invoke("rules", "lint").exit_code == 0
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "title: never\nid: 1c9bd1f4-3b5e-4b6a-9c1d-2e3f4a5b6c7d\n"
        "logsource: {product: kubernetes, service: audit}\n"
        "detection:\n  a: {verb: create}\n  b: {verb: delete}\n  condition: a and b\n"
    )
    result = invoke("rules", "lint", "--rules", str(bad), "--no-builtin", "--format", "json")
    assert result.exit_code == 1
    findings = orjson.loads(result.stdout)
    assert any("can never match" in f["message"] and f["severity"] == "error" for f in findings)


def test_test_runs_every_embedded_case(tmp_path: Path, invoke: Invoke) -> None:
    result = invoke("rules", "test", "--format", "json")
    assert result.exit_code == 0
    outcomes = orjson.loads(result.stdout)
    assert outcomes and all(o["passed"] for o in outcomes)

    wrong = tmp_path / "wrong.yml"
    wrong.write_text(GOOD_RULE.replace("username: alice}", "username: mallory}"))
    failed = invoke("rules", "test", "--rules", str(wrong), "--no-builtin")
    assert failed.exit_code == 1
    assert "FAIL Pod read by mallory" in failed.stdout
    assert f"{wrong}:14 nomatch[0]" in failed.stdout


def test_test_passes_a_user_rule_whose_cases_hold(tmp_path: Path, invoke: Invoke) -> None:
    good = tmp_path / "good.yml"
    good.write_text(GOOD_RULE)
    result = invoke("rules", "test", "--rules", str(good), "--no-builtin")
    assert result.exit_code == 0
    assert "pass Pod read by mallory (2/2 cases)" in result.stdout
