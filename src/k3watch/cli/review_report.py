"""``k3watch review report``: the periodic security review report, from the server's store.

The command object ``report`` is attached to the ``review`` group by ``cli.review``. It opens
the store read-only, so it runs while the server does.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from k3watch.cli.common import (
    load_selected_rules,
    report_rule_problems,
    server_files,
    server_files_options,
    stderr_console,
)
from k3watch.errors import UsageError

FORMATS = ("html", "md", "pdf", "json")
"""As ``k3watch.review.render.FORMATS`` (not imported here: it loads Jinja2 and fpdf2)."""


@click.command(name="report")
@click.option(
    "--period",
    default="7d",
    show_default=True,
    help="How long the report covers, ending at --end: 24h, 7d, 30d…",
)
@click.option(
    "--end",
    default=None,
    metavar="TIME",
    help="End of the period: RFC 3339, epoch seconds, 'now' or a duration ago (1d) [default: now].",
)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="html", show_default=True)
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write here [default: standard output; a PDF needs a file].",
)
@server_files_options
@click.option(
    "--min-gap",
    default="10m",
    show_default=True,
    help="Report a node or source silent for at least this long as a gap in the event stream.",
)
@click.option(
    "--limit",
    type=click.IntRange(1, 10_000),
    default=100,
    show_default=True,
    help="Most items listed per section (the counts are complete).",
)
@click.option(
    "--policy",
    default=None,
    metavar="FILE|PROFILE",
    help="The audit policy the API server runs with: list the rules it blinds.",
)
@click.option("--title", default="Security review", show_default=True)
def report(
    period: str,
    end: str | None,
    fmt: str,
    output: Path | None,
    config_path: Path | None,
    data_dir: Path | None,
    min_gap: str,
    limit: int,
    policy: str | None,
    title: str,
) -> None:
    """Write the security review report of a period: alerts and their triage, new identities
    and source IPs, RBAC changes, exec sessions, secrets read by people, denied requests, the
    audit pipeline's health and the rules' health, with charts.

    Safe while the server runs (the store is opened read-only). Exit status 2 on usage errors,
    1 when the store cannot be read.
    """
    from k3watch.review.render import render
    from k3watch.review.report import ReviewOptions, build_report
    from k3watch.server.runtime import store_path
    from k3watch.store.sqlite import SqliteStore
    from k3watch.store.sqlite_schema import StoreFormatError
    from k3watch.timespec import parse_end, parse_period

    err = stderr_console()
    try:
        length = parse_period(period, "--period")
        finish = parse_end(end, time.time(), "--end")
        gap = parse_period(min_gap, "--min-gap")
        options = ReviewOptions(
            start=finish - length,
            end=finish,
            list_limit=limit,
            min_gap=gap,
            policy=policy,
            title=title,
        )
    except (UsageError, ValueError) as exc:
        raise click.UsageError(str(exc)) from None
    if fmt == "pdf" and output is None and sys.stdout.isatty():
        raise click.UsageError("a PDF is binary: give --output FILE (or redirect the output)")
    config, directory = server_files(config_path, data_dir)
    path = store_path(directory)
    if not path.exists():
        raise click.UsageError(f"no event store at {path} (give --data-dir or --config)")
    ruleset = load_selected_rules((), False, (), (), config)
    report_rule_problems(ruleset, err)
    try:
        store = SqliteStore.open_readonly(path)
    except (OSError, StoreFormatError) as exc:
        err.print(f"error: cannot open the event store {path}: {exc}")
        sys.exit(1)
    try:
        built = build_report(store, options, ruleset=ruleset)
    except UsageError as exc:
        raise click.UsageError(str(exc)) from None
    finally:
        store.close()
    data = render(built, fmt)
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    try:
        output.write_bytes(data)
    except OSError as exc:
        err.print(f"error: cannot write {output}: {exc.strerror or exc}")
        sys.exit(1)
    err.print(f"{fmt} report of {_span(options.start, options.end)} written to {output}")


def _span(start: float, end: float) -> str:
    fmt = "%Y-%m-%d %H:%M"
    return f"{time.strftime(fmt, time.gmtime(start))} to {time.strftime(fmt, time.gmtime(end))} UTC"
