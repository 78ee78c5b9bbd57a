"""The rule index (resource, subresource, verb) never changes what matches, only what is tried.

The reference is the rule's full detection (``build_predicate(rule.ir)``) run on every rule; the
engine runs the reduced predicate (tests the index guarantees are dropped) on index candidates.
Both must agree on every event, including malformed ones (lists, numbers, dotted literal keys).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from k3watch.event import Event
from k3watch.rules.compile import build_predicate
from k3watch.rules.engine import Engine
from k3watch.rules.ir import requirements
from k3watch.rules.model import RuleSet

Load = Callable[..., RuleSet]

DETECTIONS = {
    "verb_create": "sel: {verb: create}\ncondition: sel",
    "verb_upper": "sel: {verb: CREATE}\ncondition: sel",
    "verbs_write": "sel: {verb: [create, update, patch]}\ncondition: sel",
    "pod_create": "sel: {verb: create, objectRef.resource: pods}\ncondition: sel",
    "exec": (
        "sel: {objectRef.resource: pods, objectRef.subresource: [exec, attach]}\ncondition: sel"
    ),
    "either": (
        "a: {verb: get, objectRef.resource: secrets}\n"
        "b: {verb: list, objectRef.resource: configmaps}\n"
        "condition: 1 of them"
    ),
    "both_branches_verb": (
        "a: {verb: delete, objectRef.resource: pods}\n"
        "b: {verb: delete, userAgent|contains: curl}\n"
        "condition: a or b"
    ),
    "not_get": "sel: {verb: get}\ncondition: not sel",
    "get_not_pods": "sel: {verb: get}\nf: {objectRef.resource: pods}\ncondition: sel and not f",
    "verb_prefix": "sel: {verb|startswith: wat}\ncondition: sel",
    "verb_cased": "sel: {verb|cased: Get}\ncondition: sel",
    "verb_true": "sel: {verb: 'true'}\ncondition: sel",
    "verb_number": "sel: {verb: '7'}\ncondition: sel",
    "resource_null": "sel: {objectRef.resource: null, verb: get}\ncondition: sel",
    "resource_empty": "sel: {objectRef.resource: '', verb: get}\ncondition: sel",
    "keyword": "kw: [secrets]\ncondition: kw",
    "contradiction": "a: {verb: get}\nb: {verb: list}\ncondition: a and b",
    "log_record": "sel: {kind: k3watch.log/v1, message|contains: denied}\ncondition: sel",
}


def ruleset_text() -> str:
    docs = []
    for number, (name, detection) in enumerate(DETECTIONS.items(), 1):
        body = "\n".join("    " + line for line in detection.splitlines())
        docs.append(
            f"title: {name}\nname: {name}\nid: 00000000-0000-4000-8000-{number:012d}\n"
            f"logsource: {{product: kubernetes, service: audit}}\ndetection:\n{body}\n"
        )
    return "---\n".join(docs)


@pytest.fixture(scope="module")
def ruleset(load: Load) -> RuleSet:
    return load(ruleset_text())


@pytest.fixture(scope="module")
def reference(ruleset: RuleSet) -> Callable[[dict[str, Any]], set[str]]:
    """Names of the rules whose whole detection matches an event (no index involved)."""
    full = [(rule.info.title, build_predicate(rule.ir)) for rule in ruleset.event_rules]
    return lambda raw: {name for name, predicate in full if predicate(raw)}


WORDS = ["get", "GET", "list", "create", "Create", "delete", "watch", "patch", "true", "7", ""]
RESOURCES = ["pods", "PODS", "secrets", "configmaps", "deployments", ""]
SUBRESOURCES = ["exec", "attach", "log", "status"]
scalar = st.one_of(
    st.none(), st.booleans(), st.integers(-2, 10), st.floats(allow_nan=False, width=16)
)


def field(words: list[str]) -> st.SearchStrategy[Any]:
    word = st.sampled_from(words)
    return st.one_of(
        word, word, word, scalar, st.lists(st.one_of(word, scalar), max_size=3),
        st.dictionaries(word, word, max_size=1),
    )  # fmt: skip


def optional(key: str, values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(st.just({}), values.map(lambda v: {key: v}))


object_ref = st.builds(
    lambda *parts: {k: v for part in parts for k, v in part.items()},
    optional("resource", field(RESOURCES)),
    optional("subresource", field(SUBRESOURCES)),
)
object_refs = st.lists(object_ref, max_size=3)
verb = optional("verb", field(WORDS))
# A literal dotted key wins over the nested object (BRIEF.md field semantics).
literal_keys = st.builds(
    lambda a, b: a | b,
    optional("objectRef.resource", field(RESOURCES)),
    optional("objectRef.subresource", field(SUBRESOURCES)),
)
shapes = st.sampled_from(["dict", "dict", "missing", "list", "text", "null"])


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    raw: dict[str, Any] = {"userAgent": draw(st.sampled_from(["kubectl", "curl/8", "secrets"]))}
    raw.update(draw(verb))
    shape = draw(shapes)
    if shape == "dict":
        raw["objectRef"] = draw(object_ref)
    elif shape == "list":
        raw["objectRef"] = draw(object_refs)
    elif shape == "text":
        raw["objectRef"] = "pods"
    elif shape == "null":
        raw["objectRef"] = None
    raw.update(draw(literal_keys))
    raw.update(draw(optional("kind", field(["Event", "k3watch.log/v1", "K3WATCH.LOG/V1"]))))
    raw.update(draw(optional("message", st.sampled_from(["denied", "ok"]))))
    return raw


@settings(max_examples=300, deadline=None)
@given(raw=events())
def test_indexed_matching_agrees_with_every_full_detection_on_any_event(
    ruleset: RuleSet, reference: Callable[[dict[str, Any]], set[str]], raw: dict[str, Any]
) -> None:
    expected = reference(raw)
    engine = Engine(ruleset)
    candidates = {rule.info.name for rule in engine.candidates_for(Event(raw))}
    assert expected <= candidates, "the index excluded a rule that matches"
    # The engine runs reduced predicates on candidates; the second pass hits the index cache.
    for line in (1, 2):
        assert {a.title for a in engine.process(Event(raw, "t", line))} == expected


def test_the_index_skips_rules_whose_required_values_are_absent(ruleset: RuleSet) -> None:
    engine = Engine(ruleset)
    raw = {"verb": "watch", "objectRef": {"resource": "nodes"}}
    names = {rule.info.name for rule in engine.candidates_for(Event(raw))}
    assert "pod_create" not in names
    assert "verb_create" not in names
    assert {"not_get", "verb_prefix", "keyword"} <= names


def test_required_values_are_lowercase_and_intersected_across_and(ruleset: RuleSet) -> None:
    by_name = {rule.info.name: rule for rule in ruleset.event_rules}
    assert by_name["verb_upper"].requires == {"verb": frozenset({"create"})}
    assert by_name["pod_create"].requires == {
        "verb": frozenset({"create"}),
        "objectRef.resource": frozenset({"pods"}),
    }
    assert by_name["either"].requires == {
        "verb": frozenset({"get", "list"}),
        "objectRef.resource": frozenset({"secrets", "configmaps"}),
    }
    assert by_name["both_branches_verb"].requires == {"verb": frozenset({"delete"})}
    assert by_name["not_get"].requires == {}
    assert by_name["verb_cased"].requires == {}
    assert requirements(by_name["contradiction"].ir) == {"verb": frozenset()}


def test_a_rule_with_contradictory_requirements_is_never_a_candidate(ruleset: RuleSet) -> None:
    engine = Engine(ruleset)
    for verb in ("get", "list"):
        names = {rule.info.name for rule in engine.candidates_for(Event({"verb": verb}))}
        assert "contradiction" not in names


def test_audit_events_and_component_log_records_never_reach_each_others_rules(
    ruleset: RuleSet,
) -> None:
    engine = Engine(ruleset)
    audit = {"kind": "Event", "verb": "create", "objectRef": {"resource": "pods"}}
    record = {"kind": "k3watch.log/v1", "message": "apparmor denied"}
    assert "log_record" not in {r.info.name for r in engine.candidates_for(Event(audit))}
    names = {r.info.name for r in engine.candidates_for(Event(record))}
    assert "log_record" in names
    assert not {"verb_create", "pod_create", "exec", "either"} & names
