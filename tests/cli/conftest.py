"""Fixtures for command-line tests: run ``k3watch`` in-process."""

from __future__ import annotations

import pytest
from click.testing import CliRunner, Result
from tests.cli.helpers import Invoke

from k3watch.cli import main


@pytest.fixture
def invoke() -> Invoke:
    def run(*args: str, input: bytes | str | None = None) -> Result:
        # A wide terminal, so table cells are not wrapped mid-title.
        runner = CliRunner(env={"COLUMNS": "200"})
        return runner.invoke(main, list(args), input=input, catch_exceptions=False)

    return run
