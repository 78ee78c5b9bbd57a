"""The ``agent:`` section of the configuration: where the node agent sends, what it reads, and
where it keeps what the server has not acknowledged yet.

```yaml
agent:
  server: https://k3watch.example:8443
  token: $file:/etc/k3watch/agent.token
  ca_file: /etc/k3watch/pki/ca.crt
  spool_dir: /var/lib/k3watch/agent
  sources:
    - type: audit_file
    - type: journald
    - type: file
      path: /var/lib/rancher/k3s/agent/containerd/containerd.log
      format: containerd
```

Each entry of ``sources`` takes the options of its source class in :mod:`k3watch.sources`
(docs/sources.md), with durations as seconds or ``2s``/``1m`` and sizes as bytes or
``4MiB``. Values that cannot work (an unknown log format, a webhook on a public address
without TLS, two sources of one name) are errors with the file and line.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import msgspec

from k3watch.rules.extension import parse_duration
from k3watch.server.config import parse_listen
from k3watch.sources.audit_file import K3S_AUDIT_LOG
from k3watch.sources.journald import DEFAULT_UNITS
from k3watch.sources.webhook import DEFAULT_CAPACITY, DEFAULT_PATH, DEFAULT_PORT, is_loopback

# What the server's ingest endpoint accepts for ``node``, ``cluster`` and ``source``.
LABEL = re.compile(r"[A-Za-z0-9._:@/-]{0,253}")
Format = Literal["audit", "log"]
AUDIT: Format = "audit"
LOG: Format = "log"


def _size(value: int | str, what: str) -> int:
    # Imported here: k3watch.config imports this module for its agent section.
    from k3watch.config import parse_size

    size = parse_size(value, what)
    if size <= 0:
        raise ValueError(f"{what} must be more than 0")
    return size


def _seconds(value: float | str, what: str) -> float:
    seconds = parse_duration(value, what)
    if seconds <= 0:
        raise ValueError(f"{what} must be more than 0")
    return seconds


def _label(value: str, what: str) -> None:
    if not LABEL.fullmatch(value):
        raise ValueError(f"{what} {value!r} may only hold letters, digits and ._:@/-")


def _known_format(name: str) -> None:
    from k3watch.parse.registry import PARSERS

    if name != AUDIT and name not in PARSERS:
        known = ", ".join([AUDIT, *sorted(PARSERS)])
        raise ValueError(f"unknown log format {name!r}; use one of {known}")


def _resolve(base: Path, value: str | None) -> str | None:
    if value is None or Path(value).is_absolute():
        return value
    return str(base / value)


class SourceConfig(
    msgspec.Struct, forbid_unknown_fields=True, frozen=True, tag_field="type", kw_only=True
):
    """What every source has: a type, a name, and the label its events get on the server."""

    name: str = ""
    """The source's name: it names its checkpoint and labels its metrics. By default the
    type (``audit_file``, ``journald``, ``webhook``, ``stdin``) or, for ``file``, the path.
    Renaming a source makes it start afresh."""
    label: str = ""
    """The ``source`` the server files the events under (retention and searches use it). By
    default ``audit`` for audit events, else the log format (``k3s``, ``journald``, …)."""

    def __post_init__(self) -> None:
        _label(self.label, "label")

    @property
    def source_name(self) -> str:
        """The name the source runs under."""
        return self.name or str(self.__struct_config__.tag)

    @property
    def wire_format(self) -> Format:
        """How the server reads the events: ``audit`` events or normalized ``log`` records."""
        return AUDIT

    @property
    def server_label(self) -> str:
        """The ``source`` sent with the events."""
        return self.label or AUDIT

    def relative_to(self, base: Path) -> SourceConfig:
        """The same settings with relative paths resolved against ``base``."""
        return self


class AuditFileSourceConfig(SourceConfig, tag="audit_file", kw_only=True, frozen=True):
    """The API server's audit log, followed through its rotations and resumed from a
    checkpoint."""

    path: str = K3S_AUDIT_LOG
    """The live audit log (``--audit-log-path``)."""
    start_at: Literal["beginning", "end"] | None = None
    """Where a first start (no checkpoint) reads the live file from; ``agent.start_at`` by
    default."""
    read_backups: bool = False
    """On a first start, read the rotated backups that exist first, oldest first."""
    poll_interval: float | str = 0.25
    """How often a quiet file is looked at again (seconds, or a duration)."""
    rotate_wait: float | str = 1.0
    """How long a file renamed away is still read, for a writer that has not reopened yet."""
    max_line_bytes: int | str = "16MiB"
    """Longer lines are skipped and reported."""
    max_event_bytes: int | str = "4MiB"
    """Larger events keep their metadata and lose their request and response bodies."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _seconds(self.poll_interval, "poll_interval")
        parse_duration(self.rotate_wait, "rotate_wait")
        _size(self.max_line_bytes, "max_line_bytes")
        _size(self.max_event_bytes, "max_event_bytes")

    def relative_to(self, base: Path) -> AuditFileSourceConfig:
        return msgspec.structs.replace(self, path=_resolve(base, self.path) or self.path)


