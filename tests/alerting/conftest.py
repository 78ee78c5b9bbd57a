"""Fixtures of the alert delivery tests."""

from __future__ import annotations

import pytest
from tests.alerting.helpers import Pki, make_pki


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA, server and client certificates, shared by every TLS test."""
    return make_pki(tmp_path_factory.mktemp("pki"))
