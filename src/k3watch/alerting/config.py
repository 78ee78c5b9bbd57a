"""The ``alerting:`` section of the configuration: where alerts go, and which ones.

```yaml
alerting:
  external_url: https://k3watch.example.com    # links back to alerts use this base URL
  cluster: prod-eu-1                            # cluster label when an alert names none
  outbox:
    path: /var/lib/k3watch/outbox.sqlite
    max_age: 24h
  destinations:
    - name: alertmanager
      type: alertmanager
      url: http://alertmanager.monitoring:9093
    - name: secops-slack
      type: apprise
      url: $env:SLACK_APPRISE_URL
      route:
        min_severity: high
        tags: [attack.credential-access, attack.privilege-escalation]
        updates: false
```

The docstring under each field is its reference documentation. Every model rejects unknown
keys; values that parse (durations, sizes, severities, label names) are checked when the file
is read, so a typo is an error with its line, not a surprise at the first alert.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import msgspec

from k3watch.alert import Severity
from k3watch.rules.extension import parse_duration

# Alertmanager (Prometheus) label names.
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# RFC 5424 SD-NAME: printable US-ASCII except '=', ' ', ']' and '"', at most 32 characters.
_SD_NAME = re.compile(r"^[!#-<>-\\^-~]{1,32}$")
FACILITIES = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6,
    "news": 7, "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12, "audit": 13,
    "alert": 14, "clock": 15, "local0": 16, "local1": 17, "local2": 18, "local3": 19,
    "local4": 20, "local5": 21, "local6": 22, "local7": 23,
}  # fmt: skip


def seconds(text: str) -> float:
    """A duration from the configuration in seconds (already checked when it was read)."""
    return parse_duration(text)


def _check_duration(text: str, what: str) -> float:
    return parse_duration(text, what)


def _check_http_url(url: str) -> None:
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"url {url!r} must start with http:// or https://")


class TlsConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """TLS towards a destination. The system's CA store verifies the server unless told otherwise.

    There is deliberately no switch to turn verification off: give the CA that signed the
    receiver's certificate instead.
    """

    ca_file: str | None = None
    """PEM file of the CA(s) that sign the receiver's certificate (instead of the system's)."""
    cert_file: str | None = None
    """PEM client certificate, for receivers that require mutual TLS."""
    key_file: str | None = None
    """PEM private key of ``cert_file`` (omit when the key is inside ``cert_file``)."""
    server_name: str | None = None
    """Name to verify the receiver's certificate against, when it differs from the host
    connected to (for example a syslog server reached by IP address)."""

    def __post_init__(self) -> None:
        if self.key_file and not self.cert_file:
            raise ValueError("tls.key_file needs tls.cert_file")


class RouteConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Which alerts a destination receives. Every condition must hold; exclusions win.

    ``rules`` and ``tags`` select together: when either is given, an alert must be one of
    the rules or carry one of the tags.
    """

    min_severity: str = "informational"
    """Lowest severity delivered: informational, low, medium, high or critical."""
    rules: tuple[str, ...] = ()
    """Rule ids (or their first 8 or more characters) to deliver; empty means any rule."""
    tags: tuple[str, ...] = ()
    """Rule tags to deliver, such as ``attack.credential-access``. ``attack.t1552`` also
    matches its sub-techniques (``attack.t1552.007``); ``*`` is a wildcard."""
    exclude_rules: tuple[str, ...] = ()
    """Rule ids never delivered here, whatever else matches."""
    exclude_tags: tuple[str, ...] = ()
    """Tags whose alerts are never delivered here."""
    clusters: tuple[str, ...] = ()
    """Clusters whose alerts are delivered; empty means every cluster."""
    exclude_clusters: tuple[str, ...] = ()
    """Clusters whose alerts are never delivered here."""
    updates: bool = True
    """Deliver updates of an alert already sent (its count grew). Alertmanager and webhooks
    want them; chat rooms usually do not."""

    def __post_init__(self) -> None:
        Severity.parse(self.min_severity)
        for rule in (*self.rules, *self.exclude_rules):
            if not rule.strip():
                raise ValueError("an empty rule id in a route")


class DestinationConfig(
    msgspec.Struct, forbid_unknown_fields=True, frozen=True, tag_field="type", kw_only=True
):
    """What every destination has: a name, a type and a route."""

    name: str
    """Unique name: it labels the destination's metrics and its queue in the outbox (renaming
    a destination orphans what is queued for it, which then expires)."""
    route: RouteConfig = RouteConfig()
    """Which alerts go to this destination (all of them by default)."""

    def check(self) -> None:
        """Raise ValueError when a value cannot be used (called after decoding)."""
        if not self.name.strip() or len(self.name) > 64:
            raise ValueError(f"destination name {self.name!r} must be 1 to 64 characters")


