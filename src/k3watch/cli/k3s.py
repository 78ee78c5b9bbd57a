"""``k3watch k3s``: set up API-server audit logging on a K3s server node, and check it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from k3watch.cli.app import main
from k3watch.cli.common import exit_usage, stderr_console, write_json
from k3watch.errors import UsageError

if TYPE_CHECKING:
    from k3watch.policy.k3s.setup import Plan

_ROOT_HELP = "Directory standing in for / (a copy of a node's files, or a test tree)."


@main.group(name="k3s")
def k3s_group() -> None:
    """Audit logging on K3s: write the policy and flags (setup), verify a node (check)."""


@k3s_group.command(name="setup")
@click.option(
    "--root",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("/"),
    show_default=True,
    help=_ROOT_HELP,
)
@click.option(
    "--profile",
    type=click.Choice(["minimal", "recommended", "forensic"]),
    default="recommended",
    show_default=True,
    help="Audit policy profile (see `k3watch policy generate`).",
)
@click.option(
    "--webhook",
    metavar="URL",
    default=None,
    help="Also send events to this audit webhook (an address of this host, not a ClusterIP).",
)
@click.option(
    "--webhook-token-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="A file holding the token the API server sends to the webhook (the agent's "
    "webhook source requires one); written into the webhook kubeconfig, never shown.",
)
@click.option("--apply", "apply_", is_flag=True, help="Write the files (default: show a diff).")
def k3s_setup(
    root: Path, profile: str, webhook: str | None, webhook_token_file: Path | None, apply_: bool
) -> None:
    """Write the audit policy, log directory and config.yaml.d drop-in; never restarts K3s.

    Without --apply, prints a unified diff of every file it would create or change. With it,
    validates the policy as `k3watch policy lint` does, writes each file atomically and keeps a
    .bak.<timestamp> copy of every file it replaces. Running it twice changes nothing.
    """
    from k3watch.policy.k3s.layout import Layout
    from k3watch.policy.k3s.setup import next_steps, plan_setup

    token = None
    if webhook_token_file is not None:
        try:
            token = webhook_token_file.read_text().strip()
        except OSError as exc:
            exit_usage(UsageError(f"cannot read {webhook_token_file}: {exc.strerror or exc}"))
        if not token:
            exit_usage(UsageError(f"{webhook_token_file} is empty"))
    plan = plan_setup(Layout(root), profile, webhook, token)
    for finding in plan.lint:
        if finding.severity != "error":
            click.echo(f"# policy lint {finding.severity}: {finding.text}")
    present_plan(
        plan,
        root,
        apply_,
        done="the audit set-up is already in place",
        steps=next_steps(plan),
    )


def present_plan(plan: Plan, root: Path, apply_: bool, *, done: str, steps: list[str]) -> None:
    """Show a set-up plan as a diff (or write it with ``apply_``), then the next steps; exit 1
    when it is refused or would leave the audit flags out of force. Shared by ``k3s setup``
    and ``deploy install``."""
    from k3watch.policy.k3s.setup import apply_plan

    err = stderr_console()
    if root.resolve() != Path("/"):
        click.echo(f"# root: {root} (paths below are as K3s sees them)")
    for conflict in plan.conflicts:
        colour = "red" if conflict.severity == "error" else "yellow"
        err.print(f"[{colour}]{conflict.severity}[/]: {conflict.message}", highlight=False)
    if plan.refusals:
        for refusal in plan.refusals:
            err.print(f"[red]refused[/]: {refusal}", highlight=False)
        err.print("nothing written", highlight=False)
        sys.exit(1)
    pending = plan.pending
    if not pending:
        click.echo(f"nothing to change: {done}")
    elif not apply_:
        for change in pending:
            click.echo(f"# {change.describe()}")
            diff = change.diff()
            if diff:
                click.echo(diff, nl=not diff.endswith("\n"))
        click.echo("# dry run: nothing written; add --apply to write these changes")
    else:
        for line in apply_plan(plan):
            click.echo(f"done: {line}")
    if apply_ or not pending:
        click.echo("")
        click.echo("Next steps:")
        for number, step in enumerate(steps, 1):
            click.echo(f"  {number}. {step}")
    if not plan.effective:
        err.print(
            "[red]the audit flags would not be in force after a restart: fix the errors above[/]",
            highlight=False,
        )
        sys.exit(1)


@k3s_group.command(name="check")
@click.option(
    "--root",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("/"),
    show_default=True,
    help=_ROOT_HELP,
)
@click.option(
    "--journal-file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="Read the 'Running kube-apiserver' line from this journal file (journalctl --file).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "junit"]),
    default="text",
    show_default=True,
)
def k3s_check(root: Path, journal_file: Path | None, fmt: str) -> None:
    """Check a K3s server's audit logging: CIS 1.2.16-1.2.19 and 3.2.1-3.2.2, and more.

    Reads config.yaml and config.yaml.d/ (merged as K3s merges them), the running server's
    command line and its last 'Running kube-apiserver' journal line; reports where each value
    comes from, the policy's lint findings and blinded rules, and file permissions. Exits 1
    when a check fails.
    """
    from k3watch.policy.k3s.check import run_check
    from k3watch.policy.k3s.layout import Layout
    from k3watch.policy.k3s.report import to_json, to_junit, to_text

    report = run_check(Layout(root), journal_file)
    if fmt == "json":
        write_json(to_json(report))
    elif fmt == "junit":
        click.echo(to_junit(report), nl=False)
    else:
        click.echo(to_text(report), nl=False)
    if report.failed:
        sys.exit(1)
