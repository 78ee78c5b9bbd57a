"""``k3watch policy``: generate, lint, simulate and check the coverage of audit policies.

Exit status: 0 fine, 1 error-level findings (lint) or blind spots (coverage), 2 usage errors
(unknown profile, unreadable file, a policy the API server would refuse where one is needed).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.table import Table

from k3watch.cli.app import main
from k3watch.cli.common import (
    load_selected_rules,
    read_config,
    report_rule_problems,
    rule_options,
    stderr_console,
    write_json,
)
from k3watch.errors import InputError
from k3watch.policy.model import Policy

if TYPE_CHECKING:
    from k3watch.policy.simulate import Simulation

FORMATS = click.Choice(["text", "json"])
PROFILE_NAMES = ("minimal", "recommended", "forensic")


@main.group(name="policy")
def policy_group() -> None:
    """Audit policies: generate, lint, simulate on real events, check rule coverage."""


@policy_group.command(name="generate")
@click.option(
    "--profile",
    type=click.Choice(PROFILE_NAMES),
    default="recommended",
    show_default=True,
    help="Which policy to write.",
)
@click.option(
    "--webhook",
    metavar="URL",
    default=None,
    help="The audit webhook the API server also sends to (noted in the header; the "
    "API server applies one policy to every backend).",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the policy to this file instead of standard output.",
)
def policy_generate(profile: str, webhook: str | None, output: Path | None) -> None:
    """Print an audit.k8s.io/v1 Policy for K3s, each rule commented."""
    from k3watch.policy.profiles import ProfileError, generate_policy

    try:
        text = generate_policy(profile, webhook)
    except ProfileError as exc:
        stderr_console().print(f"error: {exc}", markup=False)
        sys.exit(2)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        stderr_console().print(f"wrote the {profile} policy to {output}", markup=False)


@policy_group.command(name="lint")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=FORMATS, default="text", show_default=True)
def policy_lint(path: Path, fmt: str) -> None:
    """Check a policy as the API server reads it, and for known mistakes.

    Errors: what the API server refuses, secret values reachable in the log, requests no rule
    logs. Exit status 1 when there is an error.
    """
    from k3watch.policy.lint import lint_policy_text

    findings = lint_policy_text(_read(path), str(path))
    if fmt == "json":
        write_json([f.to_dict() for f in findings])
    else:
        console = Console(highlight=False, soft_wrap=True)
        for finding in findings:
            style = {"error": "red", "warning": "yellow"}.get(finding.severity, "dim")
            console.print(f"[{style}]{finding.severity}[/]", end=" ", markup=True)
            console.print(str(finding).replace(f" {finding.severity}: ", " ", 1), markup=False)
        counts = {s: sum(f.severity == s for f in findings) for s in ("error", "warning", "info")}
        console.print(
            f"{path}: {counts['error']} errors, {counts['warning']} warnings, "
            f"{counts['info']} notes",
            markup=False,
        )
    if any(f.severity == "error" for f in findings):
        sys.exit(1)


@policy_group.command(name="simulate")
@click.argument("policy")
@click.argument("events", nargs=-1, required=True)
@click.option("--format", "fmt", type=FORMATS, default="text", show_default=True)
def policy_simulate(policy: str, events: tuple[str, ...], fmt: str) -> None:
    """Apply POLICY (a file or a profile name) to audit EVENTS and report what each rule keeps.

    EVENTS are audit logs as 'k3watch scan' reads them (files, directories, '-', gzip).
    """
    from k3watch.policy.simulate import simulate_files

    loaded = _load_policy(policy)
    result = simulate_files([loaded], events, _report_input_error)[0]
    if fmt == "json":
        write_json(result.to_dict())
        return
    table = Table(title=f"{loaded.source}: {result.events:,} events", expand=False)
    for name in ("Rule", "Line", "Level", "Kept", "Dropped", "Stage omitted", "Kept MB"):
        table.add_column(
            name,
            justify="left" if name in ("Rule", "Level") else "right",
            min_width=15 if name == "Level" else None,
        )
    for tally in result.tallies:
        if tally.index is None and not (tally.kept or tally.dropped or tally.stage_omitted):
            continue
        label = f"rules[{tally.index}]" if tally.index is not None else "no rule"
        table.add_row(
            label,
            str(tally.line or ""),
            tally.level,
            f"{tally.kept:,}",
            f"{tally.dropped:,}",
            f"{tally.stage_omitted:,}",
            f"{tally.kept_bytes / 1e6:.2f}",
        )
    console = Console(highlight=False)
    console.print(table)
    console.print(_summary(result), markup=False)


@policy_group.command(name="volume")
@click.argument("events", nargs=-1, required=True)
@click.option(
    "--profile",
    "profiles",
    multiple=True,
    type=click.Choice(PROFILE_NAMES),
    help="A profile to estimate (repeatable; default: all three).",
)
@click.option(
    "--policy",
    "policy_files",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="A policy file to estimate beside the profiles (repeatable).",
)
@click.option("--format", "fmt", type=FORMATS, default="text", show_default=True)
def policy_volume(
    events: tuple[str, ...], profiles: tuple[str, ...], policy_files: tuple[Path, ...], fmt: str
) -> None:
    """Estimate events and bytes per hour each policy would keep from the EVENTS sample."""
    from k3watch.policy.simulate import simulate_files

    names = list(profiles) or ([] if policy_files else list(PROFILE_NAMES))
    policies = [_load_policy(n) for n in names] + [_load_policy(str(p)) for p in policy_files]
    results = simulate_files(policies, events, _report_input_error)
    if fmt == "json":
        write_json([r.to_dict() for r in results])
        return
    sample = results[0]
    hours = sample.hours
    span = f"{hours:.1f} hours" if hours else "under a second"
    table = Table(
        title=f"{sample.events:,} events over {span} ({sample.input_bytes / 1e6:.1f} MB as read)"
    )
    for name in ("Policy", "Kept", "Share", "Events/hour", "MB/hour (est.)", "Upgraded"):
        table.add_column(name, justify="left" if name == "Policy" else "right")
    for result in results:
        share = result.kept / result.events if result.events else 0.0
        per_hour = result.per_hour(result.kept)
        size = result.per_hour(result.kept_bytes)
        table.add_row(
            result.source,
            f"{result.kept:,}",
            f"{share:.0%}",
            f"{per_hour:,.0f}" if per_hour is not None else "—",
            f"{size / 1e6:.2f}" if size is not None else "—",
            f"{result.upgraded:,}",
        )
    console = Console(highlight=False)
    console.print(table)
    if any(r.upgraded for r in results):
        console.print(
            "Upgraded: events a policy keeps at a higher level than the sample "
            "recorded; their bodies are not in the sample, so sizes are low "
            "estimates.",
            markup=False,
        )


@policy_group.command(name="coverage")
@click.argument("policy")
@rule_options
@click.option("--format", "fmt", type=FORMATS, default="text", show_default=True)
def policy_coverage(
    policy: str,
    config_path: Path | None,
    rule_paths: tuple[Path, ...],
    no_builtin: bool,
    pipelines: tuple[Path, ...],
    placeholders: tuple[str, ...],
    fmt: str,
) -> None:
    """List the detection rules POLICY (a file or a profile name) blinds, and what each misses.

    Exit status 1 when a rule is blinded (gaps that only a credential-bearing body would close
    are reported as accepted and do not count).
    """
    from k3watch.policy.coverage import blinded_rules, coverage

    loaded = _load_policy(policy)
    config = read_config(config_path)
    ruleset = load_selected_rules(rule_paths, no_builtin, pipelines, placeholders, config)
    report_rule_problems(ruleset, stderr_console())
    spots = coverage(loaded, ruleset)
    if fmt == "json":
        write_json([s.to_dict() for s in spots])
    else:
        console = Console(highlight=False, soft_wrap=True)
        current = None
        for spot in spots:
            if spot.title != current:
                current = spot.title
                style = "dim" if spot.accepted else "red"
                console.print(
                    f"[{style}]{spot.title}[/] ({spot.kind}, {spot.rule_id[:8]})", markup=True
                )
            console.print(f"  {spot.severity}: {spot.message}", markup=False)
        blind = blinded_rules(spots)
        accepted = [t for t in blinded_rules(spots, accepted=True) if t not in blind]
        console.print(
            f"{loaded.source}: {len(ruleset)} rules, {len(blind)} blinded"
            + (f", {len(accepted)} with accepted gaps" if accepted else ""),
            markup=False,
        )
    if any(not s.accepted for s in spots):
        sys.exit(1)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        stderr_console().print(f"error: cannot read {path}: {exc}", markup=False)
        sys.exit(2)


def _load_policy(name: str) -> Policy:
    """A policy file, or a profile name when no such file exists; refused policies end the
    command (status 2) with the API server's reasons."""
    from k3watch.policy.model import PolicyError, parse_policy
    from k3watch.policy.profiles import generate_policy

    path = Path(name)
    if not path.exists() and name in PROFILE_NAMES:
        return parse_policy(generate_policy(name), name)
    try:
        return parse_policy(_read(path), name)
    except PolicyError as exc:
        err = stderr_console()
        for finding in exc.findings:
            if finding.severity == "error":
                err.print(f"error: {finding}", markup=False)
        err.print(
            f"{name}: the API server would refuse this policy (see 'k3watch policy lint')",
            markup=False,
        )
        sys.exit(2)


def _report_input_error(error: InputError) -> None:
    stderr_console().print(f"warning: {error}", markup=False)


def _summary(result: Simulation) -> str:
    kept = result.kept
    share = kept / result.events if result.events else 0.0
    text = (
        f"kept {kept:,} of {result.events:,} events ({share:.0%}), "
        f"{result.kept_bytes / 1e6:.2f} of {result.input_bytes / 1e6:.2f} MB"
    )
    per_hour = result.per_hour(kept)
    if per_hour is not None:
        text += f"; {per_hour:,.0f} events/hour over {result.hours:.1f} hours"
    levels = ", ".join(f"{n:,} at {lv}" for lv, n in sorted(result.levels.items()))
    if levels:
        text += f"; {levels}"
    if result.upgraded:
        text += (
            f"; {result.upgraded:,} kept at a higher level than recorded (bodies not in the input)"
        )
    return text
