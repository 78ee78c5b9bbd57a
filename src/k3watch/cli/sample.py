"""``k3watch sample``: generated audit logs for demos, tests and benchmarks."""

from __future__ import annotations

from pathlib import Path

import click

from k3watch.cli.app import main
from k3watch.cli.common import stderr_console


@main.group(name="sample")
def sample_group() -> None:
    """Sample data: a realistic K3s audit stream with a few attacks in it."""


@sample_group.command(name="generate")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Where to write the JSON-lines audit log ('.gz' compresses).",
)
@click.option(
    "--days",
    default=8.0,
    show_default=True,
    help="Days of activity; attacks happen on the last day.",
)
@click.option("--seed", default=7, show_default=True, help="Random seed (same seed, same log).")
@click.option("--scale", default=1.0, show_default=True, help="Multiplier for background traffic.")
@click.option("--no-attacks", is_flag=True, help="Only normal cluster activity.")
def sample_generate(out: Path, days: float, seed: int, scale: float, no_attacks: bool) -> None:
    """Write a generated K3s audit log."""
    from k3watch.sample import write_sample

    info = write_sample(out, seed=seed, days=days, scale=scale, attacks=not no_attacks)
    stderr_console().print(
        f"wrote {info.events:,} events ({info.bytes / 1e6:.1f} MB, {info.first} to {info.last}, "
        f"{info.attack_total} from attack scenarios) to {out}",
        highlight=False,
    )
