"""The key reference of docs/config.md, generated from the configuration models.

Every section of the configuration file is a ``msgspec.Struct``; this module walks them from the
root (``k3watch.config.Config``) and writes one Markdown table per model: each key with its
type, its default and its description. The description of a field is its attribute docstring,
the string literal written right after the field in the class body::

    class ScanConfig(msgspec.Struct):
        suppress: str = "10m"
        \"\"\"One alert per rule and group per window (event time).\"\"\"

Regenerate the section of docs/config.md after changing a model (a test checks it is current)::

    python -m k3watch.config_reference --write docs/config.md
    python -m k3watch.config_reference --undocumented    # fields that still lack a docstring
"""

from __future__ import annotations

import argparse
import ast
import functools
import inspect
import json
import re
import sys
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import msgspec.inspect as mi
import yaml

BEGIN = "<!-- BEGIN generated: python -m k3watch.config_reference --write docs/config.md -->"
END = "<!-- END generated -->"

# Fields that exist on a model but are not keys of the file, as "module.Class.field".
INTERNAL_FIELDS = frozenset(
    {
        "k3watch.config.Config.source",  # the file's own path, filled in by load_config
    }
)

# A string that stays a plain scalar inside a YAML flow collection (no indicator first, no
# flow punctuation, no ": " or " #"); it must also read back as the same string.
_PLAIN = re.compile(r"(?![-?:,\[\]{}#&*!|>'\"%@`\s])(?:(?!: | #)[^,\[\]{}\n`])*(?<![:\s])")


# --- attribute docstrings, read from the source of each model's module ---


@functools.cache
def _module_tree(module_name: str) -> ast.Module | None:
    module = sys.modules.get(module_name)
    if module is None:
        return None
    try:
        return ast.parse(inspect.getsource(module))
    except (OSError, TypeError, SyntaxError):
        return None


def _find_class(body: Sequence[ast.stmt], parts: Sequence[str]) -> ast.ClassDef | None:
    """The class named by a qualified name's parts, looking into classes and functions."""
    for node in body:
        if not isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if node.name != parts[0]:
            continue
        if len(parts) == 1:
            if isinstance(node, ast.ClassDef):
                return node
            continue
        found = _find_class(node.body, parts[1:])
        if found is not None:
            return found
    return None


