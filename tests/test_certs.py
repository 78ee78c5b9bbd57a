"""The private PKI: files and modes, and real TLS handshakes with the contexts it builds."""

from __future__ import annotations

import hashlib
import os
import socket
import ssl
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from k3watch.certs import (
    Pki,
    client_ssl_context,
    describe,
    init_pki,
    issue_client,
    server_ssl_context,
)
from k3watch.errors import UsageError


def make_pki(directory: Path, **options: object) -> Pki:
    settings: dict[str, object] = {
        "server_names": ["localhost", "k3watch.example.com"],
        "server_ips": ["127.0.0.1", "::1"],
        "clients": ["node1"],
    }
    settings.update(options)
    return init_pki(directory, **settings)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki") / "certs")


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A second CA, with a server and a client certificate of the same names."""
    return make_pki(tmp_path_factory.mktemp("other") / "certs")


@dataclass
class Outcome:
    """One connection: what each side saw."""

    received: bytes | None = None  # what the client read from the server
    client_error: BaseException | None = None
    server_error: BaseException | None = None
    peer: dict[str, object] | None = None  # the client certificate the server verified

    @property
    def ok(self) -> bool:
        return self.received == b"ok" and self.client_error is None and self.server_error is None


def connect(
    server_context: ssl.SSLContext,
    client_context: ssl.SSLContext,
    server_hostname: str = "localhost",
) -> Outcome:
    """Serve one TLS connection on 127.0.0.1 in a thread and connect to it."""
    outcome = Outcome()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)
    port = listener.getsockname()[1]

    def serve() -> None:
        try:
            conn, _ = listener.accept()
            conn.settimeout(5)
            with server_context.wrap_socket(conn, server_side=True) as tls:
                outcome.peer = tls.getpeercert() or None  # type: ignore[assignment]
                tls.sendall(b"ok")
        except (ssl.SSLError, OSError) as exc:
            outcome.server_error = exc

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            client_context.wrap_socket(raw, server_hostname=server_hostname) as tls,
        ):
            # With TLS 1.3 the server checks the client's certificate after the client's
            # handshake is done: a refusal shows on the first read.
            outcome.received = tls.recv(2)
    except (ssl.SSLError, OSError) as exc:
        outcome.client_error = exc
    finally:
        thread.join(5)
        listener.close()
    return outcome


def mtls_server(pki: Pki, *, require: bool = True) -> ssl.SSLContext:
    return server_ssl_context(pki.server.cert, pki.server.key, pki.ca.cert, require)


def node1(pki: Pki) -> tuple[Path, Path]:
    (files,) = pki.clients
    return files.cert, files.key


# --- handshakes ---


def test_mtls_with_a_client_certificate_from_the_ca_succeeds(pki: Pki) -> None:
    cert, key = node1(pki)
    outcome = connect(mtls_server(pki), client_ssl_context(pki.ca.cert, cert, key))
    assert outcome.ok, outcome
    assert outcome.peer is not None
    assert (("commonName", "node1"),) in outcome.peer["subject"]  # type: ignore[operator]


def test_a_client_without_a_certificate_is_refused_when_one_is_required(pki: Pki) -> None:
    outcome = connect(mtls_server(pki), client_ssl_context(pki.ca.cert, None, None))
    assert not outcome.ok
    assert isinstance(outcome.server_error, ssl.SSLError)
    assert outcome.received != b"ok"


def test_a_client_without_a_certificate_may_connect_when_it_is_optional(pki: Pki) -> None:
    outcome = connect(mtls_server(pki, require=False), client_ssl_context(pki.ca.cert, None, None))
    assert outcome.ok, outcome
    assert outcome.peer is None


def test_a_client_certificate_from_another_ca_is_refused(pki: Pki, other_pki: Pki) -> None:
    foreign_cert, foreign_key = node1(other_pki)
    for require in (True, False):  # an optional certificate that is presented is still checked
        outcome = connect(
            mtls_server(pki, require=require),
            client_ssl_context(pki.ca.cert, foreign_cert, foreign_key),
        )
        assert not outcome.ok
        assert isinstance(outcome.server_error, ssl.SSLError)


def test_the_server_certificate_is_not_accepted_as_a_client_certificate(pki: Pki) -> None:
    # Signed by the right CA, but its extendedKeyUsage is serverAuth only.
    outcome = connect(
        mtls_server(pki), client_ssl_context(pki.ca.cert, pki.server.cert, pki.server.key)
    )
    assert not outcome.ok
    assert isinstance(outcome.server_error, ssl.SSLError)


def test_the_client_refuses_a_server_from_another_ca(pki: Pki, other_pki: Pki) -> None:
    outcome = connect(
        server_ssl_context(other_pki.server.cert, other_pki.server.key, None, False),
        client_ssl_context(pki.ca.cert, None, None),
    )
    assert isinstance(outcome.client_error, ssl.SSLCertVerificationError)
    assert outcome.received is None


@pytest.mark.parametrize(
    "hostname", ["localhost", "k3watch.example.com", "K3WATCH.example.com", "127.0.0.1", "::1"]
)
def test_the_server_is_verified_by_each_of_its_names(pki: Pki, hostname: str) -> None:
    server = server_ssl_context(pki.server.cert, pki.server.key, None, False)
    outcome = connect(server, client_ssl_context(pki.ca.cert, None, None), hostname)
    assert outcome.ok, outcome


@pytest.mark.parametrize("hostname", ["evil.example.com", "example.com", "127.0.0.2"])
def test_a_name_not_in_the_certificate_fails_verification(pki: Pki, hostname: str) -> None:
    server = server_ssl_context(pki.server.cert, pki.server.key, None, False)
    outcome = connect(server, client_ssl_context(pki.ca.cert, None, None), hostname)
    assert isinstance(outcome.client_error, ssl.SSLCertVerificationError)
    assert "mismatch" in str(outcome.client_error).lower()


def test_names_given_replace_the_defaults(tmp_path: Path) -> None:
    pki = make_pki(tmp_path, server_names=["k3watch.internal"], server_ips=[], clients=[])
    server = server_ssl_context(pki.server.cert, pki.server.key, None, False)
    client = client_ssl_context(pki.ca.cert, None, None)
    assert connect(server, client, "k3watch.internal").ok
    assert isinstance(connect(server, client, "localhost").client_error, ssl.SSLError)


def test_a_wildcard_name_covers_one_label(tmp_path: Path) -> None:
    pki = make_pki(tmp_path, server_names=["*.k3watch.internal"], server_ips=[], clients=[])
    server = server_ssl_context(pki.server.cert, pki.server.key, None, False)
    client = client_ssl_context(pki.ca.cert, None, None)
    assert connect(server, client, "api.k3watch.internal").ok
    assert not connect(server, client, "a.b.k3watch.internal").ok


def test_contexts_require_tls_1_2_or_newer(pki: Pki) -> None:
    cert, key = node1(pki)
    server = mtls_server(pki)
    client = client_ssl_context(pki.ca.cert, cert, key)
    assert server.minimum_version == ssl.TLSVersion.TLSv1_2
    assert client.minimum_version == ssl.TLSVersion.TLSv1_2
    assert client.check_hostname and client.verify_mode == ssl.CERT_REQUIRED
    assert server.verify_mode == ssl.CERT_REQUIRED


# --- files ---


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask that takes nothing away, so that the modes seen are the ones asked for."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.usefixtures("open_umask")
def test_private_keys_are_0600_and_directories_0700(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "certs", clients=["node1", "node2"])
    for files in pki.files():
        assert mode(files.key) == 0o600, files.key
        assert mode(files.cert) == 0o644, files.cert
    assert mode(pki.directory) == 0o700
    assert mode(pki.directory / "clients") == 0o700
    issued = issue_client(pki.directory, "node3")
    assert mode(issued.key) == 0o600
    replaced = make_pki(pki.directory, overwrite=True)
    assert mode(replaced.ca.key) == 0o600
    assert not [p.name for p in pki.directory.iterdir() if p.name.endswith(".tmp")]


def test_an_existing_directory_open_to_others_is_closed(tmp_path: Path) -> None:
    directory = tmp_path / "certs"
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    make_pki(directory)
    assert mode(directory) == 0o700


def test_files_written_are_the_ones_reported(pki: Pki) -> None:
    assert [f.cert.name for f in pki.files()] == ["ca.crt", "server.crt", "node1.crt"]
    assert pki.clients[0].key == pki.directory / "clients" / "node1.key"
    for files in pki.files():
        assert files.cert.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
        assert files.key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")


def test_existing_files_are_not_overwritten(tmp_path: Path) -> None:
    first = make_pki(tmp_path)
    before = {p: p.read_bytes() for f in first.files() for p in (f.cert, f.key)}
    with pytest.raises(UsageError, match="refusing to overwrite") as raised:
        make_pki(tmp_path)
    assert "--force" in str(raised.value)
    with pytest.raises(UsageError, match="refusing to overwrite"):
        make_pki(tmp_path, clients=["node1", "node2"])  # node1 exists: node2 is not written
    assert not (tmp_path / "clients" / "node2.crt").exists()
    assert {p: p.read_bytes() for p in before} == before


def test_overwrite_replaces_the_ca(tmp_path: Path) -> None:
    first = make_pki(tmp_path)
    old = describe(first.ca.cert).fingerprint
    second = make_pki(tmp_path, overwrite=True)
    assert describe(second.ca.cert).fingerprint != old


def test_a_client_certificate_issued_later_works(tmp_path: Path) -> None:
    pki = make_pki(tmp_path, clients=[])
    files = issue_client(tmp_path, "late-node.example", days=30)
    info = describe(files.cert)
    assert info.subject == "CN=late-node.example,O=k3watch"
    assert info.usages == ("clientAuth",)
    outcome = connect(mtls_server(pki), client_ssl_context(pki.ca.cert, files.cert, files.key))
    assert outcome.ok, outcome
    with pytest.raises(UsageError, match="refusing to overwrite"):
        issue_client(tmp_path, "late-node.example")
    assert issue_client(tmp_path, "late-node.example", overwrite=True).cert == files.cert


def test_issuing_without_a_ca_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no certificate at") as raised:
        issue_client(tmp_path, "node1")
    assert "k3watch certs init" in str(raised.value)


# --- what a certificate says ---


def test_describe_reports_names_usage_and_fingerprint(pki: Pki) -> None:
    info = describe(pki.server.cert)
    assert info.dns_names == ("localhost", "k3watch.example.com")
    assert info.ip_addresses == ("127.0.0.1", "::1")
    assert info.sans[0] == "DNS:localhost" and info.sans[-1] == "IP:::1"
    assert info.usages == ("serverAuth",)
    assert not info.is_ca
    der = ssl.PEM_cert_to_DER_cert(pki.server.cert.read_text())
    assert info.fingerprint == ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())
    ca = describe(pki.ca.cert)
    assert ca.is_ca and ca.subject.startswith("CN=k3watch CA ")
    assert info.issuer == ca.subject
    assert info.not_after <= ca.not_after


def test_leaf_lifetimes_are_capped_at_the_cas(tmp_path: Path) -> None:
    pki = make_pki(tmp_path, days=825, ca_days=10)
    assert describe(pki.server.cert).not_after == describe(pki.ca.cert).not_after
    assert describe(pki.clients[0].cert).not_after == describe(pki.ca.cert).not_after


def test_two_cas_have_different_names(pki: Pki, other_pki: Pki) -> None:
    assert describe(pki.ca.cert).subject != describe(other_pki.ca.cert).subject


# --- refused input ---


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"server_names": ["10.0.0.5"]}, "is an IP address"),
        ({"server_names": ["bad name"]}, "not a DNS name"),
        ({"server_names": ["*.com"]}, "not a DNS name"),
        ({"server_ips": ["300.1.1.1"]}, "not an IP address"),
        ({"server_names": [], "server_ips": []}, "at least one DNS name or IP address"),
        ({"clients": ["../escape"]}, "client name '../escape' is not allowed"),
        ({"clients": ["a", "a"]}, "client name given twice"),
        ({"days": 0}, "days must be at least 1"),
    ],
)
def test_bad_input_is_refused_before_anything_is_written(
    tmp_path: Path, options: dict[str, object], message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        make_pki(tmp_path / "certs", **options)
    assert not (tmp_path / "certs").exists()


def test_context_errors_are_usage_errors(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no client CA"):
        server_ssl_context(pki.server.cert, pki.server.key, None, True)
    with pytest.raises(UsageError, match="no such file"):
        server_ssl_context(tmp_path / "missing.crt", pki.server.key, None, False)
    with pytest.raises(UsageError, match="without its certificate"):
        client_ssl_context(pki.ca.cert, None, pki.server.key)
    (tmp_path / "junk.crt").write_text("not a certificate\n")
    with pytest.raises(UsageError, match="cannot load the CA certificate"):
        client_ssl_context(tmp_path / "junk.crt", None, None)
    with pytest.raises(UsageError, match="not a PEM certificate"):
        describe(tmp_path / "junk.crt")
    with pytest.raises(UsageError, match="cannot load the certificate and key"):
        server_ssl_context(pki.server.cert, pki.ca.key, None, False)  # the wrong key
