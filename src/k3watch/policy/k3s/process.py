"""The running K3s server process: its command line and when it started, from ``/proc``.

The API server runs inside the ``k3s server`` process, so that process's command line carries
the ``--kube-apiserver-arg`` flags given outside the configuration files (the systemd unit's
``ExecStart``, an openrc ``command_args``); the configuration files themselves are read by the
process and do not show there. Its start time tells whether a configuration file changed after
the server started, that is, whether a restart is still owed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from k3watch.errors import Location
from k3watch.policy.k3s.config import Item
from k3watch.policy.k3s.layout import Layout

_APISERVER_FLAG = "kube-apiserver-arg"
_CONFIG_FLAGS = ("config", "c")


@dataclass(frozen=True, slots=True)
class ServerProcess:
    """A ``k3s server`` process found under ``<root>/proc``."""

    pid: int
    argv: tuple[str, ...]
    apiserver_args: tuple[Item, ...] = ()
    config_file: str | None = None  # from --config / -c, when given
    started: datetime | None = None
    others: tuple[int, ...] = field(default=())  # more k3s server processes (unexpected)

    @property
    def label(self) -> str:
        return f"/proc/{self.pid}/cmdline"


def find_server(layout: Layout) -> ServerProcess | None:
    """The ``k3s server`` process (the lowest pid when there are several), or None."""
    proc = layout.host("/proc")
    if not proc.is_dir():
        return None
    found: list[tuple[int, tuple[str, ...]]] = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
        except OSError:  # processes come and go while we look
            continue
        argv = tuple(a.decode("utf-8", "replace") for a in raw.split(b"\0") if a)
        if is_server_argv(argv):
            found.append((int(entry.name), argv))
    if not found:
        return None
    found.sort()
    pid, argv = found[0]
    items, config_file = parse_server_argv(argv, Location(f"/proc/{pid}/cmdline"))
    return ServerProcess(
        pid=pid,
        argv=argv,
        apiserver_args=tuple(items),
        config_file=config_file,
        started=_start_time(proc, pid),
        others=tuple(p for p, _ in found[1:]),
    )


def is_server_argv(argv: tuple[str, ...]) -> bool:
    """Whether a command line is ``k3s server …`` (``k3s`` under any path, ``server`` first)."""
    if not argv or not Path(argv[0]).name.startswith("k3s"):
        return False
    rest = [a for a in argv[1:] if not a.startswith("-")]
    return bool(rest) and rest[0] == "server"


def parse_server_argv(argv: tuple[str, ...], location: Location) -> tuple[list[Item], str | None]:
    """The ``--kube-apiserver-arg`` values and the ``--config`` file of a server command line.

    urfave/cli (K3s's flag parser) accepts ``--flag=value``, ``--flag value`` and one dash.
    """
    items: list[Item] = []
    config_file: str | None = None
    args = list(argv[1:])
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if not arg.startswith("-"):
            continue
        name, sep, value = arg.lstrip("-").partition("=")
        if name not in (_APISERVER_FLAG, *_CONFIG_FLAGS):
            continue
        if not sep:
            if i >= len(args):
                break
            value = args[i]
            i += 1
        if name == _APISERVER_FLAG:
            items.append(Item(value, location))
        else:
            config_file = value
    return items, config_file


def _start_time(proc: Path, pid: int) -> datetime | None:
    """When the process started: ``/proc/<pid>/stat`` field 22 (ticks after boot) + ``btime``."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
        boot = (proc / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    btime = next((line.split()[1] for line in boot.splitlines() if line.startswith("btime ")), "")
    try:
        ticks = int(fields[19])  # field 22 overall; fields[0] is field 3
        seconds = int(btime) + ticks / os.sysconf("SC_CLK_TCK")
    except (IndexError, ValueError):
        return None
    return datetime.fromtimestamp(seconds, tz=UTC)
