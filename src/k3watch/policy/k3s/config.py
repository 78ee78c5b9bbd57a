"""Read ``config.yaml`` and its ``config.yaml.d`` drop-ins, merged the way K3s merges them.

What K3s does (its ``configfilearg`` package, K3s v1.21 and later; the rules are also stated in
the K3s docs, "Configuration file" → "Multiple config files"):

- Files: the config file first (when it exists), then every entry of ``<config file>.d/`` whose
  name ends in ``.yaml`` or ``.yml`` (any case), in the order the directory listing is sorted
  by name (Go's ``os.ReadDir``: byte order). Directories and other names (``*.bak``,
  ``*.yaml.bak.…``, ``*.txt``) are skipped.
- Keys: each file is a YAML mapping, read key by key in file order. ``key: value`` replaces
  whatever earlier files set for ``key``; ``key+: value`` appends to it (a single value counts
  as a one-item list). A ``key+`` with nothing before it simply sets the key.
- Every merged key becomes ``--key=value`` (one per item for lists), inserted on the command
  line right after ``server``; flags given on the real command line come after them, so list
  flags such as ``kube-apiserver-arg`` collect both and scalar flags take the command line's.
- A file that is not valid YAML or not a mapping stops K3s from starting.

This module keeps, for each key, every item with the file and line it came from, and the
history of set/append steps, so a report can say *which* file made a value what it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from k3watch.errors import K3watchError, Location
from k3watch.policy.k3s.layout import Layout

_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True, slots=True)
class Item:
    """One value of a configuration key (a list element or a scalar), and where it was written."""

    value: str
    location: Location


@dataclass(frozen=True, slots=True)
class Step:
    """One occurrence of a key in one file, and what it did to the merged value."""

    location: Location
    op: Literal["set", "append"]
    items: tuple[Item, ...]


@dataclass(slots=True)
class Setting:
    """A merged configuration key: its items now, and the steps that produced them."""

    key: str
    items: list[Item] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)

    @property
    def value(self) -> str:
        """The scalar value (the last item; K3s passes every item and the last one wins)."""
        return self.items[-1].value if self.items else ""


@dataclass(slots=True)
class K3sConfig:
    """Every configuration file K3s would read, merged."""

    config_file: str
    files: list[str] = field(default_factory=list)  # node paths, in the order K3s reads them
    settings: dict[str, Setting] = field(default_factory=dict)
    errors: list[K3watchError] = field(default_factory=list)
    warnings: list[K3watchError] = field(default_factory=list)

    def items(self, key: str) -> list[Item]:
        setting = self.settings.get(key)
        return list(setting.items) if setting else []

    def steps(self, key: str) -> list[Step]:
        setting = self.settings.get(key)
        return list(setting.steps) if setting else []


def config_files(layout: Layout) -> list[Path]:
    """The host paths of the files K3s reads, in its order (see the module docstring)."""
    files: list[Path] = []
    main = layout.host(layout.config_file)
    if main.exists():
        files.append(main)
    dropins = layout.host(layout.dropin_dir)
    if dropins.is_dir():
        # Sort on the encoded name: Go sorts byte strings, Python would sort code points
        # (the same order for UTF-8, but being explicit costs nothing).
        entries = sorted(dropins.iterdir(), key=lambda p: p.name.encode("utf-8", "surrogateescape"))
        for entry in entries:
            if entry.is_dir():
                continue
            if entry.name.lower().endswith(_SUFFIXES):
                files.append(entry)
    return files


def read_config(layout: Layout, overrides: Mapping[str, str | None] | None = None) -> K3sConfig:
    """Read and merge the node's configuration files.

    ``overrides`` maps node paths to the text they should be read with instead of what is on
    disk (``None`` removes the file): set-up uses it to see the merge *after* its changes.
    """
    overrides = dict(overrides or {})
    hosts = config_files(layout)
    paths = [layout.node(h) for h in hosts]
    for path in overrides:
        if path not in paths and _is_config_path(layout, path):
            paths.append(path)
    # The config file stays first; drop-ins sort by name (added overrides included).
    head = [p for p in paths if p == layout.config_file]
    tail = sorted(
        (p for p in paths if p != layout.config_file),
        key=lambda p: Path(p).name.encode("utf-8", "surrogateescape"),
    )
    config = K3sConfig(layout.config_file)
    for path in [*head, *tail]:
        if path in overrides:
            text = overrides[path]
            if text is None:
                continue
        else:
            try:
                text = layout.host(path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                config.errors.append(
                    K3watchError(f"cannot read: {exc}", Location(path), "K3s will not start")
                )
                continue
        config.files.append(path)
        _merge_file(config, path, text)
    return config


def _is_config_path(layout: Layout, path: str) -> bool:
    if path == layout.config_file:
        return True
    parent, _, name = path.rpartition("/")
    return parent == layout.dropin_dir and name.lower().endswith(_SUFFIXES)


def _merge_file(config: K3sConfig, path: str, text: str) -> None:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        config.errors.append(
            K3watchError(
                f"invalid YAML: {problem}", Location(path, line), "K3s will refuse to start"
            )
        )
        return
    if node is None:  # an empty file is fine: it sets nothing
        return
    if not isinstance(node, yaml.MappingNode):
        config.errors.append(
            K3watchError(
                "a K3s configuration file must be a mapping of flag names to values",
                Location(path, node.start_mark.line + 1),
                "K3s will refuse to start",
            )
        )
        return
    seen: set[str] = set()
    for key_node, value_node in node.value:
        key = _to_string(_construct(key_node))
        location = Location(path, key_node.start_mark.line + 1)
        if key in seen:
            config.warnings.append(
                K3watchError(f"key {key!r} appears twice in one file", location, "keep one")
            )
        seen.add(key)
        append = key.endswith("+")
        name = key.removesuffix("+")
        items = _items(value_node, path)
        setting = config.settings.setdefault(name, Setting(name))
        if append:  # with nothing before it, appending is the same as setting
            setting.items.extend(items)
        else:
            setting.items = list(items)
        setting.steps.append(Step(location, "append" if append else "set", tuple(items)))


def _items(node: yaml.Node, path: str) -> list[Item]:
    if isinstance(node, yaml.SequenceNode):
        return [
            Item(_to_string(_construct(child)), Location(path, child.start_mark.line + 1))
            for child in node.value
        ]
    value = _construct(node)
    location = Location(path, node.start_mark.line + 1)
    if value is None:
        return []
    return [Item(_to_string(value), location)]


def _construct(node: yaml.Node) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def _to_string(value: Any) -> str:
    """A YAML value as K3s turns it into a flag value (Go's ``convert.ToString``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)
