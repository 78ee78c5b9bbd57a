"""Fixtures for the K3s set-up and check tests: a node tree under tmp_path, the CLI in-process."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from tests.k3s.helpers import Invoke, Node

from k3watch.cli import main


@pytest.fixture
def invoke() -> Invoke:
    def run(*args: str) -> Result:
        runner = CliRunner(env={"COLUMNS": "200"})
        return runner.invoke(main, list(args), catch_exceptions=False)

    return run


@pytest.fixture
def node(tmp_path: Path) -> Node:
    """An empty directory tree standing in for a K3s server node's ``/``."""
    root = tmp_path / "node"
    root.mkdir()
    return Node(root)
