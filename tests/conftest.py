"""Options shared by the whole test suite."""

from __future__ import annotations

import functools

import pytest

from k3watch.rules.loader import load_rules
from k3watch.rules.model import RuleSet


@functools.cache
def builtin_rules() -> RuleSet:
    """The built-in rule library, loaded once per test process."""
    return load_rules([], builtin=True)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--regen-golden",
        action="store_true",
        default=False,
        help="rewrite tests/golden/*/*.expected.jsonl from the current output (review the diff)",
    )


@pytest.fixture
def regen_golden(request: pytest.FixtureRequest) -> bool:
    """True when golden tests should write their expected files instead of comparing."""
    return bool(request.config.getoption("--regen-golden"))
