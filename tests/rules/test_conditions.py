"""Sigma conditions: and/or/not, `x of` patterns, several conditions, maps and lists of maps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

Matches = Callable[[str, dict[str, Any]], bool]
Builder = Callable[..., dict[str, Any]]

SELECTIONS = """\
sel_secret: {objectRef.resource: secrets}
sel_exec: {objectRef.subresource: exec}
filter_admin: {user.username: admin}"""


def detection(condition: str) -> str:
    return f"{SELECTIONS}\ncondition: {condition}"


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        # events: secret read by alice, secret read by admin, exec by alice, configmap by alice
        ("sel_secret", [True, True, False, False]),
        ("sel_secret and not filter_admin", [True, False, False, False]),
        ("sel_secret or sel_exec", [True, True, True, False]),
        ("not sel_secret", [False, False, True, True]),
        ("1 of sel_*", [True, True, True, False]),
        ("all of sel_*", [False, False, False, False]),
        ("1 of sel_* and not 1 of filter_*", [True, False, True, False]),
        ("1 of them", [True, True, True, False]),
        ("not (sel_secret or sel_exec)", [False, False, False, True]),
        ("sel_exec or sel_secret and filter_admin", [False, True, True, False]),
        ("(sel_exec or sel_secret) and filter_admin", [False, True, False, False]),
    ],
)
def test_condition_combines_the_selections(
    matches: Matches, event: Builder, condition: str, expected: list[bool]
) -> None:
    events = [
        event("get", "secrets"),
        event("get", "secrets", user="admin"),
        event("create", "pods", subresource="exec"),
        event("get", "configmaps"),
    ]
    assert [matches(detection(condition), raw) for raw in events] == expected


def test_all_of_them_needs_every_selection(matches: Matches, event: Builder) -> None:
    text = "a: {verb: create}\nb: {objectRef.resource: pods}\ncondition: all of them"
    assert matches(text, event("create", "pods"))
    assert not matches(text, event("create", "secrets"))


def test_several_conditions_are_or_ed(matches: Matches, event: Builder) -> None:
    text = "a: {verb: delete}\nb: {verb: deletecollection}\ncondition: [a, b]"
    assert matches(text, event("delete"))
    assert matches(text, event("deletecollection"))
    assert not matches(text, event("get"))


def test_a_map_ands_its_fields_and_a_list_ors_its_values(matches: Matches, event: Builder) -> None:
    text = "sel:\n  verb: [create, update]\n  objectRef.resource: roles\ncondition: sel"
    assert matches(text, event("update", "roles"))
    assert not matches(text, event("update", "pods"))
    assert not matches(text, event("delete", "roles"))


def test_a_list_of_maps_ors_the_maps(matches: Matches, event: Builder) -> None:
    text = (
        "sel:\n"
        "  - {verb: create, objectRef.resource: roles}\n"
        "  - {verb: delete, objectRef.resource: rolebindings}\n"
        "condition: sel"
    )
    assert matches(text, event("create", "roles"))
    assert matches(text, event("delete", "rolebindings"))
    assert not matches(text, event("create", "rolebindings"))


def test_negating_a_list_field_means_no_element_matches(matches: Matches, event: Builder) -> None:
    text = (
        "sel: {verb: get}\ninternal: {sourceIPs|cidr: 10.0.0.0/8}\ncondition: sel and not internal"
    )
    assert matches(text, event(sourceIPs=["192.168.1.1"]))
    assert not matches(text, event(sourceIPs=["192.168.1.1", "10.0.0.1"]))


def test_a_null_selection_negated_means_the_field_has_a_value(
    matches: Matches, event: Builder
) -> None:
    text = (
        "sel: {verb: get}\nnobody: {impersonatedUser.username: null}\ncondition: sel and not nobody"
    )
    assert matches(text, event(impersonatedUser={"username": "bob"}))
    assert not matches(text, event())
