"""``k3watch scan``: audit logs in, alerts out, offline."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from k3watch.alert import Severity
from k3watch.alerting.sinks import Sink
from k3watch.alerting.sinks.console import TableSink
from k3watch.alerting.sinks.jsonl import JsonLinesSink
from k3watch.cli.app import main
from k3watch.cli.common import (
    LEVELS,
    given,
    load_selected_rules,
    read_config,
    report_rule_problems,
    rule_options,
    stderr_console,
)
from k3watch.config import parse_size
from k3watch.errors import InputError
from k3watch.rules.extension import parse_duration
from k3watch.rules.model import RuleSet
from k3watch.scan import ScanOptions, ScanResult, scan
from k3watch.sources.files import InputFile

PROGRESS_MIN_BYTES = 16 * 1024 * 1024


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
    err = stderr_console()
    config = read_config(config_path)
    defaults = config.scan
    suppress = suppress if given("suppress") else defaults.suppress
    min_severity = min_severity if given("min_severity") else defaults.min_severity
    max_event_size = max_event_size if given("max_event_size") else defaults.max_event_size
    if baseline is None and defaults.baseline is not None:
        baseline = Path(defaults.baseline)
    try:
        window = parse_duration(suppress, "--suppress")
        max_event_bytes = parse_size(max_event_size, "--max-event-size")
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    ruleset = load_selected_rules(rule_paths, no_builtin, pipelines, placeholders, config)
    report_rule_problems(ruleset, err)
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
