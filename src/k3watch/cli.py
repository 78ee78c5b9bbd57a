"""The ``k3watch`` command line."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson
from click.core import ParameterSource
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from k3watch import __version__
from k3watch.alert import Severity
from k3watch.alerting.sinks import Sink
from k3watch.alerting.sinks.console import TableSink
from k3watch.alerting.sinks.jsonl import JsonLinesSink
from k3watch.config import Config, load_config, parse_size
from k3watch.errors import InputError, UsageError
from k3watch.rules.extension import parse_duration
from k3watch.rules.loader import load_rules
from k3watch.rules.model import RuleSet
from k3watch.scan import ScanOptions, ScanResult, scan
from k3watch.sources.files import InputFile

F = TypeVar("F", bound=Callable[..., Any])

LEVELS = [s.label for s in Severity]
PROGRESS_MIN_BYTES = 16 * 1024 * 1024


def _stderr() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def rule_options(func: F) -> F:
    """Options every command that loads rules shares."""
    func = click.option(
        "--config",
        "config_path",
        type=click.Path(path_type=Path, dir_okay=False),
        envvar="K3WATCH_CONFIG",
        default=None,
        help="Configuration file (YAML); also read from $K3WATCH_CONFIG. Options given here win.",
    )(func)
    func = click.option(
        "--placeholder",
        "placeholders",
        multiple=True,
        metavar="NAME=V1[,V2...]",
        help="Values for a %NAME% placeholder used with the 'expand' modifier.",
    )(func)
    func = click.option(
        "--pipeline",
        "pipelines",
        multiple=True,
        type=click.Path(path_type=Path),
        help="A pySigma processing pipeline (YAML) to apply to the rules; repeatable.",
    )(func)
    func = click.option(
        "--no-builtin", is_flag=True, help="Do not load the built-in rule library."
    )(func)
    return click.option(
        "--rules",
        "rule_paths",
        multiple=True,
        type=click.Path(path_type=Path),
        help="A Sigma rule file or directory (rules, filters, correlations); repeatable.",
    )(func)


def _config(path: Path | None) -> Config:
    """The configuration file's settings (defaults without one); a bad file ends the command."""
    if path is None:
        return Config()
    try:
        return load_config(path)
    except UsageError as exc:
        _stderr().print(f"error: {exc}", highlight=False)
        sys.exit(2)


def _load(
    rule_paths: tuple[Path, ...],
    no_builtin: bool,
    pipelines: tuple[Path, ...],
    placeholders: tuple[str, ...],
    config: Config,
) -> RuleSet:
    """The rules the configuration and the options select (options add to the file's)."""
    settings = config.rules
    values: dict[str, list[str]] = {k: list(v) for k, v in settings.placeholders.items()}
    for item in placeholders:
        name, sep, rest = item.partition("=")
        if not sep or not name:
            raise click.UsageError(f"--placeholder {item!r}: expected NAME=VALUE[,VALUE...]")
        values.setdefault(name.strip(), []).extend(v for v in rest.split(",") if v)
    return load_rules(
        [*settings.paths, *rule_paths],
        builtin=settings.builtin and not no_builtin,
        pipelines=[*settings.pipelines, *pipelines],
        placeholders=values,
        documents=config.filter_documents(),
    )


def _given(name: str) -> bool:
    """Whether the option ``name`` was set on the command line (not left at its default)."""
    source = click.get_current_context().get_parameter_source(name)
    return source is not None and source is not ParameterSource.DEFAULT


def _report_rule_problems(ruleset: RuleSet, console: Console) -> None:
    for error in ruleset.errors:
        console.print(f"[red]rule error[/]: {error}", markup=True, highlight=False)
    for warning in ruleset.warnings:
        console.print(f"[yellow]rule warning[/]: {warning}", markup=True, highlight=False)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="k3watch")
def main() -> None:
    """Security monitoring and logging for K3s clusters."""


# --- scan ---


