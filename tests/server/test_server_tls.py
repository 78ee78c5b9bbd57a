"""HTTPS, and mutual TLS on the ingest listener, with certificates from ``certs init``."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest
from tests.server.conftest import StartServer
from tests.server.test_server_ingest import attack_day, lines

from k3watch.certs import client_ssl_context, init_pki
from k3watch.client import Client
from k3watch.errors import UsageError
from k3watch.server.config import ServerConfig, ServerTlsConfig


def pki(tmp_path: Path) -> Path:
    directory = tmp_path / "pki"
    init_pki(directory, server_names=["localhost"], server_ips=["127.0.0.1"], clients=["node-1"])
    return directory


def test_the_api_is_served_over_https_and_verified_against_the_ca(
    start_server: StartServer, tmp_path: Path
) -> None:
    certs = pki(tmp_path)
    tls = ServerTlsConfig(str(certs / "server.crt"), str(certs / "server.key"))
    running = start_server(tls=tls, insecure_http=False)
    assert running.url.startswith("https://")
    with Client(running.url, running.tokens["viewer"], ca=certs / "ca.crt") as client:
        assert client.alerts()["alerts"] == []
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{running.url}/healthz")  # the system store does not know this CA


def test_ingest_with_mutual_tls_needs_a_client_certificate(
    start_server: StartServer, tmp_path: Path
) -> None:
    certs = pki(tmp_path)
    tls = ServerTlsConfig(
        str(certs / "server.crt"), str(certs / "server.key"), str(certs / "ca.crt")
    )
    running = start_server(tls=tls, insecure_http=False, ingest_listen="127.0.0.1:0")
    ingest_url = running.server.ingest_url
    assert ingest_url != running.url
    body = b"\n".join(lines(attack_day()[1][:5]))
    headers = {"Authorization": f"Bearer {running.tokens['agent']}"}
    with_cert = client_ssl_context(
        certs / "ca.crt", certs / "clients" / "node-1.crt", certs / "clients" / "node-1.key"
    )
    response = httpx.post(
        f"{ingest_url}/api/v1/ingest?batch=m", content=body, headers=headers, verify=with_cert
    )
    assert response.status_code == 200 and response.json()["accepted"] == 5
    without_cert = client_ssl_context(certs / "ca.crt", None, None)
    with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
        httpx.post(
            f"{ingest_url}/api/v1/ingest?batch=n",
            content=body,
            headers=headers,
            verify=without_cert,
        )
    # The main listener serves the API but not ingest.
    main = httpx.post(
        f"{running.url}/api/v1/ingest?batch=o", content=body, headers=headers, verify=with_cert
    )
    assert main.status_code == 404


def test_the_server_refuses_to_start_without_tls_unless_told(tmp_path: Path) -> None:
    from tests.server.conftest import builtin_rules

    from k3watch.config import Config
    from k3watch.server.run import listeners
    from k3watch.server.runtime import Runtime

    config = Config(
        server=ServerConfig(data_dir=str(tmp_path / "d"), listen="127.0.0.1:0", workers=0)
    )
    runtime = Runtime.build(config, builtin_rules())
    try:
        with pytest.raises(UsageError, match="no TLS certificate"):
            listeners(runtime)
    finally:
        runtime.stop()


def test_the_data_directory_and_its_files_are_private(start_server: StartServer) -> None:
    running = start_server()
    assert running.data_dir.stat().st_mode & 0o077 == 0
    for name in ("events.sqlite", "tokens.sqlite"):
        assert (running.data_dir / name).stat().st_mode & 0o077 == 0, name


def test_an_ssl_context_for_clients_requires_tls_1_2(tmp_path: Path) -> None:
    certs = pki(tmp_path)
    context = client_ssl_context(certs / "ca.crt", None, None)
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2


def test_the_first_seen_baseline_is_private_too(start_server: StartServer) -> None:
    running = start_server()
    assert (running.data_dir / "first-seen.sqlite").stat().st_mode & 0o077 == 0
