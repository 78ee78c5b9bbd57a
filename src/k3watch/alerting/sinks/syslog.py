"""Syslog: RFC 5424 messages over UDP (RFC 5426), TCP with octet-counting framing (RFC 6587)
or TLS (RFC 5425, the same framing inside TLS).

One message per alert::

    <82>1 2026-01-09T10:00:00.000000Z node-1 k3watch 4242 alert [k3watch@32473
    rule_id="…" severity="high" fingerprint="…" count="3" key="…" cluster="prod"]
    BOM Secrets listed across all namespaces: alice listed secrets in every namespace

PRI is facility × 8 + severity, with k3watch severities mapped to syslog's: critical → 2
(critical), high → 3 (error), medium → 4 (warning), low → 5 (notice), informational → 6
(informational). TIMESTAMP is the alert's last event time. MSG starts with the UTF-8 byte
order mark, as RFC 5424 asks for UTF-8 text.

Syslog has no acknowledgement: over TCP and TLS a message counts as delivered once the
kernel accepted it, and a connection the receiver closed is noticed (and re-opened) before
the next send, not after. Over UDP nothing tells k3watch that a message was lost.
"""

from __future__ import annotations

import os
import select
import socket
import ssl
import time
from collections.abc import Sequence
from typing import Any

import orjson

from k3watch.alert import Severity
from k3watch.alerting.config import FACILITIES, SyslogConfig, seconds
from k3watch.alerting.sinks.destination import DeliveryError, Notification
from k3watch.alerting.sinks.transport import client_ssl_context
from k3watch.event import format_time
from k3watch.telemetry import Counters

SYSLOG_SEVERITY = {
    Severity.CRITICAL: 2,
    Severity.HIGH: 3,
    Severity.MEDIUM: 4,
    Severity.LOW: 5,
    Severity.INFORMATIONAL: 6,
}
BOM = b"\xef\xbb\xbf"
MSGID = "alert"


def format_message(
    n: Notification, config: SyslogConfig, *, hostname: str, procid: str, now: float
) -> tuple[bytes, bool]:
    """One RFC 5424 SYSLOG-MSG for ``n``, and whether MSG had to be cut to fit."""
    pri = FACILITIES[config.facility] * 8 + SYSLOG_SEVERITY[n.severity]
    timestamp = format_time(n.last_seen if n.last_seen is not None else now)
    header = (
        f"<{pri}>1 {timestamp} {_field(hostname, 255)} {_field(config.app_name, 48)} "
        f"{_field(procid, 128)} {MSGID} "
    )
    params = {
        "rule_id": n.rule_id,
        "severity": n.severity.label,
        "fingerprint": n.fingerprint,
        "count": str(n.count),
        "key": n.idempotency_key,
        "cluster": n.cluster,
        "namespace": n.namespace,
        "attack": ",".join(n.attack),
        "first_seen": str(n.alert.get("first_seen") or ""),
        "link": n.link,
    }
    element = " ".join(f'{k}="{_param_value(v)}"' for k, v in params.items() if v)
    head = (header + f"[{config.sd_id} {element}]").encode()
    if config.message == "json":
        text = orjson.dumps(n.alert)
    else:
        text = " ".join(f"{n.title}: {n.summary}".split()).encode()
    room = config.max_message_size - len(head) - 1 - len(BOM)
    cut = len(text) > room
    if cut:
        # Cut on a character boundary so the receiver still gets valid UTF-8.
        text = text[: max(room, 0)].decode("utf-8", "ignore").encode()
    return head + b" " + BOM + text, cut


class SyslogDestination:
    """Sends alerts to one syslog receiver, keeping a TCP or TLS connection open between them."""

    max_batch = 32

    def __init__(self, config: SyslogConfig, *, counters: Counters | None = None) -> None:
        self.config = config
        self.name = config.name
        self.counters = counters or Counters(f"destination_{config.name}")
        self.hostname = config.hostname or socket.gethostname() or "-"
        self._procid = str(os.getpid())
        self._timeout = seconds(config.timeout)
        self._tls = (
            client_ssl_context(config.tls, config.name) if config.protocol == "tls" else None
        )
        self._sock: socket.socket | None = None
        self._udp_address: Any = None  # a resolved sockaddr (IPv4 or IPv6 shape)

    def deliver(self, notifications: Sequence[Notification]) -> None:
        """Send each alert; the first failure stops the batch and closes the connection."""
        now = time.time()
        for index, notification in enumerate(notifications):
            message, cut = format_message(
                notification, self.config, hostname=self.hostname, procid=self._procid, now=now
            )
            try:
                self._send(message)
            except (OSError, ssl.SSLError) as exc:
                self._close_socket()
                error = DeliveryError(
                    self.name,
                    f"cannot send to {self.config.host}:{self.config.effective_port} "
                    f"over {self.config.protocol}: {exc}",
                    reason=_reason(exc),
                )
                error.delivered = index
                raise error from exc
            if cut:
                self.counters.inc("truncated")

    def close(self) -> None:
        self._close_socket()

    def _send(self, message: bytes) -> None:
        if self.config.protocol == "udp":
            sock = self._udp()
            sock.sendto(message, self._udp_address)
            return
        sock = self._stream()
        # RFC 6587 octet counting: "MSG-LEN SP SYSLOG-MSG", so messages may contain newlines.
        sock.sendall(str(len(message)).encode() + b" " + message)

    def _udp(self) -> socket.socket:
        if self._sock is None:
            family, _, _, _, address = socket.getaddrinfo(
                self.config.host, self.config.effective_port, type=socket.SOCK_DGRAM
            )[0]
            self._sock = socket.socket(family, socket.SOCK_DGRAM)
            self._udp_address = address
        return self._sock

    def _stream(self) -> socket.socket:
        if self._sock is not None and _peer_closed(self._sock, self._timeout):
            self._close_socket()
        if self._sock is None:
            address = (self.config.host, self.config.effective_port)
            sock = socket.create_connection(address, timeout=self._timeout)
            if self._tls is not None:
                try:
                    server_name = self.config.tls.server_name or self.config.host
                    sock = self._tls.wrap_socket(sock, server_hostname=server_name)
                except BaseException:
                    sock.close()
                    raise
            self._sock = sock
        return self._sock

    def _close_socket(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None
                self._udp_address = None


def _peer_closed(sock: socket.socket, timeout: float) -> bool:
    """True when the receiver closed (or reset) the connection since the last send.

    Syslog receivers never write, so a readable socket means end of stream, a reset or (with
    TLS 1.3) a session ticket, which reading consumes harmlessly.
    """
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        sock.setblocking(False)
        return sock.recv(1) == b""
    except (ssl.SSLWantReadError, BlockingIOError):
        return False
    except OSError:
        return True
    finally:
        sock.settimeout(timeout)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return "tls"
    if isinstance(exc, TimeoutError):
        return "timeout"
    return "connection"


def _field(value: str, limit: int) -> str:
    """A header field: printable US-ASCII without spaces, or the NILVALUE ``-``."""
    cleaned = "".join(c for c in value if "!" <= c <= "~")[:limit]
    return cleaned or "-"


def _param_value(value: str) -> str:
    # RFC 5424 section 6.3.3: '"', '\' and ']' are escaped with a backslash.
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")
