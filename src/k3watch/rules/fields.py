"""Field access on raw events, compiled once per field path.

Semantics (BRIEF.md): a path follows the event's JSON (``objectRef.resource``); at every level a
literal key wins over splitting on dots, so ``annotations.authorization.k8s.io/decision`` reaches
the annotation whose key contains dots and a slash; a list on the path means "any element", so
``requestObject.spec.containers.securityContext.privileged`` yields one value per container.
Results of a fan-out are flattened into one list. Paths under ``k3watch.`` are derived fields
computed from the event (see ``k3watch.event.DERIVED_FIELDS``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from k3watch.event import DERIVED_FIELDS


class _Missing:
    """The value of a field that is not in the event (distinct from a JSON ``null``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final = _Missing()

Getter = Callable[[dict[str, Any]], Any]
"""Returns the field's value, ``MISSING``, or a list (a list value or a fan-out, flattened)."""


def compile_getter(path: str) -> Getter:
    """Build the fastest getter for ``path`` that keeps the literal-key and fan-out semantics."""
    for root, compute in DERIVED_FIELDS.items():
        if path == root:
            return _derived_getter(compute)
        if path.startswith(root + "."):
            rest = _path_resolver(path[len(root) + 1 :].split("."))
            return _derived_getter(compute, rest)
    parts = path.split(".")
    if len(parts) == 1:
        return _single_getter(path)
    if len(parts) == 2:
        return _two_part_getter(path, parts[0], parts[1])
    resolve = _path_resolver(parts)

    def getter(event: dict[str, Any]) -> Any:
        return resolve(event)

    return getter


def _path_resolver(parts: list[str]) -> Callable[[Any], Any]:
    """A function resolving ``parts`` below any value (dict, or list fanned out)."""
    # For each level i, the keys to try, longest literal first: (key, index after the key).
    steps = tuple(
        tuple((".".join(parts[i:j]), j) for j in range(len(parts), i, -1))
        for i in range(len(parts))
    )
    end = len(parts)

    def resolve(node: dict[str, Any], level: int) -> Any:
        for key, nxt in steps[level]:
            if key in node:
                value = node[key]
                if nxt == end:
                    return value
                return descend(value, nxt)
        return MISSING

    def descend(value: Any, level: int) -> Any:
        cls = value.__class__
        if cls is dict:
            return resolve(value, level)
        if cls is list:
            out: list[Any] = []
            for element in value:
                found = descend(element, level)
                if found is MISSING:
                    continue
                if found.__class__ is list:
                    out.extend(found)
                else:
                    out.append(found)
            return out if out else MISSING
        return MISSING

    def from_root(value: Any) -> Any:
        return descend(value, 0)

    return from_root


def _single_getter(key: str) -> Getter:
    def getter(event: dict[str, Any]) -> Any:
        return event.get(key, MISSING)

    return getter


def _two_part_getter(literal: str, outer: str, inner: str) -> Getter:
    fan_out = _path_resolver([inner])  # when ``outer`` is a list

    def getter(event: dict[str, Any]) -> Any:
        if literal in event:
            return event[literal]
        value = event.get(outer, MISSING)
        cls = value.__class__
        if cls is dict:
            return value.get(inner, MISSING)
        if cls is list:
            return fan_out(value)
        return MISSING

    return getter


def _derived_getter(
    compute: Callable[[dict[str, Any]], Any], rest: Callable[[Any], Any] | None = None
) -> Getter:
    def getter(event: dict[str, Any]) -> Any:
        value = compute(event)
        if value is None:
            return MISSING
        return value if rest is None else rest(value)

    return getter


def iter_strings(value: Any) -> list[str]:
    """Every string value nested anywhere in ``value`` (for field-less keyword matches)."""
    out: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        cls = item.__class__
        if cls is str:
            out.append(item)
        elif cls is dict:
            stack.extend(item.values())
        elif cls is list:
            stack.extend(item)
    return out
