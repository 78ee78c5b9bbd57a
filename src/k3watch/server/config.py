"""The ``server:`` section of the configuration: where the server listens, how it protects
itself, and how long it keeps what it stores.

```yaml
server:
  data_dir: /var/lib/k3watch          # events, alerts, tokens, outbox, first-seen baseline
  listen: 0.0.0.0:8443
  tls:
    cert_file: /etc/k3watch/pki/server.crt
    key_file: /etc/k3watch/pki/server.key
    client_ca_file: /etc/k3watch/pki/ca.crt    # agents must present a certificate from it
  limits:
    max_body: 64MiB
    max_event_size: 1MiB
    queue_events: 200000
    requests_per_second: 50
  retention:
    max_age: {audit: 90d, "*": 30d}
    max_size: 20GiB
```

Without a ``tls`` section the server refuses to start unless ``insecure_http: true`` says that
plain HTTP is wanted (on loopback behind a TLS proxy, or for a demo).
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from k3watch.rules.extension import parse_duration


def parse_listen(text: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:8443`` for IPv6) → (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"listen address {text!r} must be host:port, e.g. 127.0.0.1:8443")
    return host.strip("[]") or "0.0.0.0", int(port)


def listen_url(scheme: str, host: str, port: int) -> str:
    """The URL of a listener at ``host``, ``port`` (an IPv6 address in brackets)."""
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


class ServerTlsConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The server's certificate, and the CA its clients' certificates must come from."""

    cert_file: str
    """PEM certificate of the server (``k3watch certs init`` writes ``server.crt``)."""
    key_file: str
    """PEM private key of ``cert_file``."""
    client_ca_file: str | None = None
    """PEM CA that signs agent certificates. When set, the ingest endpoints
    (``/api/v1/ingest`` and ``/k8s-audit``) refuse connections without a certificate from it."""


class LimitsConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Back-pressure and size limits that keep a flood from taking the server down."""

    max_body: str = "64MiB"
    """Largest request body accepted (after decompression); larger requests get 413."""
    max_event_size: str = "1MiB"
    """Events larger than this are stored without their request and response bodies, marked
    truncated (never dropped)."""
    queue_events: int = 200_000
    """Events waiting for detection and storage; when full, ingest answers 503 with
    ``Retry-After`` so senders (the API server's webhook, agents) retry instead of losing
    events."""
    requests_per_second: float = 50.0
    """Ingest requests per second allowed per token (a burst of twice as many is allowed)."""
    wait: str = "10s"
    """How long an ingest request waits for its events to be stored before answering 503."""


class RetentionConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """How long events are kept. Retention runs in the background and records what it removed
    in the hash chain, so ``k3watch verify`` still passes."""

    max_age: dict[str, str] = msgspec.field(default_factory=lambda: {"*": "90d"})
    """Age limit per source (``audit``, ``journald``, ...); ``"*"`` applies to the others."""
    max_size: str | None = None
    """Largest size of the event store; the oldest events go first when it is exceeded."""
    interval: str = "10m"
    """How often retention runs."""


class WebConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The web UI at ``/ui/`` (users log in with ``k3watch user add`` accounts or a token)."""

    enabled: bool = True
    """Serve the web UI on the main listener."""
    session_lifetime: str = "12h"
    """How long a login lasts; then the user logs in again."""
    login_attempts_per_minute: float = 10
    """Failed logins allowed per minute from one address and for one user name (bursts of
    twice that); more are refused with 429 until the rate drops."""


class ServerConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The k3watch server (``k3watch server``)."""

    data_dir: str = "k3watch-data"
    """Directory of the event store, tokens, alert outbox and first-seen baseline (created
    0700; files 0600)."""
    listen: str = "127.0.0.1:8443"
    """Address and port of the API (``host:port``)."""
    ingest_listen: str | None = None
    """A second address that serves only the ingest endpoints. Required with
    ``tls.client_ca_file``: that listener requires client certificates, and the main one then
    refuses ingest."""
    tls: ServerTlsConfig | None = None
    """HTTPS settings; required unless ``insecure_http`` is true."""
    insecure_http: bool = False
    """Serve plain HTTP. Only for loopback, a TLS-terminating proxy in front, or a demo."""
    cluster: str = "default"
    """Cluster name for events whose sender names none (the API server's audit webhook)."""
    suppress: str = "10m"
    """Repeats of an alert (same rule and group) within this window are merged into it and
    delivered once as an update when the window ends."""
    workers: int | None = None
    """Processes that parse, redact, match and encode ingested events in parallel (the server's
    own process keeps the order-dependent half: de-duplication, correlation state and the
    writes). Default: one per CPU. ``0`` does that work in a thread of the server process
    (smallest memory footprint, for a single small node)."""
    limits: LimitsConfig = LimitsConfig()
    retention: RetentionConfig = RetentionConfig()
    web: WebConfig = WebConfig()

    def worker_count(self) -> int:
        """``workers``, or one per CPU the process may use when unset."""
        if self.workers is not None:
            return self.workers
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1

    def check(self) -> None:
        """Raise ValueError for values that do not parse (called when the file is read)."""
        from k3watch.config import parse_size

        parse_listen(self.listen)
        if self.ingest_listen is not None:
            parse_listen(self.ingest_listen)
        if self.tls is not None and self.tls.client_ca_file and self.ingest_listen is None:
            raise ValueError(
                "server.tls.client_ca_file needs server.ingest_listen: the address where agents "
                "connect with their certificates"
            )
        parse_duration(self.suppress, "server.suppress")
        parse_size(self.limits.max_body, "server.limits.max_body")
        parse_size(self.limits.max_event_size, "server.limits.max_event_size")
        parse_duration(self.limits.wait, "server.limits.wait")
        parse_duration(self.retention.interval, "server.retention.interval")
        for source, age in self.retention.max_age.items():
            parse_duration(age, f"server.retention.max_age.{source}")
        if self.retention.max_size is not None:
            parse_size(self.retention.max_size, "server.retention.max_size")
        if self.workers is not None and not 0 <= self.workers <= 64:
            raise ValueError("server.workers must be between 0 and 64")
        parse_duration(self.web.session_lifetime, "server.web.session_lifetime")
        if self.web.login_attempts_per_minute <= 0:
            raise ValueError("server.web.login_attempts_per_minute must be > 0")
        if self.limits.queue_events < 1 or self.limits.requests_per_second <= 0:
            raise ValueError("server.limits.queue_events and requests_per_second must be > 0")

    def relative_to(self, base: Path) -> ServerConfig:
        """The same settings with relative paths resolved against ``base``."""

        def resolve(value: str) -> str:
            return value if Path(value).is_absolute() else str(base / value)

        tls = self.tls
        if tls is not None:
            tls = ServerTlsConfig(
                resolve(tls.cert_file),
                resolve(tls.key_file),
                resolve(tls.client_ca_file) if tls.client_ca_file else None,
            )
        return msgspec.structs.replace(self, data_dir=resolve(self.data_dir), tls=tls)