class AlertmanagerConfig(
    DestinationConfig, tag="alertmanager", kw_only=True, frozen=True, forbid_unknown_fields=True
):
    """Prometheus Alertmanager, through its v2 API (``POST /api/v2/alerts``)."""

    url: str
    """Base URL of Alertmanager, such as ``http://alertmanager:9093`` (with its route prefix,
    if it has one)."""
    alertname: Literal["title", "rule_id"] = "title"
    """What the ``alertname`` label holds: the rule title as a slug
    (``secrets_listed_across_all_namespaces``) or the rule id."""
    extra_labels: dict[str, str] = msgspec.field(default_factory=dict)
    """Labels added to every alert (for Alertmanager routes), such as ``team: platform``."""
    ends_after: str | None = None
    """Send ``endsAt`` this long after delivery, so the alert resolves by itself; by default
    Alertmanager's ``resolve_timeout`` applies."""
    username: str | None = None
    """Basic authentication user (with ``password``)."""
    password: str | None = None
    """Basic authentication password; use ``$env:NAME`` or ``$file:PATH``."""
    bearer_token: str | None = None
    """Bearer token sent as ``Authorization: Bearer …``; use ``$env:`` or ``$file:``."""
    tls: TlsConfig = TlsConfig()
    """TLS options for an ``https://`` URL."""
    timeout: str = "10s"
    """Time allowed for one request before it counts as failed and is retried."""

    def __post_init__(self) -> None:
        self.check()
        _check_http_url(self.url)
        _check_duration(self.timeout, "timeout")
        if self.ends_after is not None:
            _check_duration(self.ends_after, "ends_after")
        for label in self.extra_labels:
            if not _LABEL_NAME.match(label):
                raise ValueError(f"extra_labels: {label!r} is not a valid label name")
        if self.bearer_token and (self.username or self.password):
            raise ValueError("give either bearer_token or username/password, not both")
        if bool(self.username) != bool(self.password):
            raise ValueError("basic authentication needs both username and password")


class WebhookConfig(
    DestinationConfig, tag="webhook", kw_only=True, frozen=True, forbid_unknown_fields=True
):
    """Any HTTP endpoint: each alert is POSTed as its JSON contract, signed with HMAC-SHA256."""

    url: str
    """Where alerts are POSTed."""
    secret: str
    """Key of the ``X-K3watch-Signature`` HMAC; the receiver must check it (see
    docs/alerting.md). Use ``$env:NAME`` or ``$file:PATH``."""
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    """Extra request headers, such as an API key the receiver expects."""
    tls: TlsConfig = TlsConfig()
    """TLS options for an ``https://`` URL."""
    timeout: str = "10s"
    """Time allowed for one request before it counts as failed and is retried."""

    def __post_init__(self) -> None:
        self.check()
        _check_http_url(self.url)
        _check_duration(self.timeout, "timeout")
        if len(self.secret) < 16:
            raise ValueError("webhook secret must be at least 16 characters")


class AppriseConfig(
    DestinationConfig, tag="apprise", kw_only=True, frozen=True, forbid_unknown_fields=True
):
    """A chat, mail or paging service through an Apprise URL (``slack://``, ``msteams://``,
    ``discord://``, ``mailto://``, ``pagerduty://``…; see Apprise's documentation)."""

    url: str
    """The Apprise URL. It usually holds a token: use ``$env:NAME`` or ``$file:PATH``."""
    format: Literal["markdown", "text"] = "markdown"
    """How the message body is written; Apprise converts it for each service."""
    timeout: str = "30s"
    """Time allowed for one notification before it counts as failed and is retried."""

    def __post_init__(self) -> None:
        self.check()
        _check_duration(self.timeout, "timeout")
        if "://" not in self.url:
            raise ValueError("url must be an Apprise URL such as slack://… or mailto://…")


class SyslogConfig(
    DestinationConfig, tag="syslog", kw_only=True, frozen=True, forbid_unknown_fields=True
):
    """A syslog receiver, RFC 5424 messages over UDP, TCP (RFC 6587 octet counting) or TLS
    (RFC 5425)."""

    host: str
    """Receiver host name or address."""
    port: int | None = None
    """Receiver port; 514 for UDP and TCP, 6514 for TLS by default."""
    protocol: Literal["udp", "tcp", "tls"] = "tcp"
    """Transport. UDP can lose messages silently; TCP and TLS report a broken connection."""
    facility: str = "authpriv"
    """Syslog facility name (``authpriv``, ``auth``, ``local0``…``local7``…)."""
    hostname: str | None = None
    """HOSTNAME field of each message; this machine's name by default."""
    app_name: str = "k3watch"
    """APP-NAME field of each message."""
    sd_id: str = "k3watch@32473"
    """Structured-data element id. 32473 is the documentation enterprise number of RFC 5612;
    use your organisation's own if the receiver filters on it."""
    message: Literal["text", "json"] = "text"
    """MSG part: a line for people, or the alert's JSON contract."""
    max_message_size: int = 8192
    """Longest message sent, in bytes (longer MSG parts are cut, and counted); keep it at 2048
    or less for UDP receivers that follow RFC 5426."""
    tls: TlsConfig = TlsConfig()
    """TLS options when ``protocol`` is ``tls``."""
    timeout: str = "10s"
    """Time allowed to connect and send before the attempt counts as failed."""

    def __post_init__(self) -> None:
        self.check()
        _check_duration(self.timeout, "timeout")
        if self.facility not in FACILITIES:
            raise ValueError(f"unknown syslog facility {self.facility!r}")
        if not _SD_NAME.match(self.sd_id):
            raise ValueError(f"sd_id {self.sd_id!r} is not an RFC 5424 SD-ID")
        if self.port is not None and not 0 < self.port < 65536:
            raise ValueError(f"port {self.port} is out of range")
        if self.max_message_size < 480:
            raise ValueError("max_message_size must be at least 480 bytes")

    @property
    def effective_port(self) -> int:
        """The configured port, or the protocol's standard one."""
        if self.port is not None:
            return self.port
        return 6514 if self.protocol == "tls" else 514


