"""A small private PKI for the k3watch server: a CA, a server certificate, client certificates.

``init_pki`` writes, into one directory::

    ca.crt  ca.key                  the certificate authority (signs the others)
    server.crt  server.key          the server (extendedKeyUsage serverAuth, SANs)
    clients/<name>.crt  .key        one per agent or operator (clientAuth, CN = name)

Keys are ECDSA P-256. Private keys are created with mode 0600 in one ``open`` call, so that
no other user can ever read them, not even for the moment between writing and a ``chmod``;
the directory is 0700. Existing files are only replaced when asked to (``overwrite=True``),
because replacing the CA makes every certificate it signed useless.

``server_ssl_context`` and ``client_ssl_context`` build the ``ssl`` contexts both ends use
(TLS 1.2 or newer, the server verified against the CA, client certificates when configured).
There is no revocation list: a client certificate is valid until it expires, so the server
also requires an API token (see ``k3watch.server.tokens``), which can be revoked at once.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import re
import socket
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from k3watch.errors import Location, UsageError

log = logging.getLogger(__name__)

CA_NAME = "ca"
SERVER_NAME = "server"
CLIENTS_DIR = "clients"
DEFAULT_DAYS = 825  # the longest leaf lifetime browsers and most TLS clients still accept
DEFAULT_CA_DAYS = 3650
# Certificates start a few minutes in the past, so that a host whose clock is slightly behind
# does not refuse a certificate made seconds ago.
BACKDATE = dt.timedelta(minutes=5)

_CLIENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_DNS_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")


@dataclass(frozen=True, slots=True)
class CertFiles:
    """A certificate and its private key, as written (``name`` is the client name)."""

    name: str
    cert: Path
    key: Path


@dataclass(frozen=True, slots=True)
class Pki:
    """What ``init_pki`` wrote."""

    directory: Path
    ca: CertFiles
    server: CertFiles
    clients: tuple[CertFiles, ...]

    def files(self) -> list[CertFiles]:
        """Every certificate and key pair, CA first."""
        return [self.ca, self.server, *self.clients]


@dataclass(frozen=True, slots=True)
class CertInfo:
    """What a certificate says, for people to check (``fingerprint`` as ``openssl`` prints
    it: SHA-256, upper-case hex pairs separated by colons)."""

    path: Path
    subject: str
    issuer: str
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    not_before: dt.datetime
    not_after: dt.datetime
    fingerprint: str
    is_ca: bool
    usages: tuple[str, ...]  # "serverAuth", "clientAuth"

    @property
    def sans(self) -> tuple[str, ...]:
        """Subject alternative names as ``DNS:…`` and ``IP:…``."""
        return tuple([f"DNS:{n}" for n in self.dns_names] + [f"IP:{a}" for a in self.ip_addresses])


def default_server_names() -> list[str]:
    """The DNS names a server certificate gets when none are given: localhost and this host."""
    names = ["localhost"]
    try:
        host = _dns_name(socket.gethostname())
    except UsageError:
        return names  # a host name that is no DNS name cannot be in a certificate
    if host not in names:
        names.append(host)
    return names


DEFAULT_SERVER_IPS = ("127.0.0.1", "::1")


def init_pki(
    directory: Path,
    *,
    server_names: Sequence[str],
    server_ips: Sequence[str],
    clients: Sequence[str],
    days: int = DEFAULT_DAYS,
    ca_days: int = DEFAULT_CA_DAYS,
    overwrite: bool = False,
) -> Pki:
    """Create a CA, a server certificate and one certificate per client in ``directory``.

    ``days`` is the lifetime of the server and client certificates (capped at the CA's),
    ``ca_days`` the CA's. Raise UsageError for bad names or addresses, and when a file to
    write exists and ``overwrite`` is false (nothing is written then).
    """
    names = list(dict.fromkeys(_dns_name(n) for n in server_names))  # in order, once each
    ips = list(dict.fromkeys(_ip_address(a) for a in server_ips))
    if not names and not ips:
        raise UsageError("the server certificate needs at least one DNS name or IP address")
    _check_days(days, "days")
    _check_days(ca_days, "CA days")
    client_names = [_client_name(c) for c in clients]
    duplicates = sorted({c for c in client_names if client_names.count(c) > 1})
    if duplicates:
        raise UsageError(f"client name given twice: {', '.join(duplicates)}")

    ca = _files(directory, CA_NAME, CA_NAME)
    server = _files(directory, SERVER_NAME, SERVER_NAME)
    client_files = tuple(_client_files(directory, c) for c in client_names)
    if not overwrite:
        _refuse_existing(
            [ca, server, *client_files],
            hint="to replace them, use --force (overwrite=True); certificates signed by "
            "the old CA then stop working",
        )
    _private_dir(directory)
    if client_files:
        _private_dir(directory / CLIENTS_DIR)

    now = _now()
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _ca_certificate(ca_key, now, ca_days)
    _write_pair(ca, ca_cert, ca_key, overwrite)

    server_key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    sans += [x509.IPAddress(a) for a in ips]
    server_cert = _leaf_certificate(
        ca_cert,
        ca_key,
        server_key,
        common_name="k3watch server",  # clients check the SANs, never the CN
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        sans=sans,
        now=now,
        days=days,
    )
    _write_pair(server, server_cert, server_key, overwrite)

    for files in client_files:
        _issue(files, ca_cert, ca_key, now, days, overwrite)
    return Pki(directory=directory, ca=ca, server=server, clients=client_files)


def issue_client(
    directory: Path, name: str, days: int = DEFAULT_DAYS, *, overwrite: bool = False
) -> CertFiles:
    """Write ``clients/<name>.crt`` and ``.key``, signed by the CA in ``directory``.

    The lifetime is capped at the CA's. Raise UsageError when the CA is missing or
    unreadable, or the client's files exist and ``overwrite`` is false.
    """
    name = _client_name(name)
    _check_days(days, "days")
    ca = _files(directory, CA_NAME, CA_NAME)
    files = _client_files(directory, name)
    if not overwrite:
        _refuse_existing(
            [files],
            hint="choose another name, or replace them with --force (overwrite=True)",
        )
    ca_cert = _load_certificate(ca.cert)
    ca_key = _load_ec_key(ca.key)
    if ca_cert.public_key() != ca_key.public_key():
        raise UsageError(f"{ca.key} is not the key of {ca.cert}", hint="re-create the PKI")
    _private_dir(directory / CLIENTS_DIR)
    _issue(files, ca_cert, ca_key, _now(), days, overwrite)
    return files


def describe(cert_path: Path) -> CertInfo:
    """What the certificate in ``cert_path`` (PEM) says; UsageError when it is unreadable."""
    cert = _load_certificate(cert_path)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns_names = tuple(san.get_values_for_type(x509.DNSName))
        ip_addresses = tuple(str(a) for a in san.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        dns_names, ip_addresses = (), ()
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        usages = tuple(_USAGE_NAMES.get(oid, oid.dotted_string) for oid in eku)
    except x509.ExtensionNotFound:
        usages = ()
    digest = cert.fingerprint(hashes.SHA256()).hex().upper()
    return CertInfo(
        path=cert_path,
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        dns_names=dns_names,
        ip_addresses=ip_addresses,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        fingerprint=":".join(digest[i : i + 2] for i in range(0, len(digest), 2)),
        is_ca=is_ca,
        usages=usages,
    )


def server_ssl_context(
    cert: Path, key: Path, client_ca: Path | None, require_client_cert: bool
) -> ssl.SSLContext:
    """The server's context: TLS 1.2 or newer, ``cert``/``key`` as its identity.

    With ``client_ca``, client certificates signed by that CA are verified: required when
    ``require_client_cert``, otherwise optional (a client without one may still connect, and
    must then be authenticated otherwise). Raise UsageError when a file cannot be loaded or
    client certificates are required without a CA to check them.
    """
    if require_client_cert and client_ca is None:
        raise UsageError(
            "client certificates are required but no client CA is configured",
            hint="give the CA certificate that signed the client certificates (ca.crt)",
        )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_chain(context, cert, key)
    if client_ca is not None:
        _load_ca(context, client_ca)
        context.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    return context


def client_ssl_context(ca: Path | None, cert: Path | None, key: Path | None) -> ssl.SSLContext:
    """The context agents and the CLI connect with: TLS 1.2 or newer, the server's certificate
    and host name verified against ``ca`` (the system's trusted CAs when None), and ``cert``
    presented as the client certificate when given (``key`` may be in ``cert``'s file)."""
    if key is not None and cert is None:
        raise UsageError("a client key was given without its certificate")
    if ca is None:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    else:
        # Only this CA is trusted: a certificate a public CA issued for the same name is not
        # the k3watch server. PROTOCOL_TLS_CLIENT checks the chain and the host name.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        _load_ca(context, ca)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert is not None:
        _load_chain(context, cert, key)
    return context


# --- certificates ---


def _ca_certificate(
    key: ec.EllipticCurvePrivateKey, now: dt.datetime, days: int
) -> x509.Certificate:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "k3watch"),
            # A random part, so that two CAs made on the same host are told apart.
            x509.NameAttribute(NameOID.COMMON_NAME, f"k3watch CA {os.urandom(4).hex()}"),
        ]
    )
    public = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
    )
    return builder.sign(key, hashes.SHA256())


