"""The ``k3watch`` command line."""

from k3watch.cli import k3s, policy, rules, sample, scan  # noqa: F401  (each module registers its commands)
from k3watch.cli.app import main

__all__ = ["main"]
