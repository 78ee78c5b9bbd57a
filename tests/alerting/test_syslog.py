"""Syslog against real receivers on loopback (UDP, TCP, TLS), checking RFC 5424 and RFC 6587."""

from __future__ import annotations

import re
import socket
import socketserver
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import orjson
import pytest
from tests.alerting.helpers import (
    Pki,
    free_port,
    make_alert,
    make_notification,
    server_tls,
    wait_until,
)

from k3watch.alert import Severity
from k3watch.alerting.config import SyslogConfig, TlsConfig
from k3watch.alerting.sinks.destination import DeliveryError, Notification
from k3watch.alerting.sinks.syslog import SyslogDestination

BOM = b"\xef\xbb\xbf"
HEADER = re.compile(
    rb"^<(?P<pri>\d{1,3})>1 (?P<timestamp>\S+) (?P<hostname>\S+) (?P<app>\S+) "
    rb"(?P<procid>\S+) (?P<msgid>\S+) \[(?P<sd>(?:[^\]\\]|\\.)*)\] (?P<msg>.*)$",
    re.DOTALL,
)
PARAM = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass
class Parsed:
    pri: int
    timestamp: str
    hostname: str
    app: str
    msgid: str
    sd_id: str
    params: dict[str, str]
    msg: bytes


def parse(message: bytes) -> Parsed:
    """An RFC 5424 message, split the way a strict receiver splits it."""
    match = HEADER.match(message)
    assert match, message
    sd = match["sd"].decode()
    sd_id, _, rest = sd.partition(" ")
    params = {k: re.sub(r"\\(.)", r"\1", v) for k, v in PARAM.findall(rest)}
    return Parsed(
        int(match["pri"]),
        match["timestamp"].decode(),
        match["hostname"].decode(),
        match["app"].decode(),
        match["msgid"].decode(),
        sd_id,
        params,
        match["msg"],
    )