class FileConfig(
    DestinationConfig, tag="file", kw_only=True, frozen=True, forbid_unknown_fields=True
):
    """A JSON-lines file (one alert contract per line), rotated by size."""

    path: str
    """The file; created with mode 0600. Rotated copies are ``PATH.1`` (newest) … ``PATH.N``."""
    max_size: str = "100MiB"
    """Size at which the file is rotated."""
    backups: int = 5
    """Rotated copies kept (0: the file is truncated when full)."""

    def __post_init__(self) -> None:
        self.check()
        if self.backups < 0:
            raise ValueError("backups must be 0 or more")
        if self.max_size_bytes < 4096:
            raise ValueError("max_size must be at least 4KiB")

    @property
    def max_size_bytes(self) -> int:
        """``max_size`` in bytes."""
        # Imported here: k3watch.config will import this module for its alerting section.
        from k3watch.config import parse_size

        return parse_size(self.max_size, "max_size")


Destination = AlertmanagerConfig | WebhookConfig | AppriseConfig | SyslogConfig | FileConfig


class OutboxConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The persistent queue between detection and destinations (see docs/alerting.md)."""

    path: str | None = None
    """SQLite file of the queue (mode 0600); ``outbox.sqlite`` in the data directory by
    default."""
    max_age: str = "24h"
    """An alert still undelivered this long after it was queued is dropped, logged and counted
    as ``dropped{expired}`` (after one last attempt)."""
    retry_delay: str = "1s"
    """Delay before the first retry; it doubles with each failure (with jitter)."""
    max_delay: str = "5m"
    """Longest delay between two attempts."""
    max_items: int = 100_000
    """Most alerts queued at once (all destinations together)."""
    overflow: Literal["drop_oldest", "reject_new"] = "drop_oldest"
    """When full: drop the queued alert of lowest severity (oldest first) to make room, or
    refuse the new one. Either way it is logged and counted as ``dropped{overflow}``."""

    def __post_init__(self) -> None:
        for what in ("max_age", "retry_delay", "max_delay"):
            if _check_duration(getattr(self, what), what) <= 0:
                raise ValueError(f"{what} must be more than 0")
        if self.max_items < 1:
            raise ValueError("max_items must be at least 1")


class AlertingConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Alert delivery: destinations with their routes, and the outbox in front of them."""

    external_url: str = ""
    """Base URL of the k3watch server as people reach it; each alert links to
    ``{external_url}/alerts/{fingerprint}``."""
    cluster: str = ""
    """Cluster name used when an alert's context names none."""
    outbox: OutboxConfig = OutboxConfig()
    """The persistent retry queue."""
    destinations: tuple[Destination, ...] = ()
    """Where alerts are delivered; each entry's ``type`` is one of alertmanager, webhook,
    apprise, syslog or file."""

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for destination in self.destinations:
            if destination.name in seen:
                raise ValueError(f"two destinations are named {destination.name!r}")
            seen.add(destination.name)
        if self.external_url and not self.external_url.startswith(("http://", "https://")):
            raise ValueError("external_url must start with http:// or https://")

    def relative_to(self, base: Path) -> AlertingConfig:
        """The same settings with relative file paths resolved against ``base``."""

        def resolve(value: str | None) -> str | None:
            if value is None or Path(value).is_absolute():
                return value
            return str(base / value)

        def tls(t: TlsConfig) -> TlsConfig:
            return msgspec.structs.replace(
                t,
                ca_file=resolve(t.ca_file),
                cert_file=resolve(t.cert_file),
                key_file=resolve(t.key_file),
            )

        destinations: list[Destination] = []
        for d in self.destinations:
            if isinstance(d, FileConfig):
                destinations.append(msgspec.structs.replace(d, path=resolve(d.path) or d.path))
            elif isinstance(d, AlertmanagerConfig | WebhookConfig | SyslogConfig):
                destinations.append(msgspec.structs.replace(d, tls=tls(d.tls)))
            else:
                destinations.append(d)
        outbox = msgspec.structs.replace(self.outbox, path=resolve(self.outbox.path))
        return msgspec.structs.replace(self, outbox=outbox, destinations=tuple(destinations))
