"""``k3watch rules``: list, lint, test and export the rules."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import orjson
from rich.console import Console

from k3watch.cli.app import main
from k3watch.cli.common import (
    load_selected_rules,
    read_config,
    report_rule_problems,
    rule_options,
    stderr_console,
    write_json,
)
from k3watch.rules.model import RuleSet


@main.group(name="rules")
def rules_group() -> None:
    """List, lint and test Sigma rules."""


def rules_command(
    name: str,
    formats: tuple[str, ...],
    options: tuple[Callable[[click.Command], click.Command], ...] = (),
) -> Callable[[RulesAction], Any]:
    """A ``rules`` subcommand: the shared rule options, ``--format`` (the first format is the
    default) and the command's own ``options``, then the rule set.

    The action receives the rule set, the format and each of its own options by name.
    """

    def decorate(action: RulesAction) -> Any:
        @rules_group.command(name=name, help=action.__doc__)
        @rule_options
        @click.option(
            "--format", "fmt", type=click.Choice(formats), default=formats[0], show_default=True
        )
        def command(
            config_path: Path | None,
            rule_paths: tuple[Path, ...],
            no_builtin: bool,
            pipelines: tuple[Path, ...],
            placeholders: tuple[str, ...],
            fmt: str,
            **own: Any,
        ) -> None:
            config = read_config(config_path)
            action(
                load_selected_rules(rule_paths, no_builtin, pipelines, placeholders, config),
                fmt,
                **own,
            )

        for option in options:  # on a Command, each option is appended to its parameters
            command = option(command)
        return command

    return decorate


RulesAction = Callable[..., None]  # (ruleset, fmt, **own options)


@rules_command("list", ("table", "json", "markdown"))
def rules_list(ruleset: RuleSet, fmt: str) -> None:
    """List the loaded rules."""
    from k3watch.rules.describe import rule_table, rules_as_dicts, rules_markdown

    report_rule_problems(ruleset, stderr_console())
    if fmt == "json":
        write_json(rules_as_dicts(ruleset))
    elif fmt == "markdown":
        sys.stdout.write(rules_markdown(ruleset))
    else:
        Console().print(rule_table(ruleset))
    if ruleset.errors:
        sys.exit(1)


@rules_command("lint", ("table", "json"))
def rules_lint(ruleset: RuleSet, fmt: str) -> None:
    """Check rules: load errors, unknown fields, conditions that can never match, missing tests."""
    from k3watch.rules.lint import lint

    findings = lint(ruleset)
    if fmt == "json":
        write_json([f.to_dict() for f in findings])
    else:
        console = Console(highlight=False)
        for finding in findings:
            style = {"error": "red", "warning": "yellow"}.get(finding.severity, "dim")
            console.print(f"[{style}]{finding.severity}[/]: {finding}", markup=True)
        errors = sum(f.severity == "error" for f in findings)
        console.print(f"{len(ruleset)} rules, {errors} errors, {len(findings) - errors} warnings")
    if any(f.severity == "error" for f in findings):
        sys.exit(1)


@rules_command("test", ("table", "json"))
def rules_test(ruleset: RuleSet, fmt: str) -> None:
    """Run every rule's embedded test events and report pass/fail per rule."""
    from k3watch.rules.testing import run_rule_tests

    report_rule_problems(ruleset, stderr_console())
    results = run_rule_tests(ruleset)
    if fmt == "json":
        write_json([r.to_dict() for r in results])
    else:
        console = Console(highlight=False)
        for result in results:
            mark = "[green]pass[/]" if result.passed else "[red]FAIL[/]"
            console.print(f"{mark} {result.rule.info.title} ({result.summary()})", markup=True)
            for failure in result.failures:
                console.print(f"     {failure}", markup=False)
        failed = sum(not r.passed for r in results)
        console.print(f"{len(results)} rules tested, {failed} failed")
    if ruleset.errors or any(not r.passed for r in results):
        sys.exit(1)


def _check_target(_ctx: click.Context, _param: click.Parameter, name: str) -> str:
    from k3watch.rules.export import ExportError, get_target

    try:
        get_target(name)
    except ExportError as exc:
        raise click.BadParameter(str(exc)) from exc
    return name


@rules_command(
    "export",
    ("text", "json"),
    options=(
        click.option(
            "--target",
            required=True,
            callback=_check_target,
            help="Query language: lucene, esql, eql (Elasticsearch) or loki (LogQL).",
        ),
        click.option(
            "--source",
            default=None,
            help="Where the queries search: an index pattern for esql/eql (default "
            'logs-kubernetes.audit_logs-*), a stream selector for loki (default {job=~".+"}).',
        ),
        click.option(
            "--output",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help="Write the queries to this file instead of standard output.",
        ),
    ),
)
def rules_export(
    ruleset: RuleSet, fmt: str, target: str, source: str | None, output: Path | None
) -> None:
    """Convert the rules into queries for another SIEM through pySigma backends.

    Rules the target cannot express (k3watch's derived fields, first-seen, some correlations)
    are listed on stderr with the reason. Exit status: 0 when at least one rule converted, 1 when
    none did, 2 for a usage error (unknown or uninstalled target, no rules loaded).
    """
    from k3watch.rules.export import export_rules, format_text, summary

    err = stderr_console()
    report_rule_problems(ruleset, err)
    if not len(ruleset):
        err.print("no rules loaded: nothing to export", highlight=False)
        sys.exit(2)
    results = export_rules(ruleset, target, source)
    if fmt == "json":
        data = orjson.dumps([r.to_dict() for r in results], option=orjson.OPT_INDENT_2) + b"\n"
    else:
        data = format_text(results).encode()
    if output is None:
        sys.stdout.buffer.write(data)
    else:
        output.write_bytes(data)
    for result in results:
        if result.skipped_reason is not None:
            err.print(f"skipped: {result.title}: {result.skipped_reason}", markup=False)
    err.print(summary(results), highlight=False)
    if not any(r.skipped_reason is None for r in results):
        sys.exit(1)
