"""Compile a Sigma detection (pySigma's condition tree) into one fast Python predicate.

The tree is first turned into a small boolean IR and simplified: nested AND/OR are flattened,
OR-ed values of one field become one leaf (one set lookup), cheap tests run before expensive
ones. The IR also tells which literal values a rule *requires* for the indexed fields (verb,
resource, subresource), so the engine can skip the rule for every other event, and drop the
tests the index already guarantees.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
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

from k3watch.rules.fields import MISSING, compile_getter, iter_strings
from k3watch.rules.values import (
    Spec,
    StrSpec,
    UnsupportedValue,
    ValueTest,
    _coerce_text,
    build_test,
    keyword_spec,
    spec_cost,
    specs_from_sigma,
)

Predicate = Callable[[dict[str, Any]], bool]

# Fields the engine indexes rules by, in the order of the event key tuple.
INDEX_FIELDS = ("objectRef.resource", "objectRef.subresource", "verb")


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


# --- index requirements -----------------------------------------------------------------------


def requirements(node: Node, fields: Iterable[str] = INDEX_FIELDS) -> dict[str, frozenset[str]]:
    """For each of ``fields``, the lowercase values one of which the event *must* have.

    A field absent from the result is unconstrained. An empty set means the rule can never
    match (``rules lint`` reports it). ``fields`` must hold single values in events (not lists).
    """
    wanted = fields if isinstance(fields, frozenset | set | tuple) else tuple(fields)
    if isinstance(node, Leaf):
        name = node.field
        if name is not None and name in wanted and node.specs:
            texts = [s.text for s in node.specs if isinstance(s, StrSpec) and _is_plain_eq(s)]
            if len(texts) == len(node.specs):
                return {name: frozenset(texts)}
        return {}
    if isinstance(node, And):
        result: dict[str, frozenset[str]] = {}
        for child in node.children:
            for name, values in requirements(child, wanted).items():
                result[name] = result[name] & values if name in result else values
        return result
    if isinstance(node, Or):
        parts = [requirements(child, wanted) for child in node.children]
        common = set(parts[0]).intersection(*parts[1:]) if parts else set()
        return {name: frozenset().union(*(p[name] for p in parts)) for name in common}
    return {}


def _is_plain_eq(spec: Spec) -> bool:
    return isinstance(spec, StrSpec) and spec.kind == "eq" and not spec.cased


def drop_guaranteed(node: Node, required: dict[str, frozenset[str]]) -> Node | None:
    """Remove top-level tests that the index already guarantees (``None``: nothing left)."""

    def guaranteed(child: Node) -> bool:
        return (
            isinstance(child, Leaf)
            and child.field in required
            and all(_is_plain_eq(s) for s in child.specs)
            and frozenset(s.text for s in child.specs) == required[child.field]  # type: ignore[union-attr]
        )

    if guaranteed(node):
        return None
    if isinstance(node, And):
        kept = [c for c in node.children if not guaranteed(c)]
        if not kept:
            return None
        return kept[0] if len(kept) == 1 else And(kept)
    return node


# --- predicates --------------------------------------------------------------------------------


def build_predicate(node: Node | None) -> Predicate:
    """Turn IR into nested closures; ``None`` (fully guaranteed by the index) is always true."""
    if node is None:
        return _always
    return _build(node)


def _always(_event: dict[str, Any]) -> bool:
    return True


def _build(node: Node) -> Predicate:
    if isinstance(node, Leaf):
        return _leaf_predicate(node)
    if isinstance(node, Exists):
        return _exists_predicate(node)
    if isinstance(node, FieldRef):
        return _fieldref_predicate(node)
    if isinstance(node, Not):
        inner = _build(node.child)
        return lambda event: not inner(event)
    ordered = sorted(node.children, key=cost)
    preds = [_build(child) for child in ordered]
    if isinstance(node, And):
        return _all_of(preds)
    return _any_of(preds)


def _all_of(preds: Sequence[Predicate]) -> Predicate:
    if len(preds) == 2:
        a, b = preds
        return lambda event: a(event) and b(event)
    if len(preds) == 3:
        a, b, c = preds
        return lambda event: a(event) and b(event) and c(event)
    frozen = tuple(preds)

    def every(event: dict[str, Any]) -> bool:
        for pred in frozen:
            if not pred(event):
                return False
        return True

    return every


def _any_of(preds: Sequence[Predicate]) -> Predicate:
    if len(preds) == 2:
        a, b = preds
        return lambda event: a(event) or b(event)
    frozen = tuple(preds)

    def some(event: dict[str, Any]) -> bool:
        for pred in frozen:
            if pred(event):
                return True
        return False

    return some


def _leaf_predicate(leaf: Leaf) -> Predicate:
    test = build_test(leaf.specs)
    if leaf.field is None:
        return _keyword_predicate(test)
    get = compile_getter(leaf.field)

    def pred(event: dict[str, Any]) -> bool:
        value = get(event)
        if value.__class__ is list:
            return _any_element(value, test)
        return test(value)

    return pred


def _any_element(values: list[Any], test: ValueTest) -> bool:
    if not values:
        return test(MISSING)  # an empty list holds no value: only ``null`` matches it
    for item in values:
        if item.__class__ is list:
            if _any_element(item, test):
                return True
        elif test(item):
            return True
    return False


def _keyword_predicate(test: ValueTest) -> Predicate:
    def pred(event: dict[str, Any]) -> bool:
        return any(test(text) for text in iter_strings(event))

    return pred


def _exists_predicate(node: Exists) -> Predicate:
    get = compile_getter(node.field)
    wanted = node.exists
    return lambda event: (get(event) is not MISSING) is wanted


def _fieldref_predicate(node: FieldRef) -> Predicate:
    get = compile_getter(node.field)
    get_other = compile_getter(node.other)

    def texts(value: Any) -> list[str]:
        items = value if value.__class__ is list else [value]
        return [t.lower() for t in (_coerce_text(i) for i in items) if t is not None]

    def pred(event: dict[str, Any]) -> bool:
        mine = texts(get(event))
        theirs = texts(get_other(event))
        for a in mine:
            for b in theirs:
                if node.starts_with and node.ends_with:
                    if b in a:
                        return True
                elif node.starts_with:
                    if a.startswith(b):
                        return True
                elif node.ends_with:
                    if a.endswith(b):
                        return True
                elif a == b:
                    return True
        return False

    return pred


def cost(node: Node) -> int:
    """Estimated evaluation cost, used to run cheap tests first."""
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
        return cost(node.child)
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
