"""Streams shared by the sample tests (each generated once per session, in well under a second)."""

from __future__ import annotations

from typing import Any

import pytest

from k3watch.sample import generate_tagged_events
from k3watch.sample.engine import Tagged


@pytest.fixture(scope="session")
def two_days() -> list[Tagged]:
    """Two days with attacks on the second: a baseline day, then the attack day."""
    return list(generate_tagged_events(days=2))


@pytest.fixture(scope="session")
def two_quiet_days() -> list[dict[str, Any]]:
    """The same two days with ``attacks=False``."""
    return [event for event, _ in generate_tagged_events(days=2, attacks=False)]
