"""Shared fixtures for the policy tests: the built-in rules and generated event samples."""

from __future__ import annotations

from typing import Any

import pytest
from tests.conftest import builtin_rules as shared_builtin_rules

from k3watch.event import Event
from k3watch.rules.model import RuleSet
from k3watch.sample import generate_events


@pytest.fixture(scope="session")
def builtin_rules() -> RuleSet:
    """The built-in rule library (loaded once: it takes a couple of seconds)."""
    return shared_builtin_rules()


@pytest.fixture(scope="session")
def sample_events() -> list[Event]:
    """One day of the K3s simulator's audit stream, with the attack scenarios."""
    return [Event(raw, "sample", n) for n, raw in enumerate(generate_events(days=1), 1)]


def policy_text(*rules: str, top: str = "omitStages: [RequestReceived]\n") -> str:
    """A policy document from rule snippets (each a YAML mapping written as flow text)."""
    body = "".join(f"  - {rule}\n" for rule in rules)
    return f"apiVersion: audit.k8s.io/v1\nkind: Policy\n{top}rules:\n{body}"


def request(verb: str, resource: str | None = None, **fields: Any) -> Any:
    """Request attributes with a person as the default caller."""
    from k3watch.policy.evaluate import RequestAttributes

    fields.setdefault("user", "alice")
    fields.setdefault("groups", ("system:authenticated",))
    return RequestAttributes(verb=verb, resource=resource, **fields)
