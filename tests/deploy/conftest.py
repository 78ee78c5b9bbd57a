"""Fixtures for the deploy tests: the CLI in-process, values files, a node tree, a PKI."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from k3watch.cli import main

Invoke = Callable[..., Result]


@pytest.fixture
def invoke() -> Invoke:
    def run(*args: str) -> Result:
        return CliRunner(env={"COLUMNS": "200"}).invoke(main, list(args), catch_exceptions=False)

    return run


@pytest.fixture
def write_values(tmp_path: Path) -> Callable[[str], Path]:
    """Write a values file (YAML text) next to the files it names; returns its path."""

    def write(text: str) -> Path:
        path = tmp_path / "values.yaml"
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def node(tmp_path: Path) -> Path:
    """An empty directory standing in for a K3s server node's ``/``."""
    root = tmp_path / "node"
    root.mkdir()
    return root


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    """A ``k3watch certs init`` directory with a client certificate for the agents."""
    from k3watch.certs import init_pki

    directory = tmp_path / "pki"
    init_pki(
        directory,
        server_names=["k3watch-server.k3watch.svc"],
        server_ips=[],
        clients=["k3watch-agent"],
    )
    return directory


@pytest.fixture
def token_files(tmp_path: Path) -> tuple[Path, Path]:
    """An agent token file and a webhook token file (made-up secrets, test only)."""
    agent = tmp_path / "agent.token"
    agent.write_text("k3w_" + "a" * 43 + "\n")
    webhook = tmp_path / "webhook.token"
    webhook.write_text("0123456789abcdef0123456789abcdef\n")
    return agent, webhook