def _leaf_certificate(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    key: ec.EllipticCurvePrivateKey,
    *,
    common_name: str,
    usage: x509.ObjectIdentifier,
    sans: Sequence[x509.GeneralName],
    now: dt.datetime,
    days: int,
) -> x509.Certificate:
    public = key.public_key()
    not_after = min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "k3watch"),
                    x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                ]
            )
        )
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,  # ECDSA keys sign; they never encrypt a session key
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _issue(
    files: CertFiles,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    now: dt.datetime,
    days: int,
    overwrite: bool,
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _leaf_certificate(
        ca_cert,
        ca_key,
        key,
        common_name=files.name,
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        sans=(),
        now=now,
        days=days,
    )
    _write_pair(files, cert, key, overwrite)


_USAGE_NAMES = {
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
}


# --- files ---


def _files(directory: Path, stem: str, name: str) -> CertFiles:
    return CertFiles(name=name, cert=directory / f"{stem}.crt", key=directory / f"{stem}.key")


def _client_files(directory: Path, name: str) -> CertFiles:
    return _files(directory / CLIENTS_DIR, name, name)


def _refuse_existing(pairs: Iterable[CertFiles], hint: str) -> None:
    existing = [p for f in pairs for p in (f.cert, f.key) if p.exists()]
    if existing:
        shown = ", ".join(str(p) for p in existing[:3])
        more = f" and {len(existing) - 3} more" if len(existing) > 3 else ""
        raise UsageError(f"refusing to overwrite {shown}{more}", hint=hint)


def _private_dir(directory: Path) -> None:
    """Create ``directory`` with mode 0700, or make an existing one 0700."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if directory.stat().st_mode & 0o077:
            log.warning("%s was accessible by other users; setting its mode to 0700", directory)
            directory.chmod(0o700)
    except OSError as exc:
        raise UsageError(f"cannot create {directory}: {exc.strerror or exc}") from exc


def _write_pair(
    files: CertFiles, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, overwrite: bool
) -> None:
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # The key first: a certificate without its key is useless, a key alone harmless.
    _write(files.key, key_pem, 0o600, overwrite)
    _write(files.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644, overwrite)


def _write(path: Path, data: bytes, mode: int, overwrite: bool) -> None:
    """Write ``data`` to a file created with ``mode``: never a moment with a wider one.

    Without ``overwrite`` the file is created exclusively (it may not exist); with it the data
    goes to a new file beside it first, which then replaces the old one in one rename.
    """
    target = path.with_name(f".{path.name}.{os.urandom(4).hex()}.tmp") if overwrite else path
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError as exc:
        raise UsageError(f"refusing to overwrite {path}", hint="it appeared meanwhile") from exc
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if overwrite:
            os.replace(target, path)
    except OSError as exc:
        if overwrite:
            target.unlink(missing_ok=True)
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _load_certificate(path: Path) -> x509.Certificate:
    data = _read(path, "certificate")
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise UsageError("not a PEM certificate", Location(str(path))) from exc


def _load_ec_key(path: Path) -> ec.EllipticCurvePrivateKey:
    data = _read(path, "private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise UsageError("not an unencrypted PEM private key", Location(str(path))) from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise UsageError("not an ECDSA private key", Location(str(path)))
    return key


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise UsageError(
            f"no {what} at {path}", hint="create the PKI first: k3watch certs init --dir DIR"
        ) from exc
    except OSError as exc:
        raise UsageError(f"cannot read the {what} {path}: {exc.strerror or exc}") from exc


def _load_chain(context: ssl.SSLContext, cert: Path, key: Path | None) -> None:
    try:
        context.load_cert_chain(cert, key)
    except FileNotFoundError as exc:
        raise UsageError(f"no such file: {exc.filename or cert}") from exc
    except (OSError, ssl.SSLError) as exc:
        shown = f"{cert} / {key}" if key is not None else str(cert)
        raise UsageError(f"cannot load the certificate and key {shown}: {exc}") from exc


def _load_ca(context: ssl.SSLContext, ca: Path) -> None:
    try:
        context.load_verify_locations(cafile=ca)
    except FileNotFoundError as exc:
        raise UsageError(f"no such file: {ca}") from exc
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"cannot load the CA certificate {ca}: {exc}") from exc


# --- validation ---


def _dns_name(name: str) -> str:
    text = name.strip().rstrip(".").lower()
    if _is_ip(text):
        raise UsageError(f"{name!r} is an IP address", hint="give it with --ip instead")
    labels = text.split(".")
    if labels[0] == "*" and len(labels) > 2:
        labels = labels[1:]  # a wildcard covers one label, left-most only
    if not text or len(text) > 253 or not all(_DNS_LABEL.match(label) for label in labels):
        raise UsageError(f"{name!r} is not a DNS name")
    return text


def _ip_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError as exc:
        raise UsageError(f"{text!r} is not an IP address") from exc


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _client_name(name: str) -> str:
    if not _CLIENT_NAME.match(name):
        raise UsageError(
            f"client name {name!r} is not allowed",
            hint="use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return name


def _check_days(days: int, what: str) -> None:
    if days < 1:
        raise UsageError(f"{what} must be at least 1, not {days}")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)