@main.command(name="scan")
@click.argument("paths", nargs=-1, required=True)
@rule_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Alerts as a table, or JSON lines (the alert contract).",
)
@click.option(
    "--min-severity",
    type=click.Choice(LEVELS),
    default="informational",
    show_default=True,
    help="Show alerts at or above this severity.",
)
@click.option(
    "--fail-on",
    type=click.Choice(LEVELS),
    default=None,
    help="Exit with status 1 when an alert reaches this severity.",
)
@click.option(
    "--suppress",
    default="10m",
    show_default=True,
    help="Merge repeats of a rule for the same group within this window (event time).",
)
@click.option(
    "--baseline",
    type=click.Path(path_type=Path),
    default=None,
    help="First-seen baseline file (SQLite), kept across runs. Default: in memory.",
)
@click.option(
    "--max-event-size",
    default="4MiB",
    show_default=True,
    help="Events above this size keep their metadata but lose their bodies.",
)
@click.option(
    "--max-diagnostics",
    default=50,
    show_default=True,
    help="Print at most this many input diagnostics (all are counted).",
)
@click.option("--quiet", "-q", is_flag=True, help="No summary on stderr.")
def scan_command(
    paths: tuple[str, ...],
    config_path: Path | None,
    rule_paths: tuple[Path, ...],
    no_builtin: bool,
    pipelines: tuple[Path, ...],
    placeholders: tuple[str, ...],
    fmt: str,
    min_severity: str,
    fail_on: str | None,
    suppress: str,
    baseline: Path | None,
    max_event_size: str,
    max_diagnostics: int,
    quiet: bool,
) -> None:
    """Scan audit logs (files, directories, '-' for stdin) with the rules and print alerts.

    Files may be JSON lines, EventList batches, JSON arrays or pretty-printed events, plain or
    gzip-compressed; a directory is read oldest rotation first.
    """
    err = _stderr()
    config = _config(config_path)
    defaults = config.scan
    suppress = suppress if _given("suppress") else defaults.suppress
    min_severity = min_severity if _given("min_severity") else defaults.min_severity
    max_event_size = max_event_size if _given("max_event_size") else defaults.max_event_size
    if baseline is None and defaults.baseline is not None:
        baseline = Path(defaults.baseline)
    try:
        window = parse_duration(suppress, "--suppress")
        max_event_bytes = parse_size(max_event_size, "--max-event-size")
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    ruleset = _load(rule_paths, no_builtin, pipelines, placeholders, config)
    _report_rule_problems(ruleset, err)
    if not len(ruleset):
        err.print("no rules loaded: nothing to scan with", highlight=False)
        sys.exit(2)

    out = Console(highlight=False, soft_wrap=False)
    sink: Sink = JsonLinesSink(sys.stdout.buffer) if fmt == "json" else TableSink(out)
    shown = 0
    hidden = 0

    def on_error(error: InputError) -> None:
        nonlocal shown, hidden
        if shown < max_diagnostics:
            err.print(f"[yellow]warning[/]: {error}", markup=True, highlight=False)
            shown += 1
        else:
            hidden += 1

    options = ScanOptions(
        suppress_window=window,
        min_severity=Severity.parse(min_severity),
        max_event_bytes=max_event_bytes,
        baseline=baseline,
    )
    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )
    task = progress.add_task("scanning", total=None, visible=False)

    def on_inputs(inputs: list[InputFile]) -> None:
        total = sum(i.size or 0 for i in inputs)
        if err.is_terminal and not quiet and total >= PROGRESS_MIN_BYTES:
            progress.update(task, total=total, visible=True)
            progress.start()

    def on_progress(amount: int) -> None:
        progress.advance(task, amount)

    try:
        result = scan(
            paths,
            ruleset,
            options,
            on_alert=sink.emit,
            on_error=on_error,
            on_inputs=on_inputs,
            on_progress=on_progress,
        )
    finally:
        progress.stop()
    sink.close()
    if hidden:
        err.print(f"… {hidden} more input diagnostics not shown", highlight=False)
    if not quiet:
        _print_summary(err, result, ruleset)
    if result.inputs_read == 0:
        sys.exit(2)
    if (
        fail_on is not None
        and result.highest is not None
        and result.highest >= Severity.parse(fail_on)
    ):
        sys.exit(1)


def _print_summary(console: Console, result: ScanResult, ruleset: RuleSet) -> None:
    errors = sum(result.parse_errors.values())
    detail = ", ".join(f"{k}: {v}" for k, v in sorted(result.parse_errors.items()))
    by_level = (
        ", ".join(f"{result.alerts[s]} {s.label}" for s in sorted(result.alerts, reverse=True))
        or "none"
    )
    lines = [
        f"read {result.events:,} events from {result.inputs_read} of {result.inputs} inputs "
        f"in {result.seconds:.2f} s ({result.events_per_second:,.0f} events/s)",
        f"parse errors: {errors}" + (f" ({detail})" if detail else ""),
        f"alerts: {by_level}"
        + (
            f" ({result.alerts_below_threshold} below --min-severity)"
            if result.alerts_below_threshold
            else ""
        ),
        f"rules: {len(ruleset)} loaded, {len(ruleset.errors)} with errors, "
        f"{ruleset.filters} filters",
    ]
    for line in lines:
        console.print(line, highlight=False)


# --- rules ---


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
            config = _config(config_path)
            action(_load(rule_paths, no_builtin, pipelines, placeholders, config), fmt, **own)

        for option in options:  # on a Command, each option is appended to its parameters
            command = option(command)
        return command

    return decorate


RulesAction = Callable[..., None]  # (ruleset, fmt, **own options)


def _write_json(payload: object) -> None:
    sys.stdout.buffer.write(orjson.dumps(payload, option=orjson.OPT_INDENT_2) + b"\n")


@rules_command("list", ("table", "json", "markdown"))
def rules_list(ruleset: RuleSet, fmt: str) -> None:
    """List the loaded rules."""
    from k3watch.rules.describe import rule_table, rules_as_dicts, rules_markdown

    _report_rule_problems(ruleset, _stderr())
    if fmt == "json":
        _write_json(rules_as_dicts(ruleset))
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
        _write_json([f.to_dict() for f in findings])
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

    _report_rule_problems(ruleset, _stderr())
    results = run_rule_tests(ruleset)
    if fmt == "json":
        _write_json([r.to_dict() for r in results])
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

    err = _stderr()
    _report_rule_problems(ruleset, err)
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


# --- sample ---


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
    _stderr().print(
        f"wrote {info.events:,} events ({info.bytes / 1e6:.1f} MB, {info.first} to {info.last}, "
        f"{info.attack_total} from attack scenarios) to {out}",
        highlight=False,
    )
