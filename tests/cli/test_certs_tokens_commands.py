"""``k3watch certs`` and ``k3watch token``."""

from __future__ import annotations

import re
import time
from pathlib import Path

import orjson
import pytest
from tests.cli.helpers import Invoke

from k3watch.certs import describe
from k3watch.server.tokens import TokenStore

# --- certs ---


def test_certs_init_prints_the_files_and_their_fingerprints(tmp_path: Path, invoke: Invoke) -> None:
    pki = tmp_path / "pki"
    result = invoke(
        "certs", "init", "--dir", str(pki), "--name", "k3watch.example.com", "--client", "node1"
    )
    assert result.exit_code == 0, result.output
    for name in ("ca", "server", "clients/node1"):
        cert, key = pki / f"{name}.crt", pki / f"{name}.key"
        assert f"wrote {cert}\n" in result.stdout
        assert f"wrote {key} (private key, mode 0600)" in result.stdout
        assert describe(cert).fingerprint in result.stdout
    assert "DNS:k3watch.example.com, IP:127.0.0.1, IP:::1" in result.stdout


def test_certs_init_defaults_to_localhost_and_this_host(tmp_path: Path, invoke: Invoke) -> None:
    import socket

    from k3watch.certs import default_server_names

    result = invoke("certs", "init", "--dir", str(tmp_path / "pki"))
    assert result.exit_code == 0, result.output
    info = describe(tmp_path / "pki" / "server.crt")
    assert info.dns_names == tuple(default_server_names())
    assert info.dns_names[0] == "localhost"
    host = socket.gethostname().lower().rstrip(".")
    assert host in info.dns_names or not host.replace("-", "").replace(".", "").isalnum()
    assert info.ip_addresses == ("127.0.0.1", "::1")


def test_certs_init_refuses_to_overwrite_without_force(tmp_path: Path, invoke: Invoke) -> None:
    pki = tmp_path / "pki"
    assert invoke("certs", "init", "--dir", str(pki)).exit_code == 0
    before = describe(pki / "ca.crt").fingerprint
    result = invoke("certs", "init", "--dir", str(pki))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: refusing to overwrite")
    assert result.stderr.count("\n") == 1 and "--force" in result.stderr
    assert describe(pki / "ca.crt").fingerprint == before
    assert invoke("certs", "init", "--dir", str(pki), "--force").exit_code == 0
    assert describe(pki / "ca.crt").fingerprint != before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "10.1.2.3"], "error: '10.1.2.3' is an IP address (give it with --ip instead)"),
        (["--ip", "localhost"], "error: 'localhost' is not an IP address"),
        (["--client", "a b"], "error: client name 'a b' is not allowed"),
    ],
)
def test_certs_init_usage_errors(
    tmp_path: Path, invoke: Invoke, args: list[str], message: str
) -> None:
    result = invoke("certs", "init", "--dir", str(tmp_path / "pki"), *args)
    assert result.exit_code == 2
    assert result.stderr.startswith(message)
    assert result.stderr.count("\n") == 1


def test_certs_client_adds_a_certificate(tmp_path: Path, invoke: Invoke) -> None:
    pki = tmp_path / "pki"
    assert invoke("certs", "init", "--dir", str(pki)).exit_code == 0
    result = invoke("certs", "client", "node7", "--dir", str(pki), "--days", "30")
    assert result.exit_code == 0, result.output
    cert = pki / "clients" / "node7.crt"
    info = describe(cert)
    assert info.subject == "CN=node7,O=k3watch" and info.usages == ("clientAuth",)
    assert info.fingerprint in result.stdout
    assert info.issuer == describe(pki / "ca.crt").subject
    again = invoke("certs", "client", "node7", "--dir", str(pki))
    assert again.exit_code == 2 and again.stderr.startswith("error: refusing to overwrite")


def test_certs_client_without_a_ca(tmp_path: Path, invoke: Invoke) -> None:
    result = invoke("certs", "client", "node7", "--dir", str(tmp_path))
    assert result.exit_code == 2
    assert result.stderr.startswith("error: no certificate at")
    assert "k3watch certs init" in result.stderr


# --- tokens ---


