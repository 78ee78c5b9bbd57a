"""``k3watch policy``: generate, lint, simulate, volume and coverage, with their exit codes."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner, Result
from tests.policy.conftest import policy_text

from k3watch.cli import main
from k3watch.sample import write_sample

CORPUS = Path(__file__).parents[1] / "corpus"
OPENSHIFT_LOG = str(CORPUS / "openshift-clo-audit" / "audit_in.log")


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def sample_log(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("sample") / "audit.log"
    write_sample(path, days=1)
    return str(path)


def test_generate_prints_or_writes_a_policy(tmp_path: Path) -> None:
    result = run("policy", "generate", "--profile", "minimal")
    assert result.exit_code == 0 and result.output.count("- level:") >= 7
    out = tmp_path / "policy.yaml"
    result = run(
        "policy", "generate", "--webhook", "https://10.0.0.11:9443/audit", "--output", str(out)
    )
    assert result.exit_code == 0 and "9443/audit" in out.read_text()


def test_generate_refuses_a_bad_webhook_with_status_2() -> None:
    assert run("policy", "generate", "--webhook", "not a url").exit_code == 2
    assert run("policy", "generate", "--profile", "loud").exit_code == 2


def test_lint_exits_1_on_errors_and_0_otherwise(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(policy_text("{level: RequestResponse}"))
    result = run("policy", "lint", str(bad))
    assert result.exit_code == 1 and "leaks-secrets" in result.output
    good = tmp_path / "good.yaml"
    good.write_text(run("policy", "generate").output)
    result = run("policy", "lint", str(good))
    assert result.exit_code == 0 and "0 errors, 0 warnings" in result.output


def test_lint_json_lists_findings(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Loud\n")
    result = run("policy", "lint", str(path), "--format", "json")
    findings = orjson.loads(result.output)
    assert result.exit_code == 1
    assert findings[0] == {
        "severity": "error",
        "code": "level-invalid",
        "line": 4,
        "rule": 0,
        "source": str(path),
        "fix": findings[0]["fix"],
        "message": findings[0]["message"],
    }


def test_lint_of_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    assert run("policy", "lint", str(tmp_path / "nope.yaml")).exit_code == 2


def test_simulate_reports_per_rule_counts(sample_log: str) -> None:
    result = run("policy", "simulate", "recommended", sample_log, "--format", "json")
    data = orjson.loads(result.output)
    assert result.exit_code == 0
    assert data["events"] == sum(
        r["kept"] + r["dropped"] + r["stage_omitted"] for r in data["rules"]
    )
    assert data["rules"][0]["dropped"] > 0 and data["kept_per_hour"] > 0
    text = run("policy", "simulate", "recommended", sample_log)
    assert "rules[0]" in text.output and "events/hour" in text.output


def test_simulate_refuses_a_policy_the_api_server_would_refuse(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("kind: Policy\nrules:\n- level: Metadata\n")
    result = CliRunner().invoke(main, ["policy", "simulate", str(path), OPENSHIFT_LOG])
    assert result.exit_code == 2


def test_volume_compares_the_profiles_and_policy_files(sample_log: str) -> None:
    hkerma = str(CORPUS / "hkerma-perfspec-audit-csv" / "audit-policy.yaml")
    result = run(
        "policy",
        "volume",
        sample_log,
        "--policy",
        hkerma,
        "--profile",
        "minimal",
        "--format",
        "json",
    )
    rows = {r["policy"]: r for r in orjson.loads(result.output)}
    assert set(rows) == {"minimal", hkerma}
    assert rows["minimal"]["kept_per_hour"] < rows[hkerma]["kept_per_hour"]
    table = run("policy", "volume", sample_log)
    assert all(p in table.output for p in ("minimal", "recommended", "forensic"))


def test_coverage_exit_code_follows_blind_spots(tmp_path: Path) -> None:
    assert run("policy", "coverage", "recommended").exit_code == 0
    path = tmp_path / "p.yaml"
    path.write_text(policy_text("{level: Metadata}"))
    result = run("policy", "coverage", str(path))
    assert result.exit_code == 1 and "Privileged container requested" in result.output
    data = orjson.loads(run("policy", "coverage", str(path), "--format", "json").output)
    assert any(
        s["title"] == "Privileged container requested" and s["needed"] == "Request" for s in data
    )


def test_coverage_uses_the_selected_rules(tmp_path: Path) -> None:
    rule = tmp_path / "r.yml"
    rule.write_text(
        "title: Lease stolen\nid: 9f1d6c1e-2b3a-4c5d-8e9f-0a1b2c3d4e5f\nstatus: test\n"
        "logsource: {product: kubernetes, service: audit}\n"
        "detection:\n  sel:\n    objectRef.resource: leases\n    verb: update\n"
        "    user.username: alice\n  condition: sel\nlevel: low\n"
    )
    result = run("policy", "coverage", "recommended", "--no-builtin", "--rules", str(rule))
    assert result.exit_code == 1 and "Lease stolen" in result.output
