"""One YAML configuration file for every k3watch component, read into typed settings.

```yaml
rules:
  paths: [./rules]                  # Sigma rules, filters and correlations (files or folders)
  builtin: true                     # load the built-in library
  pipelines: []                     # pySigma processing pipelines
  placeholders:                     # values for %name% placeholders (the expand modifier)
    admins: [alice@example.com]
  allowlist:                        # exclusions added to rules without editing them
    - title: Our node exporter
      rules: [53b3437e-8a86-45a1-a819-5d34ca2f71b4]   # rule ids or titles, or "any"
      match:                        # a Sigma selection: every field must match
        objectRef.namespace: monitoring
        k3watch.object.name|startswith: node-exporter-
scan:
  suppress: 10m                     # one alert per rule and group per window (event time)
  min_severity: informational
  baseline: /var/lib/k3watch/first-seen.sqlite
  max_event_size: 4MiB
```

Unknown keys and wrong types are errors that name the file and line. Relative paths are
relative to the file. Any string value may be ``$env:NAME`` (an environment variable) or
``$file:PATH`` (a file's content, stripped), so that secrets stay out of the file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import msgspec
import yaml

from k3watch.agent.config import AgentConfig
from k3watch.alert import Severity
from k3watch.alerting.config import AlertingConfig
from k3watch.errors import Location, UsageError
from k3watch.redact import RedactionConfig, Redactor
from k3watch.review.config import ReviewsConfig
from k3watch.rules.extension import parse_duration
from k3watch.server.config import ServerConfig

SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_size(text: object, what: str = "size") -> int:
    """``"4MiB"``, ``"512k"``, ``"1G"`` or a number of bytes."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmg]?)(?:i?b)?\s*", str(text), re.IGNORECASE)
    if not match:
        raise ValueError(f"{what} {text!r} is not a size like 512k, 4MiB or 1G")
    return int(float(match.group(1)) * SIZE_UNITS[match.group(2).lower()])


