"""Deterministic YAML for rendered objects: keys in the order the code built them, multi-line
strings as literal blocks (readable ConfigMaps), no aliases, so that the same values always
give the same bytes and a golden file or a ``deploy install`` diff shows only real changes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value and not any(line != line.rstrip() for line in value.splitlines()):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str)


def dump(value: Any) -> str:
    """One YAML document (no ``---``)."""
    return yaml.dump(
        value,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=100,
    )


def dump_all(documents: Iterable[Any], header: str = "") -> str:
    """A multi-document stream, each document after ``---``; ``header`` lines as comments."""
    parts = [f"# {line}\n" if line else "#\n" for line in header.splitlines()]
    for document in documents:
        parts.append("---\n")
        parts.append(dump(document))
    return "".join(parts)