@functools.cache
def _own_attribute_docs(cls: type) -> dict[str, str]:
    """``{field: docstring}`` for the fields annotated in ``cls``'s own body."""
    tree = _module_tree(cls.__module__)
    if tree is None:
        return {}
    parts = [part for part in cls.__qualname__.split(".") if part != "<locals>"]
    node = _find_class(tree.body, parts)
    if node is None:
        return {}
    docs: dict[str, str] = {}
    for statement, following in zip(node.body, [*node.body[1:], None], strict=True):
        if not (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)):
            continue
        if (
            isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[statement.target.id] = inspect.cleandoc(following.value.value)
    return docs


def attribute_doc(cls: type, name: str) -> str:
    """The docstring of field ``name`` of ``cls``, looked up where the field is declared."""
    for base in cls.__mro__:
        if base is msgspec.Struct or base is object:
            break
        doc = _own_attribute_docs(base).get(name)
        if doc is not None:
            return doc
    return ""


# --- rendering of types, values and text ---


def _markdown(text: str) -> str:
    """Docstring text as Markdown: ``literal`` becomes `literal`."""
    return re.sub(r"``(.+?)``", r"`\1`", text, flags=re.DOTALL)


def _code(text: str) -> str:
    if "`" in text:
        return f"`` {text} ``"
    return f"`{text}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _scalar(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        if _PLAIN.fullmatch(value):
            try:
                if yaml.safe_load(value) == value:
                    return value
            except yaml.YAMLError:
                pass
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _yamlish(value: object) -> str:
    """A value as a one-line YAML flow scalar or collection."""
    if isinstance(value, msgspec.Struct):
        return _struct_value(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_scalar(k)}: {_yamlish(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return "[" + ", ".join(_yamlish(v) for v in items) + "]"
    if isinstance(value, str | int | float | bool) or value is None:
        return _scalar(value)
    return _yamlish(msgspec.to_builtins(value))


def _field_default(f: mi.Field) -> Any:
    if f.default_factory is not msgspec.NODEFAULT:
        return f.default_factory()
    return f.default


def _struct_value(value: msgspec.Struct) -> str:
    """A struct as a flow mapping of the keys that differ from their defaults."""
    info = mi.type_info(type(value))
    assert isinstance(info, mi.StructType)
    items = []
    for f in info.fields:
        current = getattr(value, f.name)
        if f.required or current != _field_default(f):
            items.append(f"{_scalar(f.encode_name)}: {_yamlish(current)}")
    return "{" + ", ".join(items) + "}"


def _literal(value: object) -> str:
    return _code(json.dumps(value) if isinstance(value, str) else _scalar(value))


def type_text(t: mi.Type) -> str:
    """A type as readers of the YAML file think of it: ``list of string``, ``"a" | "b"``…"""
    names: dict[type[mi.Type], str] = {
        mi.StrType: "string",
        mi.IntType: "integer",
        mi.FloatType: "number",
        mi.BoolType: "boolean",
        mi.NoneType: "null",
        mi.AnyType: "any",
        mi.BytesType: "bytes (base64)",
        mi.ByteArrayType: "bytes (base64)",
        mi.MemoryViewType: "bytes (base64)",
        mi.DateTimeType: "date and time (RFC 3339)",
        mi.DateType: "date",
        mi.TimeType: "time",
        mi.TimeDeltaType: "duration (ISO 8601)",
        mi.UUIDType: "UUID",
        mi.DecimalType: "decimal",
        mi.StructType: "mapping",
        mi.TypedDictType: "mapping",
        mi.DataclassType: "mapping",
        mi.NamedTupleType: "list",
    }
    if type(t) in names:
        return names[type(t)]
    if isinstance(t, mi.Metadata):
        return type_text(t.type)
    if isinstance(t, mi.LiteralType):
        return " | ".join(_literal(v) for v in t.values)
    if isinstance(t, mi.EnumType):
        return " | ".join(_literal(member.value) for member in t.cls)
    if isinstance(t, mi.CollectionType):
        item = type_text(t.item_type)
        return f"list of ({item})" if " | " in item else f"list of {item}"
    if isinstance(t, mi.TupleType):
        return "[" + ", ".join(type_text(item) for item in t.item_types) + "]"
    if isinstance(t, mi.DictType):
        key, value = type_text(t.key_type), type_text(t.value_type)
        return f"mapping of {key} to {value}"
    if isinstance(t, mi.UnionType):
        parts = dict.fromkeys(type_text(member) for member in t.types)
        return " | ".join(parts)
    if isinstance(t, mi.CustomType):
        return t.cls.__name__
    return type(t).__name__.removesuffix("Type").lower()


# --- the walk over the models ---


@dataclass
class _Row:
    key: str
    type: str
    default: str
    description: str


@dataclass
class _Section:
    title: str
    doc: str = ""
    rows: list[_Row] = field(default_factory=list)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _unwrap(t: mi.Type) -> mi.Type:
    while isinstance(t, mi.Metadata):
        t = t.type
    return t


def _struct_groups(path: str, t: mi.Type) -> list[tuple[str, list[mi.StructType]]]:
    """The models reachable from a field's type, with the dotted path where each appears.

    A group of several structs is a tagged union: one of them, chosen by its tag field.
    """
    t = _unwrap(t)
    if isinstance(t, mi.StructType):
        return [(path, [t])]
    if isinstance(t, mi.CollectionType):
        return _struct_groups(f"{path}[]", t.item_type)
    if isinstance(t, mi.TupleType):
        return [
            g for i, item in enumerate(t.item_types) for g in _struct_groups(f"{path}[{i}]", item)
        ]
    if isinstance(t, mi.DictType):
        return _struct_groups(f"{path}.*", t.value_type)
    if isinstance(t, mi.UnionType):
        members = [_unwrap(member) for member in t.types]
        structs = [member for member in members if isinstance(member, mi.StructType)]
        groups = [(path, structs)] if structs else []
        for member in members:
            if not isinstance(member, mi.StructType):
                groups.extend(_struct_groups(path, member))
        return groups
    return []


def _common_base(classes: Sequence[type]) -> type | None:
    """The most derived model class that every variant of a union inherits from."""
    for base in classes[0].__mro__:
        if base is msgspec.Struct or base is object:
            return None
        if all(issubclass(cls, base) for cls in classes):
            return base
    return None


def _class_doc(cls: type) -> str:
    doc = cls.__dict__.get("__doc__")
    return _markdown(inspect.cleandoc(doc)) if isinstance(doc, str) else ""


def _section_summary(t: mi.Type) -> str:
    """For a key that holds one model (or nothing): the first paragraph of its docstring."""
    t = _unwrap(t)
    members = [_unwrap(m) for m in t.types] if isinstance(t, mi.UnionType) else [t]
    structs = [m for m in members if isinstance(m, mi.StructType)]
    if len(structs) != 1 or any(not isinstance(m, mi.StructType | mi.NoneType) for m in members):
        return ""
    return _class_doc(structs[0].cls).split("\n\n")[0]


class _Walker:
    def __init__(self, internal: Collection[str]) -> None:
        self.internal = internal
        self.sections: list[_Section] = []
        self.undocumented: list[str] = []
        self.emitted: set[tuple[str, tuple[type, ...]]] = set()
        self.first_title: dict[type, str] = {}

    def group(self, path: str, structs: list[mi.StructType]) -> None:
        key = (path, tuple(s.cls for s in structs))
        if key in self.emitted:
            return
        self.emitted.add(key)
        if len(structs) == 1:
            title = _code(path) if path else "Top level"
            if self._table(path, title, structs[0]):
                self._children(path, structs)
            return
        tag_field = structs[0].tag_field or "type"
        base = _common_base([s.cls for s in structs])
        tags = ", ".join(_code(str(s.tag)) for s in structs)
        intro = f"One of the following, chosen by {_code(tag_field)}: {tags}."
        doc = _class_doc(base) if base is not None else ""
        self.sections.append(_Section(_code(path), f"{doc}\n\n{intro}" if doc else intro))
        fresh = [
            s
            for s in structs
            if self._table(path, f"{_code(path)} with {_code(f'{tag_field}: {s.tag}')}", s)
        ]
        self._children(path, fresh)

    def _table(self, path: str, title: str, info: mi.StructType) -> bool:
        """Add the section of one model; False when it was already described elsewhere."""
        if info.cls in self.first_title:
            self.sections.append(_Section(title, f"Same keys as {self.first_title[info.cls]}."))
            return False
        self.first_title[info.cls] = title
        section = _Section(title, _class_doc(info.cls))
        if info.tag_field is not None and info.tag is not None:
            section.rows.append(
                _Row(info.tag_field, _literal(info.tag), "required", "Selects these keys.")
            )
        for f in self._fields(info):
            description = attribute_doc(info.cls, f.name)
            t = f.type
            if not description and isinstance(t, mi.Metadata) and t.extra_json_schema:
                description = str(t.extra_json_schema.get("description", ""))
            if not description:
                description = _section_summary(t)
            if not description:
                self.undocumented.append(_join(path, f.encode_name) or f.encode_name)
            default = "required" if f.required else _code(_yamlish(_field_default(f)))
            section.rows.append(_Row(f.encode_name, type_text(t), default, _markdown(description)))
        self.sections.append(section)
        return True

    def _fields(self, info: mi.StructType) -> list[mi.Field]:
        prefix = f"{info.cls.__module__}.{info.cls.__qualname__}."
        return [f for f in info.fields if prefix + f.name not in self.internal]

    def _children(self, path: str, structs: list[mi.StructType]) -> None:
        groups: list[tuple[str, list[mi.StructType]]] = []
        for info in structs:
            for f in self._fields(info):
                groups.extend(_struct_groups(_join(path, f.encode_name), f.type))
        for child_path, child_structs in groups:
            self.group(child_path, child_structs)


def _walk(root: type[msgspec.Struct], internal: Collection[str]) -> _Walker:
    info = mi.type_info(root)
    if not isinstance(info, mi.StructType):
        raise TypeError(f"{root!r} is not a msgspec.Struct")
    walker = _Walker(internal)
    walker.group("", [info])
    return walker


def render_reference(
    root: type[msgspec.Struct],
    *,
    heading_level: int = 3,
    internal: Collection[str] = INTERNAL_FIELDS,
) -> str:
    """Markdown for every model reachable from ``root``: a heading, the docstring and a table.

    Headings are dotted key paths (``alerting.outbox``; ``[]`` marks a list's entries and ``.*``
    a mapping's values). ``internal`` names fields (``module.Class.field``) left out.
    """
    hashes = "#" * heading_level
    blocks = []
    for section in _walk(root, internal).sections:
        block = [f"{hashes} {section.title}\n"]
        if section.doc:
            block.append(f"{section.doc}\n")
        if section.rows:
            table = ["| Key | Type | Default | Description |", "|---|---|---|---|"]
            for row in section.rows:
                cells = [_code(row.key), row.type, row.default, row.description]
                table.append("| " + " | ".join(_cell(c) for c in cells) + " |")
            block.append("\n".join(table) + "\n")
        blocks.append("\n".join(block))
    return "\n".join(blocks)


def undocumented_fields(
    root: type[msgspec.Struct], *, internal: Collection[str] = INTERNAL_FIELDS
) -> list[str]:
    """Dotted paths of the keys whose field has no attribute docstring."""
    return _walk(root, internal).undocumented


# --- the generated part of a Markdown file ---


def replace_generated(text: str, section: str) -> str:
    """``text`` with the part between BEGIN and END replaced (appended when it has none)."""
    generated = f"{BEGIN}\n\n{section}\n{END}"
    start = text.find(BEGIN)
    end = text.find(END, start)
    if start < 0 or end < 0:
        return f"{text.rstrip()}\n\n{generated}\n"
    return text[:start] + generated + text[end + len(END) :]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m k3watch.config_reference",
        description="Generate the configuration key reference from the configuration models.",
    )
    parser.add_argument(
        "--write",
        metavar="FILE",
        type=Path,
        help=f"replace the part of FILE between {BEGIN!r} and {END!r} (instead of printing)",
    )
    parser.add_argument(
        "--undocumented",
        action="store_true",
        help="list the keys whose field has no docstring (instead of printing the reference)",
    )
    args = parser.parse_args(argv)

    from k3watch.config import Config

    if args.write is not None:
        text = args.write.read_text(encoding="utf-8")
        updated = replace_generated(text, render_reference(Config))
        if updated != text:
            args.write.write_text(updated, encoding="utf-8")
        status = "updated" if updated != text else "already current"
        print(f"{args.write}: {status}", file=sys.stderr)
    if args.undocumented:
        missing = undocumented_fields(Config)
        for path in missing:
            print(path)
        print(f"{len(missing)} keys without a docstring", file=sys.stderr)
    if args.write is None and not args.undocumented:
        sys.stdout.write(render_reference(Config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