class Allow(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """An allowlist entry: events matching ``match`` never raise the named rules' alerts."""

    match: dict[str, Any]
    """A Sigma selection (field names with modifiers → values); all must match."""
    rules: tuple[str, ...] | Literal["any"] = "any"
    """Rule ids, names or titles the exclusion applies to; ``any`` for every rule."""
    title: str = "allowlist entry from the configuration"
    reason: str = ""
    """Why this is allowed (shown in ``rules list``; write it for the next reviewer)."""


class RulesConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Which rules run, and how they are adapted to this cluster."""

    paths: tuple[str, ...] = ()
    builtin: bool = True
    pipelines: tuple[str, ...] = ()
    placeholders: dict[str, tuple[str, ...]] = msgspec.field(default_factory=dict)
    allowlist: tuple[Allow, ...] = ()
    disable: tuple[str, ...] = ()
    """Rules turned off, by id, name or title: they raise no alerts (a rule that a running
    correlation reads keeps feeding it). The web UI's rules page lists them as disabled."""


class ScanConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Defaults of ``k3watch scan`` (command-line options win)."""

    suppress: str = "10m"
    min_severity: str = "informational"
    baseline: str | None = None
    max_event_size: str = "4MiB"


class Config(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The whole configuration file."""

    rules: RulesConfig = RulesConfig()
    scan: ScanConfig = ScanConfig()
    alerting: AlertingConfig = AlertingConfig()
    server: ServerConfig = ServerConfig()
    agent: AgentConfig = AgentConfig()
    redaction: RedactionConfig = RedactionConfig()
    reviews: ReviewsConfig = ReviewsConfig()
    source: str = ""  # the file it was read from (set by load_config, not by the file)

    def filter_documents(self) -> list[tuple[dict[str, Any], str]]:
        """The allowlist as Sigma filter documents, each labelled with where it was written."""
        out = []
        for index, entry in enumerate(self.rules.allowlist):
            document = {
                "title": entry.title,
                "description": entry.reason,
                "logsource": {"product": "kubernetes", "service": "audit"},
                "filter": {
                    "rules": entry.rules if entry.rules == "any" else list(entry.rules),
                    "selection": entry.match,
                    "condition": "not selection",
                },
            }
            out.append((document, f"{self.source or 'configuration'}: rules.allowlist[{index}]"))
        return out


def load_config(path: Path) -> Config:
    """Read, resolve and validate a configuration file; raise UsageError with file:line."""
    name = str(path)
    data, node = read_yaml_mapping(path, "configuration")
    data = _resolve_references(data, node, name)
    data["source"] = name
    try:
        config = msgspec.convert(data, Config)
    except msgspec.ValidationError as exc:
        raise validation_error(exc, node, name) from exc
    _check_values(config, node, name)
    return _relative_to(config, path.parent)


def read_yaml_mapping(path: Path, what: str) -> tuple[dict[str, Any], yaml.Node | None]:
    """A YAML file holding one mapping (empty: ``{}``), and its node tree for error lines;
    UsageError naming the file (and line) otherwise."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {what}: {exc.strerror or exc}", Location(name)) from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise UsageError(
            f"invalid YAML: {getattr(exc, 'problem', exc)}", Location(name, line)
        ) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UsageError(f"the {what} must be a mapping", Location(name, 1))
    return data, node


def validation_error(exc: msgspec.ValidationError, node: yaml.Node | None, name: str) -> UsageError:
    """msgspec's complaint about a file's data as a one-line error at the key's line: an
    unknown key by its name, a wrong value after its key's path (``agent.journal: …``)."""
    message, _, where = str(exc).partition(" - at `")
    key_path = where.rstrip("`") or "$"
    line = yaml_line(node, key_path, message)
    text = _plain(message)
    if "unknown key" not in text and key_path != "$":
        text = f"{key_path.removeprefix('$.')}: {text}"
    return UsageError(text, Location(name, line))


def _plain(message: str) -> str:
    return message.replace("`", "'").replace("Object contains unknown field", "unknown key")


def _check_values(config: Config, node: yaml.Node | None, name: str) -> None:
    checks: list[tuple[str, Callable[[], object]]] = [
        ("$.scan.suppress", lambda: parse_duration(config.scan.suppress, "scan.suppress")),
        ("$.scan.max_event_size", lambda: parse_size(config.scan.max_event_size)),
        ("$.scan.min_severity", lambda: Severity.parse(config.scan.min_severity)),
    ]
    checks.append(("$.server", config.server.check))
    checks.extend(config.agent.checks())
    checks.append(("$.redaction", lambda: Redactor(config.redaction)))
    for path, check in checks:
        try:
            check()
        except ValueError as exc:
            raise UsageError(str(exc), Location(name, yaml_line(node, path))) from exc


def _relative_to(config: Config, base: Path) -> Config:
    def resolve(value: str) -> str:
        return str(base / value) if not Path(value).is_absolute() else value

    rules = msgspec.structs.replace(
        config.rules,
        paths=tuple(resolve(p) for p in config.rules.paths),
        pipelines=tuple(resolve(p) for p in config.rules.pipelines),
    )
    scan = config.scan
    if scan.baseline is not None:
        scan = msgspec.structs.replace(scan, baseline=resolve(scan.baseline))
    alerting = config.alerting.relative_to(base)
    server = config.server.relative_to(base)
    agent = config.agent.relative_to(base)
    return msgspec.structs.replace(
        config, rules=rules, scan=scan, alerting=alerting, server=server, agent=agent
    )


# --- $env: and $file: references ---


def _resolve_references(value: Any, node: yaml.Node | None, name: str) -> Any:
    if isinstance(value, dict):
        return {k: _resolve_references(v, _child(node, k), name) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_references(v, _item(node, i), name) for i, v in enumerate(value)]
    if isinstance(value, str) and value.startswith(("$env:", "$file:")):
        line = node.start_mark.line + 1 if node is not None else None
        kind, _, target = value.partition(":")
        if kind == "$env":
            if target not in os.environ:
                raise UsageError(f"environment variable {target} is not set", Location(name, line))
            return os.environ[target]
        try:
            return Path(target).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UsageError(
                f"cannot read {target}: {exc.strerror or exc}", Location(name, line)
            ) from exc
    return value


# --- error locations ---


def _child(node: yaml.Node | None, key: object) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if key_node.value == str(key):
                return value_node  # type: ignore[no-any-return]
    return None


def _item(node: yaml.Node | None, index: int) -> yaml.Node | None:
    if isinstance(node, yaml.SequenceNode) and index < len(node.value):
        return node.value[index]  # type: ignore[no-any-return]
    return None


def yaml_line(
    node: yaml.Node | None, path: str, message: str = "", *, at_key: bool = False
) -> int | None:
    """The line of ``$.a.b[2]`` in the YAML tree: where the deepest value found on the way
    starts (with ``at_key``, the line of its key), or of the unknown key ``message`` names
    (msgspec's wording)."""
    current = node
    line = int(node.start_mark.line) + 1 if node is not None else None
    for key, index in re.findall(r"\.([^.\[]+)|\[(\d+)\]", path.removeprefix("$")):
        found = None
        if key and isinstance(current, yaml.MappingNode):
            for key_node, value_node in current.value:
                if key_node.value == key:
                    found = value_node
                    line = int((key_node if at_key else value_node).start_mark.line) + 1
                    break
        elif index:
            found = _item(current, int(index))
            if found is not None:
                line = int(found.start_mark.line) + 1
        if found is None:
            break
        current = found
    unknown = re.search(r"unknown field `([^`]+)`", message)
    if unknown and isinstance(current, yaml.MappingNode):
        for key_node, _ in current.value:
            if key_node.value == unknown.group(1):
                return int(key_node.start_mark.line) + 1
    return line
