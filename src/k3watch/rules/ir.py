"""The boolean IR a Sigma detection compiles through, and what the index learns from it.

pySigma's condition tree becomes a small IR that is simplified (nested AND/OR flattened, double
negation cancelled, OR-ed values of one field merged into one leaf, so ``verb: [a, b, c]`` is a
single set lookup). The IR also tells which literal values a rule *requires* for the indexed
fields, so the engine skips the rule for every other event and drops the tests the index
already guarantees; and it estimates each test's cost, so cheap, selective tests run first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.exceptions import SigmaError
from sigma.rule import SigmaRule
from sigma.types import SigmaExists, SigmaFieldReference, SigmaType

from k3watch.rules.values import (
    NumSpec,
    Spec,
    StrSpec,
    UnsupportedValue,
    keyword_spec,
    spec_cost,
    specs_from_sigma,
)

# Fields the engine indexes rules by, in the order of the event key tuple: each rule's tests on
# these alone are decided once per distinct combination of their values, not per event. They
# are the fields rules test most that take few distinct values in a cluster, and ``kind``, which
# separates audit events from component-log records (so that neither reaches the other's rules).
INDEX_FIELDS = (
    "objectRef.resource",
    "objectRef.subresource",
    "verb",
    "responseStatus.code",
    "user.username",
    "userAgent",
    "impersonatedUser.username",
    "kind",
)


class CompileError(ValueError):
    """A detection that cannot be compiled; the message names the construct."""


# --- the IR ----------------------------------------------------------------------------------


@dataclass(slots=True)
class Leaf:
    """``field`` matches any of ``specs`` (field ``None``: a keyword, any string in the event)."""

    field: str | None
    specs: list[Spec]


@dataclass(slots=True)
class Exists:
    field: str
    exists: bool


@dataclass(slots=True)
class FieldRef:
    """``field`` equals (or starts/ends with) the value of ``other`` in the same event."""

    field: str
    other: str
    starts_with: bool
    ends_with: bool


@dataclass(slots=True)
class Not:
    child: Node


@dataclass(slots=True)
class And:
    children: list[Node] = field(default_factory=list)


@dataclass(slots=True)
class Or:
    children: list[Node] = field(default_factory=list)


Node = Leaf | Exists | FieldRef | Not | And | Or


def rule_to_ir(rule: SigmaRule) -> Node:
    """The whole detection of ``rule`` (several conditions are OR-ed) as simplified IR."""
    trees: list[Node] = []
    for condition in rule.detection.parsed_condition:
        try:
            tree = condition.parse()
        except SigmaError as exc:
            raise CompileError(str(exc)) from exc
        if tree is None:
            raise CompileError("the detection is empty (a processing pipeline dropped every item)")
        trees.append(_to_ir(tree))
    node: Node = trees[0] if len(trees) == 1 else Or(trees)
    return simplify(node)


def _to_ir(node: Any) -> Node:
    if isinstance(node, ConditionAND):
        return And([_to_ir(arg) for arg in node.args])
    if isinstance(node, ConditionOR):
        return Or([_to_ir(arg) for arg in node.args])
    if isinstance(node, ConditionNOT):
        return Not(_to_ir(node.args[0]))
    if isinstance(node, ConditionFieldEqualsValueExpression):
        return _leaf(node.field, node.value)
    if isinstance(node, ConditionValueExpression):
        return _leaf(None, node.value)
    raise CompileError(f"unsupported condition element {type(node).__name__}")


def _leaf(name: str | None, value: SigmaType) -> Node:
    if isinstance(value, SigmaExists):
        if name is None:
            raise CompileError("'exists' needs a field")
        return Exists(name, bool(value.exists))
    if isinstance(value, SigmaFieldReference):
        if name is None:
            raise CompileError("'fieldref' needs a field")
        return FieldRef(name, value.field, value.starts_with, value.ends_with)
    try:
        specs = specs_from_sigma(value)
    except UnsupportedValue as exc:
        where = f"field '{name}'" if name else "keyword"
        raise CompileError(f"{where}: {exc}") from exc
    return Leaf(name, specs if name is not None else [keyword_spec(s) for s in specs])


def simplify(node: Node) -> Node:
    """Flatten nested AND/OR, cancel double negation, merge OR-ed leaves of one field."""
    if isinstance(node, Not):
        child = simplify(node.child)
        return child.child if isinstance(child, Not) else Not(child)
    if isinstance(node, And | Or):
        kind = type(node)
        flat: list[Node] = []
        for child in (simplify(c) for c in node.children):
            if type(child) is kind:
                flat.extend(child.children)  # type: ignore[union-attr,unused-ignore]
            else:
                flat.append(child)
        if kind is Or:
            flat = _merge_or_leaves(flat)
        if len(flat) == 1:
            return flat[0]
        return kind(flat)
    return node


def _merge_or_leaves(children: list[Node]) -> list[Node]:
    merged: dict[str | None, Leaf] = {}
    out: list[Node] = []
    for child in children:
        if isinstance(child, Leaf):
            existing = merged.get(child.field)
            if existing is None:
                leaf = Leaf(child.field, list(child.specs))
                merged[child.field] = leaf
                out.append(leaf)
            else:
                existing.specs.extend(child.specs)
        else:
            out.append(child)
    return out


# --- index requirements ---


Requirement = frozenset[str | None]


def requirements(node: Node, fields: Iterable[str] = INDEX_FIELDS) -> dict[str, Requirement]:
    """For each of ``fields``, the index values one of which the event *must* have.

    Values are lowercase text (integral numbers as decimal text); ``None`` means the field is
    absent, from ``field|exists: false``. A field absent from the result is unconstrained. An
    empty set means the rule can never match (``rules lint`` reports it). ``fields`` must hold
    single values in events (not lists).
    """
    wanted = fields if isinstance(fields, frozenset | set | tuple) else tuple(fields)
    if isinstance(node, Leaf):
        name = node.field
        if name is not None and name in wanted and node.specs:
            texts = [_index_text(s) for s in node.specs]
            if all(t is not None for t in texts):
                return {name: frozenset(texts)}
        return {}
    if isinstance(node, Exists) and not node.exists and node.field in wanted:
        return {node.field: frozenset({None})}
    if isinstance(node, Not) and isinstance(node.child, Exists):
        if node.child.exists and node.child.field in wanted:
            return {node.child.field: frozenset({None})}
        return {}
    if isinstance(node, And):
        result: dict[str, Requirement] = {}
        for child in node.children:
            for name, values in requirements(child, wanted).items():
                result[name] = result[name] & values if name in result else values
        return result
    if isinstance(node, Or):
        parts = [requirements(child, wanted) for child in node.children]
        common = set(parts[0]).intersection(*parts[1:]) if parts else set()
        return {name: frozenset().union(*(p[name] for p in parts)) for name in common}
    return {}


def _index_text(spec: Spec) -> str | None:
    """The index value a spec requires, or ``None`` when it is not a plain equality."""
    if isinstance(spec, StrSpec):
        return spec.text if _is_plain_eq(spec) else None
    if isinstance(spec, NumSpec) and spec.number.is_integer():
        return str(int(spec.number))
    return None


def _is_plain_eq(spec: Spec) -> bool:
    return isinstance(spec, StrSpec) and spec.kind == "eq" and not spec.cased


Residual = Node | bool


def is_key_only(node: Node, fields: Iterable[str] = INDEX_FIELDS) -> bool:
    """Whether a test reads nothing but ``fields`` (so it can be decided from them alone)."""
    wanted = set(fields)
    if any(isinstance(n, Leaf) and n.field is None for n in _walk(node)):
        return False  # a keyword reads the whole event
    return set(fields_used(node)) <= wanted


def partial(node: Node, decide: Callable[[Node], bool | None]) -> Residual:
    """Evaluate what ``decide`` can decide (True/False), keep the rest as a smaller detection.

    ``decide`` answers for a leaf test (or ``None`` when it cannot). The engine uses this with
    the values of the index fields: for one combination of them, most detections become
    ``False`` (the rule cannot match) or shrink to the tests on other fields.
    """
    if isinstance(node, Not):
        inner = partial(node.child, decide)
        return (not inner) if isinstance(inner, bool) else Not(inner)
    if isinstance(node, And | Or):
        short = isinstance(node, Or)  # the value that decides the whole node
        kept: list[Node] = []
        for child in node.children:
            value = partial(child, decide)
            if value is short:
                return short
            if not isinstance(value, bool):
                kept.append(value)
        if not kept:
            return not short
        return kept[0] if len(kept) == 1 else type(node)(kept)
    known = decide(node)
    return node if known is None else known


def _walk(node: Node) -> Iterable[Node]:
    yield node
    if isinstance(node, Not):
        yield from _walk(node.child)
    elif isinstance(node, And | Or):
        for child in node.children:
            yield from _walk(child)


# Field prefixes whose values exist only at some audit levels.
_RESPONSE_FIELDS = ("responseObject",)
_REQUEST_FIELDS = ("requestObject", "k3watch.pod.", "k3watch.csr")


def audit_needs(node: Node, required: dict[str, Requirement]) -> tuple[str, tuple[str, ...]]:
    """The audit level a detection needs, from the fields it reads, and the resources it
    looks at (from its index requirements; empty: any resource).

    Reading ``responseObject`` needs RequestResponse; reading the request body (directly, or
    through ``k3watch.pod.*`` / ``k3watch.csr``) needs Request; everything else is in every
    event from Metadata up.
    """
    names = list(fields_used(node))
    if any(n.startswith(_RESPONSE_FIELDS) for n in names):
        level = "RequestResponse"
    elif any(n.startswith(_REQUEST_FIELDS) for n in names):
        level = "Request"
    else:
        level = "Metadata"
    resources = sorted(r for r in required.get("objectRef.resource", ()) if r is not None)
    subresources = sorted(s for s in required.get("objectRef.subresource", ()) if s is not None)
    if subresources and None not in required.get("objectRef.subresource", {None}):
        resources = [f"{r}/{s}" for r in resources for s in subresources]
    return level, tuple(resources)


# Negated tests (exclusions) are almost always true, so they rarely end an AND early: evaluate
# them after the selective positive tests, which usually fail at once.
NOT_PENALTY = 20


def cost(node: Node) -> int:
    """Estimated cost of a test, weighted by how rarely it ends an AND early (cheap first)."""
    if isinstance(node, Leaf):
        if node.field is None:
            return 50
        depth = node.field.count(".")
        return depth + max((spec_cost(s) for s in node.specs), default=1)
    if isinstance(node, Exists):
        return 1 + node.field.count(".")
    if isinstance(node, FieldRef):
        return 6
    if isinstance(node, Not):
        return cost(node.child) + NOT_PENALTY
    return sum(cost(c) for c in node.children)


def fields_used(node: Node) -> Iterable[str]:
    """Every field name the IR reads (for lint and documentation)."""
    if isinstance(node, Leaf):
        if node.field is not None:
            yield node.field
    elif isinstance(node, Exists):
        yield node.field
    elif isinstance(node, FieldRef):
        yield node.field
        yield node.other
    elif isinstance(node, Not):
        yield from fields_used(node.child)
    else:
        for child in node.children:
            yield from fields_used(child)
