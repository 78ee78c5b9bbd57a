"""The ``k3watch:`` block of a rule: the small extensions Sigma has no construct for.

```yaml
k3watch:
  group_by: [user.username]       # alert group for single-event rules (default user.username)
  response: "what the responder should do"
  summary: "{user.username} read secret {objectRef.name}"   # optional alert summary template
  first_seen:                      # alert only on values never seen before (new terms)
    fields: [user.username, userAgent]
    learning: 7d                   # baseline-only period from when the rule first runs
    forget: 90d                    # optional: values unseen this long are new again
  audit_level: Request             # override the audit level inferred from the fields read
  tests:                           # embedded tests, run by `k3watch rules test`
    match: [ {event}, [ {event}, {event} ] ]     # an event, or a sequence of events
    nomatch: [ {event} ]
```
Unknown keys are errors (with their line), as everywhere in k3watch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from k3watch.errors import Location, RuleError
from k3watch.rules.model import FirstSeenSpec, RuleTest

_KEYS = {"group_by", "response", "summary", "first_seen", "tests", "audit_level"}
_LEVELS = ("Metadata", "Request", "RequestResponse")
_FIRST_SEEN_KEYS = {"fields", "learning", "forget"}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: object, what: str = "duration") -> float:
    """``"90s"``, ``"10m"``, ``"2h"``, ``"7d"``, ``"1w"`` (or a number of seconds)."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        return float(text)
    match = _DURATION.match(str(text).strip())
    if not match:
        raise ValueError(f"{what} {text!r} is not a duration like 30s, 10m, 2h, 7d or 1w")
    return float(match.group(1)) * _UNITS[match.group(2)]


@dataclass(frozen=True, slots=True)
class Extension:
    group_by: tuple[str, ...] | None = None
    response: str = ""
    summary: str | None = None
    first_seen: FirstSeenSpec | None = None
    tests: tuple[RuleTest, ...] = ()
    audit_level: str | None = None


def parse_extension(value: Any, node: yaml.Node | None, location: Location) -> Extension:
    """Validate and read a ``k3watch:`` block; raise RuleError pointing at the bad line."""
    if value is None:
        return Extension()
    block = _child(node, "k3watch")
    if not isinstance(value, dict):
        raise RuleError("'k3watch' must be a mapping", _at(location, block))
    for key in value:
        if key not in _KEYS:
            raise RuleError(
                f"unknown key 'k3watch.{key}'",
                _at(location, _child(block, key)),
                f"allowed: {', '.join(sorted(_KEYS))}",
            )
    group_by = value.get("group_by")
    if group_by is not None:
        if isinstance(group_by, str):
            group_by = [group_by]
        if not isinstance(group_by, list) or not all(isinstance(g, str) for g in group_by):
            raise RuleError(
                "'k3watch.group_by' must be a list of field names",
                _at(location, _child(block, "group_by")),
            )
    response = value.get("response", "")
    if not isinstance(response, str):
        raise RuleError("'k3watch.response' must be text", _at(location, _child(block, "response")))
    summary = value.get("summary")
    if summary is not None and not isinstance(summary, str):
        raise RuleError("'k3watch.summary' must be text", _at(location, _child(block, "summary")))
    audit_level = value.get("audit_level")
    if audit_level is not None and audit_level not in _LEVELS:
        raise RuleError(
            f"'k3watch.audit_level' must be one of {', '.join(_LEVELS)}",
            _at(location, _child(block, "audit_level")),
        )
    return Extension(
        audit_level=audit_level,
        group_by=tuple(group_by) if group_by is not None else None,
        response=response.strip(),
        summary=summary,
        first_seen=_first_seen(value.get("first_seen"), _child(block, "first_seen"), location),
        tests=_tests(value.get("tests"), _child(block, "tests"), location),
    )


def _first_seen(value: Any, node: yaml.Node | None, location: Location) -> FirstSeenSpec | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise RuleError("'k3watch.first_seen' must be a mapping", _at(location, node))
    for key in value:
        if key not in _FIRST_SEEN_KEYS:
            raise RuleError(
                f"unknown key 'k3watch.first_seen.{key}'",
                _at(location, _child(node, key)),
                f"allowed: {', '.join(sorted(_FIRST_SEEN_KEYS))}",
            )
    fields = value.get("fields")
    if isinstance(fields, str):
        fields = [fields]
    if not isinstance(fields, list) or not fields or not all(isinstance(f, str) for f in fields):
        raise RuleError(
            "'k3watch.first_seen.fields' must be a non-empty list of field names",
            _at(location, _child(node, "fields") or node),
        )
    try:
        learning = parse_duration(value.get("learning", "7d"), "learning")
        forget_raw = value.get("forget")
        forget = parse_duration(forget_raw, "forget") if forget_raw is not None else None
    except ValueError as exc:
        raise RuleError(str(exc), _at(location, node)) from exc
    return FirstSeenSpec(tuple(fields), learning, forget)


def _tests(value: Any, node: yaml.Node | None, location: Location) -> tuple[RuleTest, ...]:
    if value is None:
        return ()
    if not isinstance(value, dict) or not set(value) <= {"match", "nomatch"}:
        raise RuleError(
            "'k3watch.tests' must be a mapping with 'match' and/or 'nomatch' lists",
            _at(location, node),
        )
    out: list[RuleTest] = []
    for key, must_fire in (("match", True), ("nomatch", False)):
        cases = value.get(key) or []
        cases_node = _child(node, key)
        if not isinstance(cases, list):
            raise RuleError(f"'k3watch.tests.{key}' must be a list", _at(location, cases_node))
        for index, case in enumerate(cases):
            case_node = _item(cases_node, index)
            events = case if isinstance(case, list) else [case]
            if not events or not all(isinstance(e, dict) for e in events):
                raise RuleError(
                    f"'k3watch.tests.{key}[{index}]' must be an event (mapping) "
                    "or a list of events",
                    _at(location, case_node),
                )
            label = f"{key}[{index}]"
            out.append(RuleTest(must_fire, tuple(events), _at(location, case_node), label))
    return tuple(out)


def _child(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
                return value_node  # type: ignore[no-any-return]
    return None


def _item(node: yaml.Node | None, index: int) -> yaml.Node | None:
    if isinstance(node, yaml.SequenceNode) and index < len(node.value):
        return node.value[index]  # type: ignore[no-any-return]
    return None


def _at(location: Location, node: yaml.Node | None) -> Location:
    if node is None:
        return location
    return Location(location.source, node.start_mark.line + 1)
