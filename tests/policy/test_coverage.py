"""Coverage: which detection rules a policy blinds, found by probing the rules and the policy."""

from __future__ import annotations

from tests.policy.conftest import policy_text

from k3watch.policy.coverage import blinded_rules, coverage
from k3watch.policy.model import parse_policy
from k3watch.policy.profiles import generate_policy
from k3watch.rules.model import RuleSet

PRIVILEGED = "Privileged container requested"
CONFIGMAP = "ConfigMap stores credentials"


def test_recommended_blinds_no_built_in_rule(builtin_rules: RuleSet) -> None:
    spots = coverage(parse_policy(generate_policy("recommended")), builtin_rules)
    assert blinded_rules(spots) == []
    # The one accepted gap: that rule reads config map bodies, which the policy must not log.
    assert blinded_rules(spots, accepted=True) == [CONFIGMAP]
    assert all(s.severity == "info" for s in spots)


def test_forensic_blinds_no_built_in_rule_either(builtin_rules: RuleSet) -> None:
    spots = coverage(parse_policy(generate_policy("forensic")), builtin_rules)
    assert blinded_rules(spots) == []


def test_minimal_blinds_the_rules_that_read_bodies(builtin_rules: RuleSet) -> None:
    blind = blinded_rules(coverage(parse_policy(generate_policy("minimal")), builtin_rules))
    assert PRIVILEGED in blind and "Ingress published without TLS" in blind
    assert "Command run in a pod container (kubectl exec / attach)" not in blind
    levels = {r.info.title: r.info.audit_level for r in builtin_rules.event_rules}
    assert all(levels[t] != "Metadata" for t in blind if t in levels)


def test_pods_at_metadata_blinds_the_privileged_pod_rule_and_names_the_gap(
    builtin_rules: RuleSet,
) -> None:
    text = policy_text(
        "{level: Metadata, resources: [{group: ''}]}",
        "{level: Request, verbs: [create, update, patch], resources: [{group: apps}, "
        "{group: batch}]}",
        "{level: Metadata}",
    )
    spots = [s for s in coverage(parse_policy(text), builtin_rules) if s.title == PRIVILEGED]
    pods = [s for s in spots if s.resource == "pods"]
    assert pods and pods[0].needed == "Request" and pods[0].given == "Metadata"
    assert set(pods[0].verbs) == {"create", "patch", "update"} and pods[0].policy_rule == 0
    assert "pods by any caller: needs Request, logged at Metadata" in pods[0].message
    assert {s.resource for s in spots} == {
        "pods",
        "pods/ephemeralcontainers",
        "replicationcontrollers",
    }


def test_an_unlogged_request_blinds_metadata_rules_too(builtin_rules: RuleSet) -> None:
    text = policy_text(
        "{level: None, resources: [{group: '', resources: [pods/exec]}]}", "{level: Metadata}"
    )
    spots = coverage(parse_policy(text), builtin_rules)
    blind = blinded_rules(spots)
    assert "Command run in a pod container (kubectl exec / attach)" in blind
    assert all(s.given == "None" for s in spots if s.resource == "pods/exec")


def test_a_correlation_is_blind_where_its_input_is(builtin_rules: RuleSet) -> None:
    text = policy_text(
        "{level: None, resources: [{group: '', resources: [secrets]}]}", "{level: Metadata}"
    )
    spots = coverage(parse_policy(text), builtin_rules)
    corr = [s for s in spots if s.title == "Many different secrets read by one identity"]
    assert corr and corr[0].via and corr[0].kind == "value_count"


def test_blind_spots_are_json_able(builtin_rules: RuleSet) -> None:
    text = policy_text("{level: None, userGroups: [system:unauthenticated]}", "{level: Metadata}")
    spots = coverage(parse_policy(text), builtin_rules)
    anonymous = [s for s in spots if s.title == "Anonymous request allowed"]
    assert anonymous and anonymous[0].to_dict()["identities"] == ["an anonymous client"]
    assert anonymous[0].to_dict()["severity"] == "error"
