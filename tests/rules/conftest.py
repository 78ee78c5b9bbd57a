"""Fixtures for engine tests: rules written inline as YAML, audit events built from a template.

``load`` writes a YAML text to a fresh directory and loads it (no built-in library);
``event`` builds a complete ``audit.k8s.io/v1`` event, ``t`` seconds after ``t0``;
``run`` feeds raw events through an ``Engine`` and returns every alert, flush included;
``matches`` answers whether a one-rule set built from a detection block fires on an event.
"""

from __future__ import annotations

import textwrap
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from k3watch.alert import Alert
from k3watch.event import Event, format_time, parse_time
from k3watch.rules.engine import Engine, EngineOptions
from k3watch.rules.firstseen import BaselineStore
from k3watch.rules.loader import load_rules
from k3watch.rules.model import RuleSet

T0 = parse_time("2026-01-05T10:00:00Z") or 0.0

Load = Callable[..., RuleSet]
Run = Callable[..., list[Alert]]


def audit_event(
    verb: str = "get",
    resource: str | None = "pods",
    *,
    t: float = 0.0,
    user: str = "alice",
    namespace: str | None = "default",
    name: str | None = "web-0",
    subresource: str | None = None,
    code: int = 200,
    stage: str = "ResponseComplete",
    audit_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A complete audit event; ``extra`` top-level keys replace (or add to) the template's."""
    object_ref: dict[str, Any] = {"apiVersion": "v1"}
    for key, value in (
        ("resource", resource),
        ("namespace", namespace),
        ("name", name),
        ("subresource", subresource),
    ):
        if value is not None:
            object_ref[key] = value
    path = f"/api/v1/namespaces/{namespace}/{resource}/{name}"
    raw: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": audit_id or f"id-{verb}-{resource}-{user}-{t:g}",
        "stage": stage,
        "requestURI": path + (f"/{subresource}" if subresource else ""),
        "verb": verb,
        "user": {"username": user, "groups": ["system:authenticated"]},
        "sourceIPs": ["10.0.0.7"],
        "userAgent": "kubectl/v1.31.0",
        "objectRef": object_ref,
        "responseStatus": {"metadata": {}, "code": code},
        "requestReceivedTimestamp": format_time(T0 + t),
        "stageTimestamp": format_time(T0 + t + 0.01),
        "annotations": {"authorization.k8s.io/decision": "allow"},
    }
    raw.update(extra)
    return raw


def uuid_for(name: str) -> str:
    """A stable UUID for a rule name (Sigma rule ids must be UUIDs)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"k3watch-test/{name}"))


def rule_yaml(detection: str, *, name: str = "r1", extra: str = "") -> str:
    """A single-event rule document around ``detection`` (the body of the detection block)."""
    body = textwrap.indent(textwrap.dedent(detection).strip(), "    ")
    return (
        f"title: rule {name}\nid: {uuid_for(name)}\nname: {name}\n"
        "logsource: {product: kubernetes, service: audit}\n"
        f"detection:\n{body}\n{textwrap.dedent(extra)}"
    )


@pytest.fixture(scope="session")
def load(tmp_path_factory: pytest.TempPathFactory) -> Load:
    """``load(yaml_text, errors_ok=False, **load_rules_kwargs)`` → RuleSet.

    Rule sets are cached by text and arguments (engines never change them), which keeps the
    suite fast: many tests load the same rules.
    """
    cache: dict[str, RuleSet] = {}

    def load(text: str, *, errors_ok: bool = False, **kwargs: Any) -> RuleSet:
        key = repr((text, sorted(kwargs.items())))
        ruleset = cache.get(key)
        if ruleset is None:
            path = tmp_path_factory.mktemp("rules") / "rules.yml"
            path.write_text(textwrap.dedent(text), encoding="utf-8")
            ruleset = cache[key] = load_rules([path], builtin=False, **kwargs)
        if not errors_ok:
            assert not ruleset.errors, [str(e) for e in ruleset.errors]
        return ruleset

    return load


@pytest.fixture(scope="session")
def run() -> Run:
    """``run(ruleset, raw_events, options=None, baseline=None, flush=True)`` → alerts."""

    def run(
        ruleset: RuleSet,
        events: Iterable[dict[str, Any]],
        *,
        options: EngineOptions | None = None,
        baseline: BaselineStore | None = None,
        flush: bool = True,
    ) -> list[Alert]:
        engine = Engine(ruleset, options, baseline=baseline)
        alerts: list[Alert] = []
        for line, raw in enumerate(events, 1):
            alerts.extend(engine.process(Event(raw, "test", line)))
        if flush:
            alerts.extend(engine.flush())
        return alerts

    return run


@pytest.fixture(scope="session")
def matches(load: Load) -> Callable[[str, dict[str, Any]], bool]:
    """``matches(detection, raw_event)``: does a one-rule set with ``detection`` fire on it?"""

    def matches(detection: str, raw: dict[str, Any]) -> bool:
        ruleset = load(rule_yaml(detection))
        assert len(ruleset.event_rules) == 1
        engine = Engine(ruleset)
        return bool(engine.process(Event(raw, "test", 1)))

    return matches


@pytest.fixture(scope="session")
def event() -> Callable[..., dict[str, Any]]:
    """The ``audit_event`` builder."""
    return audit_event


@pytest.fixture(scope="session")
def t0() -> float:
    """Epoch seconds of ``t=0`` in ``audit_event``."""
    return T0