class FileSourceConfig(SourceConfig, tag="file", kw_only=True, frozen=True):
    """Any log file, parsed by a parser of the registry (docs/logs.md), followed through its
    rotations."""

    path: str
    """The live log file, such as ``/var/log/k3s.log``."""
    format: str
    """``audit``, or a log parser: ``k3s``, ``containerd``, ``kernel``, ``syslog``,
    ``journald``."""
    start_at: Literal["beginning", "end"] | None = None
    """Where a first start (no checkpoint) reads the live file from; ``agent.start_at`` by
    default."""
    read_backups: bool = False
    """On a first start, read the rotated backups that exist first, oldest first."""
    poll_interval: float | str = 0.25
    """How often a quiet file is looked at again (seconds, or a duration)."""
    rotate_wait: float | str = 1.0
    """How long a file renamed away is still read, for a writer that has not reopened yet."""
    idle_flush: float | str = 2.0
    """How long the parser may hold a record for continuation lines while the file is quiet."""
    max_line_bytes: int | str | None = None
    """Longer lines are cut (log formats) or skipped (audit); the format's default when
    unset."""
    max_event_bytes: int | str = "4MiB"
    """For ``audit``: larger events lose their request and response bodies."""
    parser_options: dict[str, Any] = msgspec.field(default_factory=dict)
    """Options of the log parser (``host``, ``tz``, …; see docs/logs.md)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _known_format(self.format)
        _seconds(self.poll_interval, "poll_interval")
        parse_duration(self.rotate_wait, "rotate_wait")
        _seconds(self.idle_flush, "idle_flush")
        if self.max_line_bytes is not None:
            _size(self.max_line_bytes, "max_line_bytes")
        _size(self.max_event_bytes, "max_event_bytes")

    @property
    def source_name(self) -> str:
        return self.name or self.path

    @property
    def wire_format(self) -> Format:
        return AUDIT if self.format == AUDIT else LOG

    @property
    def server_label(self) -> str:
        return self.label or self.format

    def relative_to(self, base: Path) -> FileSourceConfig:
        return msgspec.structs.replace(self, path=_resolve(base, self.path) or self.path)


class JournaldSourceConfig(SourceConfig, tag="journald", kw_only=True, frozen=True):
    """The systemd journal, read with ``journalctl --output=json`` and resumed by cursor."""

    units: tuple[str, ...] = DEFAULT_UNITS
    """Units whose logs are read, with what systemd logs about them (``k3s`` means
    ``k3s.service``)."""
    kernel: bool = True
    """Also read the kernel's messages (AppArmor and seccomp denials)."""
    matches: tuple[tuple[str, ...], ...] = ()
    """More journalctl match terms, each a list of ``FIELD=value``, ORed with the rest."""
    directory: str | None = None
    """Read the journal files in this directory instead of the system's journal."""
    files: tuple[str, ...] = ()
    """Read these journal files instead of the system's journal."""
    start_at: Literal["beginning", "end"] | None = None
    """Where a first start (no checkpoint) reads from; ``agent.start_at`` by default."""
    since: str | None = None
    """On a first start, read from this time instead (anything ``journalctl --since``
    takes)."""
    journalctl: str = "journalctl"
    """The journalctl program."""
    restart_delay: float | str = 1.0
    """Wait before starting journalctl again after it exited; doubles after each exit."""
    max_restart_delay: float | str = 60.0
    """Longest wait between two starts of journalctl."""
    idle_flush: float | str = 2.0
    """How long the parser may hold a record for continuation lines while the journal is
    quiet."""
    max_line_bytes: int | str = "1MiB"
    """Longer journal entries are dropped and reported."""
    queue_lines: int = 10_000
    """Lines read ahead of the parser; when full, journalctl waits."""
    parser_options: dict[str, Any] = msgspec.field(default_factory=dict)
    """Options of the ``journald`` parser (see docs/logs.md)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _seconds(self.restart_delay, "restart_delay")
        _seconds(self.max_restart_delay, "max_restart_delay")
        _seconds(self.idle_flush, "idle_flush")
        _size(self.max_line_bytes, "max_line_bytes")
        if self.queue_lines < 1:
            raise ValueError("queue_lines must be at least 1")

    @property
    def wire_format(self) -> Format:
        return LOG

    @property
    def server_label(self) -> str:
        return self.label or "journald"

    def relative_to(self, base: Path) -> JournaldSourceConfig:
        return msgspec.structs.replace(
            self,
            directory=_resolve(base, self.directory),
            files=tuple(_resolve(base, f) or f for f in self.files),
        )


class WebhookSourceConfig(SourceConfig, tag="webhook", kw_only=True, frozen=True):
    """A listener for the API server's audit webhook backend, on the same node. Events that
    were acknowledged to the API server but not yet written to the spool are lost if the
    agent dies (see docs/sources.md); prefer ``audit_file`` where a local file is possible."""

    host: str = "127.0.0.1"
    """Address to listen on; any address other than loopback requires ``cert_file``."""
    port: int = DEFAULT_PORT
    """Port to listen on."""
    path: str = DEFAULT_PATH
    """The only path that takes POSTs."""
    token: str | None = None
    """Bearer token the API server sends (its webhook kubeconfig's ``users[].user.token``);
    use ``$env:NAME`` or ``$file:PATH``. Required unless ``client_ca_file`` is given."""
    cert_file: str | None = None
    """PEM certificate: turns on HTTPS."""
    key_file: str | None = None
    """PEM private key of ``cert_file`` (when not in the same file)."""
    client_ca_file: str | None = None
    """Verify client certificates against this CA; without a ``token`` a verified
    certificate is required and enough."""
    capacity: int = DEFAULT_CAPACITY
    """Events waiting to be spooled at most; a batch that does not fit gets 503."""
    max_body_bytes: int | str = "64MiB"
    """Larger requests are refused with 413."""
    max_event_bytes: int | str = "4MiB"
    """Larger events lose their request and response bodies."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.cert_file is None and not is_loopback(self.host):
            raise ValueError(
                f"the webhook cannot listen on {self.host} without TLS; give cert_file and "
                "key_file, or listen on 127.0.0.1"
            )
        if not self.token and self.client_ca_file is None:
            raise ValueError("the webhook needs a token (or client_ca_file)")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port {self.port} is not a port number")
        if self.capacity < 1:
            raise ValueError("capacity must be at least 1")
        _size(self.max_body_bytes, "max_body_bytes")
        _size(self.max_event_bytes, "max_event_bytes")

    def relative_to(self, base: Path) -> WebhookSourceConfig:
        return msgspec.structs.replace(
            self,
            cert_file=_resolve(base, self.cert_file),
            key_file=_resolve(base, self.key_file),
            client_ca_file=_resolve(base, self.client_ca_file),
        )


class StdinSourceConfig(SourceConfig, tag="stdin", kw_only=True, frozen=True):
    """Lines from standard input (``kubectl logs -f … | k3watch agent …``); its end ends the
    source. A stream cannot be read again: what is not spooled when the agent dies is lost."""

    format: str = AUDIT
    """``audit``, or a log parser: ``k3s``, ``containerd``, ``kernel``, ``syslog``,
    ``journald``."""
    idle_flush: float | str = 2.0
    """How long the parser may hold a record for continuation lines while the input is
    quiet."""
    max_line_bytes: int | str | None = None
    """Longer lines are cut (log formats) or skipped (audit); the format's default when
    unset."""
    max_event_bytes: int | str = "4MiB"
    """For ``audit``: larger events lose their request and response bodies."""
    parser_options: dict[str, Any] = msgspec.field(default_factory=dict)
    """Options of the log parser."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _known_format(self.format)
        _seconds(self.idle_flush, "idle_flush")
        if self.max_line_bytes is not None:
            _size(self.max_line_bytes, "max_line_bytes")
        _size(self.max_event_bytes, "max_event_bytes")

    @property
    def wire_format(self) -> Format:
        return AUDIT if self.format == AUDIT else LOG

    @property
    def server_label(self) -> str:
        return self.label or self.format


Source = (
    AuditFileSourceConfig
    | FileSourceConfig
    | JournaldSourceConfig
    | WebhookSourceConfig
    | StdinSourceConfig
)


class AgentConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The node agent (``k3watch agent``): its sources, its spool and the server it sends to."""

    server: str = ""
    """URL of the k3watch server (its ingest listener when the server has one), such as
    ``https://k3watch.example:8443``. ``http://`` is only allowed to a loopback address."""
    token: str = ""
    """An ``agent`` token (``k3watch token create NAME --role agent``); use ``$file:PATH`` or
    ``$env:NAME`` rather than writing it here."""
    ca_file: str | None = None
    """PEM CA that signed the server's certificate; the system's trusted CAs when unset."""
    cert_file: str | None = None
    """PEM client certificate, for a server that requires them (``server.tls.client_ca_file``;
    ``k3watch certs client NAME`` writes one)."""
    key_file: str | None = None
    """PEM private key of ``cert_file`` (when not in the same file)."""
    node: str = ""
    """This node's name, sent with every batch; the host name when empty."""
    cluster: str = ""
    """The cluster's name, sent with every batch; the server's ``server.cluster`` when
    empty."""
    spool_dir: str = "/var/lib/k3watch/agent"
    """Directory of the spool and the sources' checkpoints (created 0700; files 0600)."""
    spool_max_size: int | str = "1GiB"
    """Largest size of the spool. When it is exceeded the oldest events are dropped, even
    unsent, and the loss is logged and counted as ``dropped{spool_full}``."""
    batch_max_events: int = 1000
    """Most events in one batch (one spool frame, one request)."""
    batch_max_wait: float | str = "1s"
    """Longest time an event waits for its batch to fill before the batch is spooled."""
    compression: Literal["zstd", "gzip", "none"] = "zstd"
    """How batches are compressed, in the spool and on the wire (``zstd`` makes K3s audit
    events about 15 times smaller: the spool holds that much more)."""
    timeout: float | str = "30s"
    """Time allowed for one request to the server (connection and answer)."""
    metrics_listen: str | None = "127.0.0.1:9142"
    """Address (``host:port``) of the agent's ``/metrics`` and ``/healthz``; ``null`` turns
    them off."""
    start_at: Literal["beginning", "end"] = "beginning"
    """Where a source's first start (no checkpoint) reads from: what is there already, or
    only what comes next."""
    sources: tuple[Source, ...] = ()
    """What the agent reads; each entry's ``type`` is one of audit_file, file, journald,
    webhook or stdin."""
    local_rules: bool = False
    """Also evaluate the rules of the ``rules:`` section on this node, as events are read, and
    deliver their alerts through the ``alerting:`` destinations (give the agent its own: a
    JSON-lines file, syslog, a webhook), so that a node raises alerts while the server is
    unreachable. Events are redacted (the ``redaction:`` section) before the rules see them,
    and are forwarded redacted. The server still evaluates every event it receives."""
    local_suppress: float | str = "10m"
    """With ``local_rules``: repeats of an alert (same rule and group) within this window are
    merged and delivered once as an update when the window ends."""

    def check(self) -> None:
        """Raise ValueError for values that do not parse."""
        for _, check in self.checks():
            check()

    def checks(self) -> list[tuple[str, Callable[[], object]]]:
        """The value checks, each with the path of the key it checks (for the error's line;
        :func:`k3watch.config.load_config` runs them)."""
        return [
            ("$.agent.server", lambda: self.server and server_url(self.server)),
            ("$.agent.key_file", self._check_key),
            ("$.agent.node", lambda: _label(self.node, "agent.node")),
            ("$.agent.cluster", lambda: _label(self.cluster, "agent.cluster")),
            ("$.agent.spool_max_size", self._check_spool_size),
            ("$.agent.batch_max_events", self._check_batch),
            (
                "$.agent.batch_max_wait",
                lambda: _seconds(self.batch_max_wait, "agent.batch_max_wait"),
            ),
            ("$.agent.timeout", lambda: _seconds(self.timeout, "agent.timeout")),
            (
                "$.agent.local_suppress",
                lambda: _seconds(self.local_suppress, "agent.local_suppress"),
            ),
            (
                "$.agent.metrics_listen",
                lambda: self.metrics_listen and parse_listen(self.metrics_listen),
            ),
            ("$.agent.sources", self._check_names),
        ]

    def _check_key(self) -> None:
        if self.key_file and not self.cert_file:
            raise ValueError("agent.key_file needs agent.cert_file")

    def _check_spool_size(self) -> None:
        if _size(self.spool_max_size, "agent.spool_max_size") < 1024 * 1024:
            raise ValueError("agent.spool_max_size must be at least 1MiB")

    def _check_batch(self) -> None:
        if not 1 <= self.batch_max_events <= 100_000:
            raise ValueError("agent.batch_max_events must be between 1 and 100000")

    def _check_names(self) -> None:
        seen: set[str] = set()
        for source in self.sources:
            if source.source_name in seen:
                raise ValueError(f"two sources are named {source.source_name!r}; give one a 'name'")
            seen.add(source.source_name)

    def require(self) -> None:
        """Raise ValueError unless the agent can run: a server, a token and sources."""
        if not self.server:
            raise ValueError("agent.server is not set (the k3watch server's URL)")
        if not self.token:
            raise ValueError(
                "agent.token is not set (an agent token: k3watch token create NAME --role agent)"
            )
        if not self.sources:
            raise ValueError("agent.sources is empty: the agent has nothing to read")

    @property
    def node_name(self) -> str:
        """``node``, or the host name made acceptable to the server."""
        if self.node:
            return self.node
        return re.sub(r"[^A-Za-z0-9._:@/-]", "_", socket.gethostname())[:253] or "node"

    @property
    def spool_max_size_bytes(self) -> int:
        from k3watch.config import parse_size

        return parse_size(self.spool_max_size, "agent.spool_max_size")

    @property
    def batch_max_wait_seconds(self) -> float:
        return parse_duration(self.batch_max_wait, "agent.batch_max_wait")

    @property
    def timeout_seconds(self) -> float:
        return parse_duration(self.timeout, "agent.timeout")

    def relative_to(self, base: Path) -> AgentConfig:
        """The same settings with relative paths resolved against ``base``."""
        return msgspec.structs.replace(
            self,
            spool_dir=_resolve(base, self.spool_dir) or self.spool_dir,
            ca_file=_resolve(base, self.ca_file),
            cert_file=_resolve(base, self.cert_file),
            key_file=_resolve(base, self.key_file),
            sources=tuple(source.relative_to(base) for source in self.sources),
        )


def server_url(text: str) -> str:
    """The server's base URL; ValueError unless https, or http to a loopback address."""
    from urllib.parse import urlsplit

    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"agent.server {text!r} must be a URL like https://k3watch.example:8443")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ValueError(
            f"agent.server {text!r}: plain http sends the token in clear; use https "
            "(http is only allowed to a loopback address)"
        )
    return text.rstrip("/")
