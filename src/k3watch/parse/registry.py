"""Log parsers by name, so that a source configured with ``format: k3s`` finds its parser.

Every entry is called as ``factory(counters, on_error, **options)`` and returns a
:class:`~k3watch.parse.logs.LineParser`; docs/logs.md lists the options of each.

========== ==================================================================================
journald   ``journalctl --all --output=json`` lines (any unit; K3s, kernel and audit entries
           are read in depth)
k3s        the K3s stream as text: ``/var/log/k3s.log`` (openrc), ``journalctl -u k3s``
containerd containerd's own log, ``/var/lib/rancher/k3s/agent/containerd/containerd.log``
kernel     AppArmor and seccomp records from dmesg, kern.log, syslog or auditd's audit.log
syslog     a syslog file (/var/log/syslog, /var/log/messages) with lines of any program
========== ==================================================================================
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from k3watch.errors import InputError, UsageError
from k3watch.parse.journald_json import JournaldParser
from k3watch.parse.k3s_log import K3sLogParser, containerd_parser, syslog_parser
from k3watch.parse.kernel import KernelParser
from k3watch.parse.logs import LineParser
from k3watch.telemetry import Counters

ParserFactory = Callable[..., LineParser]

PARSERS: dict[str, ParserFactory] = {
    "journald": JournaldParser,
    "k3s": K3sLogParser,
    "containerd": containerd_parser,
    "kernel": KernelParser,
    "syslog": syslog_parser,
}


def create_parser(
    name: str, counters: Counters, on_error: Callable[[InputError], None], **options: Any
) -> LineParser:
    """The parser registered as ``name``; :class:`UsageError` for an unknown name or option."""
    factory = PARSERS.get(name)
    if factory is None:
        known = ", ".join(sorted(PARSERS))
        raise UsageError(f"unknown log format {name!r}", hint=f"use one of {known}")
    try:
        return factory(counters, on_error, **options)
    except TypeError as exc:
        raise UsageError(f"bad options for log format {name!r}: {exc}") from exc
