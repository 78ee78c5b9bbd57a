"""Generated policies: golden files, and each one passes lint and parses as it reads."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from k3watch.policy.evaluate import evaluate
from k3watch.policy.lint import lint_policy_text
from k3watch.policy.model import parse_policy
from k3watch.policy.probes import NODE, PERSON, resource_requests
from k3watch.policy.profiles import PROFILES, ProfileError, body_needs, generate_policy
from k3watch.rules.model import RuleSet

GOLDEN = Path(__file__).parents[1] / "golden" / "policy"


@pytest.mark.parametrize("profile", PROFILES)
def test_generated_policy_matches_its_golden_file(profile: str, regen_golden: bool) -> None:
    text = generate_policy(profile)
    path = GOLDEN / f"{profile}.yaml"
    if regen_golden:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"{path} differs: review, then run pytest --regen-golden"


@pytest.mark.parametrize("profile", PROFILES)
def test_generated_policy_passes_lint_without_errors_or_warnings(profile: str) -> None:
    findings = lint_policy_text(generate_policy(profile), profile)
    serious = [str(f) for f in findings if f.severity != "info"]
    assert serious == []
    notes = [f.code for f in findings if f.severity == "info"]
    # Forensic keeps managedFields on purpose (field ownership is evidence); lint notes it.
    assert notes == (["managed-fields"] if profile == "forensic" else [])


@pytest.mark.parametrize("profile", PROFILES)
def test_the_yaml_means_what_the_parser_reads(profile: str) -> None:
    text = generate_policy(profile)
    plain = yaml.safe_load(text)
    policy = parse_policy(text, profile)
    assert plain["apiVersion"] == "audit.k8s.io/v1" and plain["kind"] == "Policy"
    assert len(plain["rules"]) == len(policy.rules)
    for raw, rule in zip(plain["rules"], policy.rules, strict=True):
        assert raw["level"] == rule.level
        assert tuple(raw.get("verbs", ())) == rule.verbs
        assert [(g["group"], tuple(g["resources"])) for g in raw.get("resources", ())] == [
            (g.group, g.resources) for g in rule.resources
        ]
    assert all(len(line) <= 100 for line in text.splitlines())


def test_every_rule_has_a_comment_saying_why() -> None:
    lines = generate_policy("recommended").splitlines()
    for n, line in enumerate(lines):
        if line.startswith("  - level:"):
            assert lines[n - 1].startswith("  # "), line


def test_recommended_never_logs_credential_bodies() -> None:
    policy = parse_policy(generate_policy("recommended"))
    for resource, sub, group in (
        ("secrets", "", ""),
        ("configmaps", "", ""),
        ("serviceaccounts", "token", ""),
        ("tokenreviews", "", "authentication.k8s.io"),
    ):
        for request in resource_requests(PERSON, resource, sub, "create", group):
            assert evaluate(policy, request).level == "Metadata"


def test_recommended_logs_bodies_where_rules_read_them(builtin_rules: RuleSet) -> None:
    policy = parse_policy(generate_policy("recommended"))
    needs = body_needs(builtin_rules)
    assert "pods/ephemeralcontainers" in needs["Request"][0]  # from the subresource a rule allows
    assert "configmaps" not in needs["Request"][0]  # credential-bearing: left out on purpose
    for request in resource_requests(PERSON, "pods", "ephemeralcontainers", "patch", ""):
        assert evaluate(policy, request).level == "Request"
    for request in resource_requests(
        PERSON, "clusterroles", "", "patch", "rbac.authorization.k8s.io"
    ):
        assert evaluate(policy, request).level == "RequestResponse"
    for request in resource_requests(PERSON, "pods", "", "get", ""):
        assert evaluate(policy, request).level == "Metadata"


def test_recommended_drops_heartbeats_but_not_what_they_hide_behind() -> None:
    policy = parse_policy(generate_policy("recommended"))
    lease = next(resource_requests(NODE, "leases", "", "update", "coordination.k8s.io"))
    status = next(resource_requests(NODE, "nodes", "status", "patch", ""))
    assert evaluate(policy, lease).level == evaluate(policy, status).level == "None"
    relabel = next(resource_requests(NODE, "nodes", "", "patch", ""))
    secrets = next(resource_requests(NODE, "secrets", "", "list", ""))
    assert evaluate(policy, relabel).level == "Metadata"  # a kubelet changing its Node
    assert evaluate(policy, secrets).level == "Metadata"


def test_a_webhook_is_noted_in_the_header_and_changes_no_rule() -> None:
    plain = generate_policy("recommended")
    with_hook = generate_policy("recommended", "https://10.0.0.11:9443/audit")
    assert "https://10.0.0.11:9443/audit" in with_hook
    assert parse_policy(with_hook).rules == parse_policy(plain).rules


def test_bad_profile_or_webhook_is_refused() -> None:
    with pytest.raises(ProfileError):
        generate_policy("verbose")
    with pytest.raises(ProfileError):
        generate_policy("minimal", "10.0.0.11:9443")
