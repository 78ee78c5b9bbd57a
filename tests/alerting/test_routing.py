"""Routes: which alerts a destination receives, by severity, rule, tag, cluster and update."""

from __future__ import annotations

import pytest

from k3watch.alert import Severity
from k3watch.alerting.config import RouteConfig
from k3watch.alerting.routing import (
    Candidate,
    Route,
    accepts,
    rejection,
    rule_matches,
    tag_matches,
)

RULE = "2a0764e1-5f3b-4c8e-9d21-7b6a5c4d3e2f"
SECRETS = Candidate(
    rule_id=RULE,
    severity=Severity.HIGH,
    tags=("attack.credential-access", "attack.t1552.007"),
    cluster="prod",
)


def route(**fields: object) -> Route:
    return Route.from_config(RouteConfig(**fields))  # type: ignore[arg-type]


def test_the_default_route_takes_every_alert() -> None:
    assert accepts(Route(), SECRETS)
    assert accepts(Route(), Candidate("r", Severity.INFORMATIONAL, ()))


@pytest.mark.parametrize(
    ("minimum", "taken"),
    [("informational", True), ("high", True), ("HIGH", True), ("critical", False)],
)
def test_alerts_below_the_minimum_severity_are_skipped(minimum: str, taken: bool) -> None:
    assert (rejection(route(min_severity=minimum), SECRETS) is None) is taken
    if not taken:
        assert rejection(route(min_severity=minimum), SECRETS) == "severity"


def test_a_tactic_tag_selects_the_alerts_of_that_tactic() -> None:
    credential = route(tags=("attack.credential-access",))
    assert accepts(credential, SECRETS)
    other = Candidate("r2", Severity.HIGH, ("attack.execution", "attack.t1609"))
    assert rejection(credential, other) == "not_selected"


def test_a_technique_tag_also_selects_its_sub_techniques_but_not_lookalikes() -> None:
    assert tag_matches("attack.t1552", "attack.t1552.007")
    assert tag_matches("attack.t1552", "attack.t1552")
    assert not tag_matches("attack.t1552", "attack.t15520")
    assert not tag_matches("attack.t1552.007", "attack.t1552")


def test_tag_patterns_may_use_wildcards_and_ignore_case() -> None:
    assert accepts(route(tags=("ATTACK.T15*",)), SECRETS)
    assert tag_matches("attack.*", "attack.t1552.007")
    assert not accepts(route(tags=("cve.*",)), SECRETS)


def test_rules_match_by_full_id_or_a_prefix_of_at_least_eight_characters() -> None:
    assert rule_matches(RULE, RULE)
    assert rule_matches("2a0764e1", RULE)
    assert not rule_matches("2a0764e", RULE)  # too short to be an id
    assert accepts(route(rules=("2A0764E1",)), SECRETS)
    assert rejection(route(rules=("ffffffff",)), SECRETS) == "not_selected"


def test_rules_and_tags_select_together_an_alert_needs_only_one_of_them() -> None:
    either = route(rules=("ffffffff-0000",), tags=("attack.credential-access",))
    assert accepts(either, SECRETS)
    by_rule = Candidate("ffffffff-0000", Severity.LOW, ())
    assert accepts(either, by_rule)
    assert not accepts(either, Candidate("other", Severity.LOW, ("attack.execution",)))


def test_exclusions_win_over_selections() -> None:
    assert rejection(route(tags=("attack.*",), exclude_rules=(RULE,)), SECRETS) == "excluded_rule"
    excluded = route(rules=(RULE,), exclude_tags=("attack.t1552",))
    assert rejection(excluded, SECRETS) == "excluded_tag"


def test_clusters_select_and_exclude() -> None:
    assert accepts(route(clusters=("prod", "staging")), SECRETS)
    assert rejection(route(clusters=("staging",)), SECRETS) == "cluster"
    assert rejection(route(exclude_clusters=("prod",)), SECRETS) == "excluded_cluster"
    unknown = Candidate(RULE, Severity.HIGH, (), cluster="")
    assert rejection(route(clusters=("prod",)), unknown) == "cluster"


def test_updates_of_an_alert_already_sent_can_be_left_out() -> None:
    update = Candidate(RULE, Severity.HIGH, (), update=True)
    assert accepts(route(), update)
    assert rejection(route(updates=False), update) == "update"
    assert accepts(route(updates=False), Candidate(RULE, Severity.HIGH, ()))


def test_severity_is_reported_before_any_other_reason() -> None:
    strict = route(min_severity="critical", rules=("nomatch-nomatch",), clusters=("x",))
    assert rejection(strict, SECRETS) == "severity"
