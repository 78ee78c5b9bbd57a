"""YAML read into values that remember their line, so every policy problem can point at it.

The API server reads a policy with sigs.k8s.io/yaml: YAML 1.1 (as PyYAML) converted to JSON,
then decoded. Only the first document counts; duplicate keys keep the last value (strict
decoding warns about them). This module reproduces that and keeps the positions PyYAML's
composer knows, which ``yaml.safe_load`` throws away.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor


@dataclass(slots=True)
class YScalar:
    value: Any
    line: int


@dataclass(slots=True)
class YList:
    items: list[YNode]
    line: int


@dataclass(slots=True)
class YMap:
    """A mapping: values by key, the line of each key, and keys that appeared twice."""

    items: dict[str, YNode]
    key_lines: dict[str, int]
    line: int
    duplicates: list[tuple[str, int]] = field(default_factory=list)


YNode = YScalar | YList | YMap


class YamlSyntaxError(ValueError):
    """The text is not YAML; ``line`` is where the reader gave up (1-based)."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


def load_first_document(text: str) -> tuple[YNode | None, int]:
    """The first YAML document of ``text`` with positions, and how many documents follow it.

    ``None`` for an empty document. Raises :class:`YamlSyntaxError`.
    """
    try:
        documents = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise YamlSyntaxError(f"{exc.problem or exc}", line) from exc
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(str(exc), None) from exc
    if not documents or documents[0] is None:
        return None, max(0, len(documents) - 1)
    return _convert(documents[0], _Scalars()), len(documents) - 1


class _Scalars(SafeConstructor):
    """Turns scalar nodes into Python values by their resolved tag (YAML 1.1 rules)."""

    def value(self, node: yaml.ScalarNode) -> Any:
        try:
            return self.construct_object(node, deep=True)
        except ConstructorError:
            return node.value  # an odd tag (!!binary of bad base64…): keep the text


def _convert(node: yaml.Node, scalars: _Scalars) -> YNode:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out = YMap({}, {}, line)
        for key_node, value_node in node.value:
            raw_key = scalars.value(key_node) if isinstance(key_node, yaml.ScalarNode) else None
            # JSON keys are text: sigs.k8s.io/yaml writes numbers and booleans as their text.
            key = _key_text(raw_key)
            key_line = key_node.start_mark.line + 1
            if key in out.items:
                out.duplicates.append((key, key_line))
            out.items[key] = _convert(value_node, scalars)
            out.key_lines[key] = key_line
        return out
    if isinstance(node, yaml.SequenceNode):
        return YList([_convert(item, scalars) for item in node.value], line)
    assert isinstance(node, yaml.ScalarNode)
    return YScalar(scalars.value(node), line)


def _key_text(key: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    return str(key)
