"""The ``k3watch`` command group; each command lives in its own module of this package."""

from __future__ import annotations

import click

from k3watch import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="k3watch")
def main() -> None:
    """Security monitoring and logging for K3s clusters."""
