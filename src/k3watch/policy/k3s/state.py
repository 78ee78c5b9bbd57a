"""One view of a node: what its K3s server is configured with and what it runs with.

Two views of the API-server flags, each value with where it came from:

- *configured*: the merged configuration files plus the running process's command-line
  ``--kube-apiserver-arg`` flags (K3s puts the command line after the files); this is what
  the next start of K3s gets.
- *running*: the flags of the last ``Running kube-apiserver`` log line; this is what the API
  server runs with now.

When they differ, the configuration changed and K3s has not been restarted since (or it
failed to start with the new configuration).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from k3watch.errors import Location
from k3watch.policy.k3s.apiserver import FlagValue, flags_from_args, resolve_flags
from k3watch.policy.k3s.config import Item, K3sConfig, read_config
from k3watch.policy.k3s.journal import RunningLine, find_running_line
from k3watch.policy.k3s.layout import Layout
from k3watch.policy.k3s.process import ServerProcess, find_server

APISERVER_KEY = "kube-apiserver-arg"


@dataclass(frozen=True, slots=True)
class Source:
    """A place the check looked at, and what it found there."""

    kind: str  # "config", "cmdline", "journal"
    where: str
    found: bool
    note: str = ""


@dataclass(slots=True)
class NodeState:
    """Everything the checks need to know about one node."""

    layout: Layout
    config: K3sConfig
    process: ServerProcess | None
    running_line: RunningLine | None
    configured: dict[str, FlagValue]
    running: dict[str, FlagValue] | None
    sources: list[Source] = field(default_factory=list)
    changed_since_start: list[str] = field(default_factory=list)  # config files newer than K3s

    @property
    def started(self) -> datetime | None:
        """When the running API server started: the process start, else the log line's time."""
        if self.process is not None and self.process.started is not None:
            return self.process.started
        if self.running_line is not None:
            return self.running_line.time
        return None

    def flag(self, name: str) -> tuple[FlagValue | None, FlagValue | None]:
        """(configured, running) values of one flag; running is None when unknown or unset."""
        running = self.running.get(name) if self.running is not None else None
        return self.configured.get(name), running


def gather(layout: Layout, journal_file: Path | None = None) -> NodeState:
    """Read every source under the layout's root."""
    process = find_server(layout)
    if process is not None and process.config_file and process.config_file != layout.config_file:
        # The server was started with --config: its files, not the default ones, are in force.
        layout = Layout(layout.root, process.config_file)
    config = read_config(layout)
    sources = [Source("config", path, True) for path in config.files]
    if not config.files:
        sources.append(Source("config", layout.config_file, False, "no configuration file"))
    sources.extend(
        Source("config", err.location.source if err.location else "?", False, str(err))
        for err in config.errors
    )
    items: list[Item] = config.items(APISERVER_KEY)
    if process is not None:
        items.extend(process.apiserver_args)
        # Not the whole command line: it may carry --token and other secrets.
        note = f"{process.argv[0]} server, {len(process.apiserver_args)} --kube-apiserver-arg"
        if process.config_file:
            note += f", --config {process.config_file}"
        if process.others:
            # Two servers on one node is a mistake worth seeing; the lowest pid is the one read.
            note += f"; more k3s server processes: {', '.join(map(str, process.others))}"
        sources.append(Source("cmdline", process.label, True, note))
    else:
        sources.append(Source("cmdline", "/proc/*/cmdline", False, "no k3s server process"))
    journal = find_running_line(layout, journal_file)
    running: dict[str, FlagValue] | None = None
    if journal.line is not None:
        line = journal.line
        when = line.time.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if line.time else ""
        running = flags_from_args(line.args, Location(line.source + (f", {when}" if when else "")))
        sources.append(Source("journal", line.source, True, f"Running kube-apiserver, {when}"))
    else:
        sources.append(Source("journal", "Running kube-apiserver", False, journal.note))
    state = NodeState(
        layout=layout,
        config=config,
        process=process,
        running_line=journal.line,
        configured=resolve_flags(items),
        running=running,
        sources=sources,
    )
    state.changed_since_start = _changed_since(layout, config, state.started)
    return state


def _changed_since(layout: Layout, config: K3sConfig, started: datetime | None) -> list[str]:
    if started is None:
        return []
    changed = []
    for path in config.files:
        try:
            mtime = datetime.fromtimestamp(layout.host(path).stat().st_mtime, tz=UTC)
        except OSError:
            continue
        if mtime > started:
            changed.append(path)
    return changed
