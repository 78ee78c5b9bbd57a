"""The ``k3watch`` command line."""

from k3watch.cli import (  # noqa: F401  (each module registers its commands)
    agent,
    certs,
    demo,
    deploy,
    k3s,
    policy,
    remote,
    review,
    rules,
    sample,
    scan,
    server,
    tokens,
    users,
)
from k3watch.cli.app import main

__all__ = ["main"]