def create(invoke: Invoke, data: Path, name: str, *args: str) -> str:
    result = invoke("token", "create", name, "--data-dir", str(data), *args)
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def test_token_create_prints_the_secret_once(tmp_path: Path, invoke: Invoke) -> None:
    result = invoke("token", "create", "admin1", "--role", "admin", "--data-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    secret = result.stdout.strip()
    assert re.fullmatch(r"k3w_[A-Za-z0-9_-]{43}", secret)  # stdout is the secret alone
    assert "only time the secret is shown" in result.stderr
    assert "admin1, role admin" in result.stderr
    with TokenStore(tmp_path / "tokens.sqlite") as store:
        info = store.authenticate(secret)
    assert info is not None and info.name == "admin1"


def test_token_create_with_an_expiry(tmp_path: Path, invoke: Invoke) -> None:
    create(invoke, tmp_path, "temp", "--role", "viewer", "--expires", "30d")
    with TokenStore(tmp_path / "tokens.sqlite") as store:
        (info,) = store.list()
    assert info.expires is not None
    assert abs(info.expires - (time.time() + 30 * 86400)) < 60


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--role", "root"], "Invalid value for '--role'"),
        (["--role", "viewer", "--expires", "soon"], "not a duration"),
        (["--role", "viewer", "--expires", "0s"], "must be longer than 0s"),
    ],
)
def test_token_create_bad_options(
    tmp_path: Path, invoke: Invoke, args: list[str], message: str
) -> None:
    result = invoke("token", "create", "x", "--data-dir", str(tmp_path), *args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_token_create_refuses_a_name_in_use(tmp_path: Path, invoke: Invoke) -> None:
    create(invoke, tmp_path, "node1", "--role", "agent")
    result = invoke("token", "create", "node1", "--role", "agent", "--data-dir", str(tmp_path))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: an active token is already named 'node1'")
    assert result.stderr.count("\n") == 1


def test_token_list_json_and_table(tmp_path: Path, invoke: Invoke) -> None:
    secret = create(invoke, tmp_path, "node1", "--role", "agent")
    create(invoke, tmp_path, "alice", "--role", "analyst", "--expires", "1w")
    result = invoke("token", "list", "--data-dir", str(tmp_path), "--format", "json")
    assert result.exit_code == 0
    assert secret not in result.stdout
    tokens = orjson.loads(result.stdout)
    assert [(t["name"], t["role"], t["state"]) for t in tokens] == [
        ("node1", "agent", "active"),
        ("alice", "analyst", "active"),
    ]
    assert tokens[0]["expires"] is None and tokens[1]["expires"].endswith("Z")
    assert set(tokens[0]) == {"id", "name", "role", "state", "created", "expires", "last_used"}
    table = invoke("token", "list", "--data-dir", str(tmp_path))
    assert table.exit_code == 0
    assert tokens[0]["id"] in table.stdout and "analyst" in table.stdout
    assert secret not in table.stdout


def test_token_list_when_there_are_none(tmp_path: Path, invoke: Invoke) -> None:
    result = invoke("token", "list", "--data-dir", str(tmp_path))
    assert result.exit_code == 0
    assert "no tokens" in result.stderr


def test_token_revoke(tmp_path: Path, invoke: Invoke) -> None:
    secret = create(invoke, tmp_path, "node1", "--role", "agent")
    result = invoke("token", "revoke", "node1", "--data-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "revoked token" in result.stderr and "node1" in result.stderr
    with TokenStore(tmp_path / "tokens.sqlite") as store:
        assert store.authenticate(secret) is None
    listed = invoke("token", "list", "--data-dir", str(tmp_path), "--format", "json")
    assert orjson.loads(listed.stdout)[0]["state"] == "revoked"
    again = invoke("token", "revoke", "node1", "--data-dir", str(tmp_path))
    assert again.exit_code == 2
    assert again.stderr.startswith("error: no token with the id or name 'node1'")


def test_the_data_directory_comes_from_the_environment(
    tmp_path: Path, invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("K3WATCH_DATA_DIR", str(tmp_path / "from-env"))
    result = invoke("token", "create", "node1", "--role", "agent")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "from-env" / "tokens.sqlite").exists()


def test_the_default_data_directory(
    tmp_path: Path, invoke: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("K3WATCH_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    result = invoke("token", "create", "node1", "--role", "agent")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "k3watch-data" / "tokens.sqlite").exists()
