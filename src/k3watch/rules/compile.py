"""Compile a rule's IR into one generated Python function.

A predicate built from nested closures pays a Python call per test and per field read, which
dominates when a few rules must look at every event. Here the whole detection becomes a single
function: cheap fields (one or two levels deep) are read once, into locals, right before the
first test that needs them; equality and number tests are written inline; only the rare
constructs (substring and regular-expression tests, keywords, field references, deep or
derived paths) call out to their compiled helpers.

The source is generated from our own IR only and every constant goes through the function's
namespace (never pasted into the source), so nothing from a rule file is ever executed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from k3watch.event import DERIVED_FIELDS
from k3watch.rules.fields import MISSING, compile_getter, iter_strings
from k3watch.rules.ir import And, Exists, FieldRef, Leaf, Node, Not, cost
from k3watch.rules.values import CmpSpec, NumSpec, StrSpec, ValueTest, build_test, coerce_text

Predicate = Callable[[dict[str, Any]], bool]

_OPERATORS = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">=", "neq": "!="}


def build_predicate(node: Node | None) -> Predicate:
    """One Python function for ``node``; ``None`` (all guaranteed by the index) is always true."""
    if node is None:
        return always
    return _Generator().function(node)


def always(_event: dict[str, Any]) -> bool:
    """The predicate of a detection that nothing is left to check for."""
    return True


def list_aware(test: ValueTest) -> ValueTest:
    """``test`` extended to list values (any element matches, as everywhere in k3watch)."""

    def check(value: Any) -> bool:
        if value.__class__ is list:
            return any_element(value, test)
        return test(value)

    return check


def any_element(values: list[Any], test: ValueTest) -> bool:
    if not values:
        return test(MISSING)  # an empty list holds no value: only ``null`` matches it
    for item in values:
        if item.__class__ is list:
            if any_element(item, test):
                return True
        elif test(item):
            return True
    return False


class _Generator:
    def __init__(self) -> None:
        self.namespace: dict[str, Any] = {"MISSING": MISSING, "_str": str, "_int": int}
        self.lines: list[str] = []
        self.fields: dict[str, str] = {}  # field path → local variable holding its value
        self.containers: dict[str, str] = {}  # first path part → local variable
        self.counter = 0

    def function(self, node: Node) -> Predicate:
        children = sorted(node.children, key=cost) if isinstance(node, And) else [node]
        for child in children:
            # A field tested directly at the top is read once into a local (later tests reuse
            # it); inside OR / NOT groups fields are read inline, only if evaluation gets there.
            direct = child.child if isinstance(child, Not) else child
            name = direct.field if isinstance(direct, Leaf | Exists) else None
            if name is not None and self._parts(name) and name not in self.fields:
                self._read(name)
            self.lines.append(f"    if not ({self.expr(child)}):")
            self.lines.append("        return False")
        source = "def predicate(event):\n" + "\n".join(self.lines) + "\n    return True\n"
        code = compile(source, "<k3watch rule>", "exec")
        exec(code, self.namespace)  # our own generated source, see the module docstring
        predicate: Predicate = self.namespace["predicate"]
        predicate.__doc__ = source  # for debugging: the generated code
        return predicate

    # --- names and constants ---

    def _name(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def _const(self, value: Any, prefix: str = "k") -> str:
        name = self._name(prefix)
        self.namespace[name] = value
        return name

    # --- field reads ---

    @staticmethod
    def _parts(name: str) -> list[str] | None:
        """The path parts of a field cheap enough to read inline (one or two levels)."""
        if name in DERIVED_FIELDS or any(name.startswith(r + ".") for r in DERIVED_FIELDS):
            return None
        parts = name.split(".")
        return parts if len(parts) <= 2 else None

    def _read(self, name: str) -> None:
        parts = self._parts(name)
        assert parts is not None
        var = self._name("v")
        if len(parts) == 1:
            self.lines.append(f"    {var} = event.get({self._const(name)}, MISSING)")
        else:
            outer, inner = parts
            container = self.containers.get(outer)
            if container is None:
                container = self._name("c")
                self.lines.append(f"    {container} = event.get({self._const(outer)})")
                self.containers[outer] = container
            getter = self._const(compile_getter(name), "g")
            # A literal dotted key wins over nesting, and a list fans out: both through the
            # general getter; the usual nested dict is read inline.
            self.lines.append(
                f"    {var} = {container}.get({self._const(inner)}, MISSING) "
                f"if {container}.__class__ is dict and {self._const(name)} not in event "
                f"else {getter}(event)"
            )
        self.fields[name] = var

    def _value(self, name: str) -> str:
        """An expression for the field's value: its local, an inline read, or a getter call."""
        var = self.fields.get(name)
        if var is not None:
            return var
        parts = self._parts(name)
        getter = f"{self._const(compile_getter(name), 'g')}(event)"
        if parts is None:
            return getter
        if len(parts) == 1:
            return f"event.get({self._const(name)}, MISSING)"
        outer, inner = parts
        container = self._name("c")
        return (
            f"({container}.get({self._const(inner)}, MISSING) "
            f"if ({container} := event.get({self._const(outer)})).__class__ is dict "
            f"and {self._const(name)} not in event else {getter})"
        )

    # --- expressions ---

    def expr(self, node: Node) -> str:
        if isinstance(node, Leaf):
            if node.field is None:
                return f"{self._const(_closure(node), 'p')}(event)"
            return self._leaf(node)
        if isinstance(node, Exists):
            op = "is not" if node.exists else "is"
            return f"({self._value(node.field)} {op} MISSING)"
        if isinstance(node, FieldRef):
            return f"{self._const(_closure(node), 'p')}(event)"
        if isinstance(node, Not):
            return f"(not {self.expr(node.child)})"
        joiner = " and " if isinstance(node, And) else " or "
        ordered = sorted(node.children, key=cost)
        return "(" + joiner.join(self.expr(child) for child in ordered) + ")"

    def _leaf(self, leaf: Any) -> str:
        test = self._const(list_aware(build_test(leaf.specs)), "t")
        value = self._value(leaf.field)
        if self._parts(leaf.field) is None:  # a deep or derived field: no inline fast path
            return f"{test}({value})"
        if value in self.fields.values():
            first = subject = value
        else:  # read inline: bind it in the condition, which Python evaluates first
            subject = self._name("w")
            first = f"({subject} := {value})"
        specs = leaf.specs
        if all(isinstance(s, StrSpec) and s.kind == "eq" and not s.cased for s in specs):
            texts = {s.text for s in specs}
            if len(texts) == 1:
                fast = f"{subject}.lower() == {self._const(next(iter(texts)))}"
            else:
                fast = f"{subject}.lower() in {self._const(frozenset(texts))}"
            return f"(({fast}) if {first}.__class__ is _str else {test}({subject}))"
        if all(isinstance(s, NumSpec) for s in specs):
            numbers = self._const(frozenset(s.number for s in specs))
            return f"(({subject} in {numbers}) if {first}.__class__ is _int else {test}({subject}))"
        if len(specs) == 1 and isinstance(specs[0], CmpSpec):
            spec = specs[0]
            bound = self._const(spec.number)
            symbol = _OPERATORS[spec.op]
            return (
                f"(({subject} {symbol} {bound}) if {first}.__class__ is _int "
                f"else {test}({subject}))"
            )
        return f"{test}({value})"


def _closure(node: Node) -> Predicate:
    """Closures for the rare constructs the generated code calls out to."""
    if isinstance(node, FieldRef):
        return _fieldref_predicate(node)
    assert isinstance(node, Leaf)
    return _keyword_predicate(build_test(node.specs))


def _keyword_predicate(test: ValueTest) -> Predicate:
    def pred(event: dict[str, Any]) -> bool:
        return any(test(text) for text in iter_strings(event))

    return pred


def _fieldref_predicate(node: FieldRef) -> Predicate:
    get = compile_getter(node.field)
    get_other = compile_getter(node.other)

    def texts(value: Any) -> list[str]:
        items = value if value.__class__ is list else [value]
        return [t.lower() for t in (coerce_text(i) for i in items) if t is not None]

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