@dataclass
class Receiver:
    """A syslog receiver: UDP datagrams or octet-counted TCP/TLS frames, recorded in order."""

    protocol: str
    tls: ssl.SSLContext | None = None
    close_after: int | None = None  # drop each TCP connection after this many messages
    messages: list[bytes] = field(default_factory=list)
    connections: int = 0

    def __post_init__(self) -> None:
        receiver = self

        class Datagram(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                receiver.messages.append(self.request[0])

        class Stream(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                receiver.connections += 1
                count = 0
                while receiver.close_after is None or count < receiver.close_after:
                    length = b""
                    while (char := self.rfile.read(1)) not in (b" ", b""):
                        length += char
                    if not length:
                        return
                    receiver.messages.append(self.rfile.read(int(length)))
                    count += 1

        if self.protocol == "udp":
            self.server: socketserver.BaseServer = socketserver.UDPServer(
                ("127.0.0.1", 0), Datagram
            )
        else:
            tcp = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Stream)
            tcp.daemon_threads = True
            if self.tls is not None:
                tcp.socket = self.tls.wrap_socket(tcp.socket, server_side=True)
            self.server = tcp
        self.port = int(self.server.server_address[1])  # type: ignore[index]
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    started: list[Receiver] = []
    yield started
    for receiver in started:
        receiver.close()


def start(receivers: list[Receiver], protocol: str, **kwargs: object) -> Receiver:
    receiver = Receiver(protocol, **kwargs)  # type: ignore[arg-type]
    receivers.append(receiver)
    return receiver


def syslog(port: int, **fields: object) -> SyslogDestination:
    fields.setdefault("hostname", "server-1")
    config = SyslogConfig(name="syslog", host="127.0.0.1", port=port, **fields)  # type: ignore[arg-type]
    return SyslogDestination(config)


def test_udp_sends_one_rfc5424_datagram_per_alert(receivers: list[Receiver]) -> None:
    receiver = start(receivers, "udp")
    sent = make_notification(cluster="prod", count=2, link="https://k3watch/alerts/x")
    destination = syslog(receiver.port, protocol="udp")
    destination.deliver([sent])
    wait_until(lambda: receiver.messages)
    got = parse(receiver.messages[0])
    assert got.pri == 10 * 8 + 3  # authpriv, high → error
    assert got.timestamp == "2026-01-09T10:00:01.000000Z"  # the alert's last event
    assert (got.hostname, got.app, got.msgid) == ("server-1", "k3watch", "alert")
    assert got.sd_id == "k3watch@32473"
    assert got.params == {
        "rule_id": sent.rule_id,
        "severity": "high",
        "fingerprint": sent.fingerprint,
        "count": "2",
        "key": sent.idempotency_key,
        "cluster": "prod",
        "namespace": "shop",
        "attack": "T1552.007",
        "first_seen": "2026-01-09T10:00:00.000000Z",
        "link": "https://k3watch/alerts/x",
    }
    assert (
        got.msg
        == BOM + b"Secrets listed across all namespaces: alice listed secrets in every namespace"
    )
    destination.close()


@pytest.mark.parametrize(
    ("severity", "code"),
    [
        (Severity.CRITICAL, 2),
        (Severity.HIGH, 3),
        (Severity.MEDIUM, 4),
        (Severity.LOW, 5),
        (Severity.INFORMATIONAL, 6),
    ],
)
def test_severities_map_to_syslog_severities_under_the_configured_facility(
    receivers: list[Receiver], severity: Severity, code: int
) -> None:
    receiver = start(receivers, "udp")
    syslog(receiver.port, protocol="udp", facility="local4").deliver(
        [make_notification(severity=severity)]
    )
    wait_until(lambda: receiver.messages)
    assert parse(receiver.messages[0]).pri == 20 * 8 + code


def test_tcp_frames_each_message_with_its_octet_count(receivers: list[Receiver]) -> None:
    receiver = start(receivers, "tcp")
    batch = [make_notification(user=u, cluster='we"ird]\\name') for u in ("alice", "bob")]
    destination = syslog(receiver.port)
    destination.deliver(batch)
    wait_until(lambda: len(receiver.messages) == 2)
    parsed = [parse(m) for m in receiver.messages]
    assert [p.params["fingerprint"] for p in parsed] == [n.fingerprint for n in batch]
    assert parsed[0].params["cluster"] == 'we"ird]\\name'  # escaped on the wire, intact here
    assert receiver.connections == 1  # one connection kept for the whole batch
    destination.close()


def test_a_connection_closed_by_the_receiver_is_reopened_before_the_next_alert(
    receivers: list[Receiver],
) -> None:
    receiver = start(receivers, "tcp", close_after=1)
    destination = syslog(receiver.port)
    destination.deliver([make_notification(user="first")])
    wait_until(lambda: len(receiver.messages) == 1)
    wait_until(lambda: not _still_open(destination))
    destination.deliver([make_notification(user="second")])
    wait_until(lambda: len(receiver.messages) == 2)
    assert receiver.connections == 2
    assert b"second" in receiver.messages[1]
    destination.close()


def _still_open(destination: SyslogDestination) -> bool:
    sock = destination._sock
    if sock is None:
        return False
    try:
        sock.setblocking(False)
        return sock.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    finally:
        sock.settimeout(destination._timeout)


def test_tls_delivers_with_the_receivers_ca(receivers: list[Receiver], pki: Pki) -> None:
    receiver = start(receivers, "tls", tls=server_tls(pki))
    destination = syslog(
        receiver.port, protocol="tls", tls=TlsConfig(ca_file=str(pki.ca), server_name="localhost")
    )
    destination.deliver([make_notification(), make_notification(user="bob")])
    wait_until(lambda: len(receiver.messages) == 2)
    assert parse(receiver.messages[1]).params["severity"] == "high"
    destination.close()


def test_tls_refuses_a_receiver_certificate_from_another_ca(
    receivers: list[Receiver], pki: Pki
) -> None:
    receiver = start(receivers, "tls", tls=server_tls(pki))
    destination = syslog(receiver.port, protocol="tls", tls=TlsConfig(ca_file=str(pki.other_ca)))
    with pytest.raises(DeliveryError) as caught:
        destination.deliver([make_notification()])
    assert caught.value.reason == "tls"
    assert caught.value.delivered == 0


def test_a_receiver_that_is_down_is_a_connection_failure() -> None:
    with pytest.raises(DeliveryError) as caught:
        syslog(free_port()).deliver([make_notification()])
    assert caught.value.reason == "connection"


def test_a_long_message_is_cut_to_the_limit_on_a_character_boundary(
    receivers: list[Receiver],
) -> None:
    receiver = start(receivers, "udp")
    long = make_alert(user="é" * 2000)
    destination = syslog(receiver.port, protocol="udp", max_message_size=480)
    destination.deliver([Notification.of(long)])
    wait_until(lambda: receiver.messages)
    message = receiver.messages[0]
    assert len(message) <= 480
    message.decode("utf-8")  # still valid UTF-8
    assert destination.counters.get("truncated") == 1


def test_the_message_can_be_the_alert_json_contract(receivers: list[Receiver]) -> None:
    receiver = start(receivers, "tcp")
    sent = make_notification()
    destination = syslog(receiver.port, message="json")
    destination.deliver([sent])
    wait_until(lambda: receiver.messages)
    assert orjson.loads(parse(receiver.messages[0]).msg.removeprefix(BOM)) == sent.alert
    destination.close()
