"""Simulation: a policy applied to real and generated audit events, rule by rule."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from tests.policy.conftest import policy_text

from k3watch.errors import InputError
from k3watch.event import Event
from k3watch.policy.model import decode_policy, parse_policy
from k3watch.policy.profiles import PROFILES, generate_policy
from k3watch.policy.simulate import simulate, simulate_files

CORPUS = Path(__file__).parents[1] / "corpus"
OPENSHIFT_LOG = CORPUS / "openshift-clo-audit" / "audit_in.log"
OPENSHIFT_POLICY = CORPUS / "openshift-clo-audit" / "example_policy.yaml"
HKERMA_POLICY = CORPUS / "hkerma-perfspec-audit-csv" / "audit-policy.yaml"


def _fail(error: InputError) -> None:
    raise AssertionError(str(error))


def test_every_event_is_counted_once_by_the_rule_that_decides_it(
    sample_events: list[Event],
) -> None:
    result = simulate(parse_policy(generate_policy("recommended")), sample_events)
    assert result.events == len(sample_events)
    counted = sum(t.kept + t.dropped + t.stage_omitted for t in result.tallies)
    assert counted == result.events
    leases = sum(
        1 for e in sample_events if e.resource == "leases" and e.verb in ("get", "update", "patch")
    )
    assert leases and result.rules[0].dropped == leases  # rule 0: lease renewals
    assert result.unmatched.kept == result.unmatched.dropped == 0  # the catch-all takes the rest
    assert 0 < result.kept < result.events and result.hours == pytest.approx(24, abs=0.1)


def test_omitted_stages_drop_events_and_are_counted_apart() -> None:
    events = [
        Event(
            {
                "verb": "watch",
                "stage": stage,
                "level": "Metadata",
                "objectRef": {"resource": "pods"},
                "user": {"username": "a"},
            }
        )
        for stage in ("RequestReceived", "ResponseStarted", "ResponseComplete")
    ]
    result = simulate(parse_policy(policy_text("{level: Metadata}")), events)
    assert (result.rules[0].kept, result.rules[0].stage_omitted) == (2, 1)


def test_kept_size_is_estimated_at_the_policy_level() -> None:
    body = {"spec": {"containers": [{"image": "x" * 1000}]}}
    raw = {
        "verb": "create",
        "stage": "ResponseComplete",
        "level": "RequestResponse",
        "objectRef": {"resource": "pods", "namespace": "a"},
        "user": {"username": "u"},
        "requestObject": body,
        "responseObject": body,
    }
    size = len(orjson.dumps(raw))
    metadata = simulate(parse_policy(policy_text("{level: Metadata}")), [Event(raw)])
    request = simulate(parse_policy(policy_text("{level: Request}")), [Event(raw)])
    full = simulate(parse_policy(policy_text("{level: RequestResponse}")), [Event(raw)])
    assert metadata.kept_bytes < 500 < request.kept_bytes < full.kept_bytes == size
    assert full.upgraded == 0


def test_events_recorded_below_the_policy_level_are_counted_as_upgraded(
    sample_events: list[Event],
) -> None:
    result = simulate(parse_policy(generate_policy("forensic")), sample_events)
    assert result.upgraded > 0  # the sample was written with a Request-level policy


def test_the_openshift_sample_through_the_hkerma_policy_keeps_all_at_metadata() -> None:
    (result,) = simulate_files(
        [parse_policy(HKERMA_POLICY.read_text(), "hkerma")], [str(OPENSHIFT_LOG)], _fail
    )
    assert (result.events, result.kept, result.levels) == (100, 100, {"Metadata": 100})
    # The log holds RequestResponse bodies; at Metadata a tenth of the bytes remain.
    assert result.kept_bytes < result.input_bytes / 5


def test_the_openshift_example_policy_keeps_nothing_under_api_server_semantics() -> None:
    # Its users and namespaces with '*' match literally, and with no catch-all the 62 events
    # no rule matches are not logged (the log forwarder it was written for differs).
    policy, _ = decode_policy(OPENSHIFT_POLICY.read_text(), "openshift")
    assert policy is not None
    (result,) = simulate_files([policy], [str(OPENSHIFT_LOG)], _fail)
    assert result.kept == 0 and result.unmatched.dropped == 62
    assert {t.index: t.dropped for t in result.rules if t.dropped} == {0: 17, 1: 10, 8: 11}


def test_each_profile_keeps_a_different_share_of_the_openshift_sample() -> None:
    policies = [parse_policy(generate_policy(p), p) for p in PROFILES]
    results = simulate_files(policies, [str(OPENSHIFT_LOG)], _fail)
    kept = {r.source: r.kept for r in results}
    assert kept == {"minimal": 94, "recommended": 94, "forensic": 98}
    sizes = {r.source: r.kept_bytes for r in results}
    assert sizes["minimal"] < sizes["recommended"] < sizes["forensic"]
    assert results[1].levels == {"Metadata": 84, "Request": 9, "RequestResponse": 1}
    assert results[0].per_hour(results[0].kept) == pytest.approx(94 / results[0].hours)
