"""Helpers of the alert delivery tests: alerts, free ports, a test PKI, a webhook receiver."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from k3watch.alert import Alert, Severity
from k3watch.alerting.sinks.destination import Notification

T0 = 1_767_952_800.0  # 2026-01-09T10:00:00Z


def make_alert(
    *,
    rule: str = "5a6c2e8f-0d3b-4c1e-9b7a-2f4e6d8c0a11",
    title: str = "Secrets listed across all namespaces",
    severity: Severity = Severity.HIGH,
    tags: tuple[str, ...] = ("attack.credential-access", "attack.t1552.007"),
    user: str = "alice",
    namespace: str | None = "shop",
    t: float = T0,
    count: int = 1,
) -> Alert:
    """A realistic alert (the shape the engine produces for a single-event rule)."""
    group: dict[str, str] = {"user.username": user}
    if namespace is not None:
        group["objectRef.namespace"] = namespace
    return Alert(
        rule_id=rule,
        title=title,
        severity=severity,
        tags=tags,
        group=group,
        first_seen=t,
        last_seen=t + count - 1,
        count=count,
        event_ids=[f"audit-{i}" for i in range(count)],
        summary=f"{user} listed secrets in every namespace",
    )


def make_notification(**kwargs: object) -> Notification:
    """A notification as the dispatcher queues it, for the destination tests."""
    context = {k: kwargs.pop(k) for k in ("cluster", "response", "link") if k in kwargs}
    return Notification.of(make_alert(**kwargs), **context)  # type: ignore[arg-type]


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(condition: Callable[[], object], timeout: float = 10.0) -> None:
    """Poll ``condition`` until it is true (tests assert outcomes, never durations)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def require_binary(name: str, package: str) -> str:
    """The path of a Debian-packaged program the test drives; skip (fail in CI) without it."""
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else "")
    if path:
        return path
    message = (
        f"{name} is NOT INSTALLED: run scripts/install-test-deps.sh (Debian package {package})"
    )
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@dataclass(frozen=True)
class Pki:
    """A CA, a server certificate for localhost/127.0.0.1 and a client certificate (PEM files)."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that signed nothing here: verifying against it must fail


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name, issuer_key = issuer if issuer else (name, key)
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )  # fmt: skip
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
        )
    else:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def make_pki(folder: Path) -> Pki:
    """A throw-away PKI made with ``cryptography`` for the TLS tests, written to ``folder``."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _certificate("k3watch test CA", ca_key, None, ca=True)
    issuer = (ca_cert.subject, ca_key)
    files: dict[str, bytes] = {"ca.pem": ca_cert.public_bytes(serialization.Encoding.PEM)}
    for role in ("server", "client"):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(f"k3watch test {role}", key, issuer, server=role == "server")
        files[f"{role}.pem"] = cert.public_bytes(serialization.Encoding.PEM)
        files[f"{role}-key.pem"] = _key_pem(key)
    other_key = ec.generate_private_key(ec.SECP256R1())
    other = _certificate("unrelated CA", other_key, None, ca=True)
    files["other-ca.pem"] = other.public_bytes(serialization.Encoding.PEM)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return Pki(
        ca=folder / "ca.pem",
        server_cert=folder / "server.pem",
        server_key=folder / "server-key.pem",
        client_cert=folder / "client.pem",
        client_key=folder / "client-key.pem",
        other_ca=folder / "other-ca.pem",
    )


@dataclass
class Received:
    """One request an ``HttpReceiver`` got."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HttpReceiver:
    """A real HTTP server on loopback (the standard library's) that records what it is sent.

    ``statuses`` lists the next answers (200 once it is empty), to play a failing receiver.
    """

    port: int = 0
    tls: ssl.SSLContext | None = None
    requests: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                receiver.requests.append(
                    Received(
                        "POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body
                    )
                )
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                answer = b"{}" if status < 400 else b'{"error": "test receiver says no"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep the test output clean

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        if self.tls is not None:
            self.server.socket = self.tls.wrap_socket(self.server.socket, server_side=True)
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)

    def __enter__(self) -> HttpReceiver:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def server_tls(pki: Pki, *, client_ca: Path | None = None) -> ssl.SSLContext:
    """A server-side TLS context with the test server certificate (and client verification)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(client_ca)
    return context
