"""``k3watch review``: the scheduled reviews of the security logs and their signed record.

``list`` shows each schedule's status and the reviews, ``show ID`` one review in full,
``export`` the record for auditors (with the chain's verification) and ``verify`` the hash
chain of signed reviews. They read ``reviews.sqlite`` in the server's data directory (safe
while the server runs); reviews are opened and signed through the API or the web UI.

Exit status: 0 done, 1 the chain of signed reviews is broken, 2 usage errors.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.table import Table

from k3watch.cli.app import main
from k3watch.cli.common import (
    exit_usage,
    server_files,
    server_files_options,
    stderr_console,
    utc_minute,
    write_json,
)
from k3watch.cli.review_report import report
from k3watch.errors import UsageError

if TYPE_CHECKING:
    from k3watch.review.signoff_model import Review
    from k3watch.review.store import ReviewStore


@main.group(name="review")
def review_group() -> None:
    """Scheduled reviews of the security logs: status, signed records, export, verification."""


review_group.add_command(report)


@review_group.command(name="list")
@server_files_options
@click.option("--schedule", default=None, help="Only the reviews of this schedule.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def review_list(
    config_path: Path | None, data_dir: Path | None, schedule: str | None, limit: int, fmt: str
) -> None:
    """Each schedule (last signed period, next due time, overdue periods), then the reviews,
    newest period first."""
    with _store(config_path, data_dir) as store:
        statuses = store.status()
        reviews = store.list(schedule=schedule, limit=limit)
    if fmt == "json":
        write_json(
            {
                "schedules": [s.to_dict() for s in statuses],
                "reviews": [_summary(r) for r in reviews],
            }
        )
        return
    console = Console(highlight=False, emoji=False)
    table = Table(title="Schedules", caption="times in UTC")
    for column in ("Schedule", "Period", "Last signed", "Current", "Next due", "Overdue"):
        table.add_column(column)
    for status in statuses:
        overdue = ", ".join(p.label for p in status.overdue)
        table.add_row(
            status.schedule.name,
            status.schedule.cadence.value,
            status.last_signed.label if status.last_signed else "none",
            status.current.label,
            utc_minute(status.next_due),
            f"[red]{overdue}[/]" if overdue else "no",
        )
    console.print(table)
    if not reviews:
        console.print("no reviews yet", markup=False)
        return
    table = Table(title="Reviews")
    for column in ("ID", "Schedule", "Period", "State", "Items", "Findings", "Signed by"):
        table.add_column(column)
    table.add_column("Signed at")
    for review in reviews:
        summary = _summary(review)
        table.add_row(
            str(review.id),
            review.schedule,
            review.period,
            review.state,
            str(summary["items"]),
            str(len(review.findings)),
            review.signoff.reviewer if review.signoff else "",
            utc_minute(review.signoff.at) if review.signoff else "",
        )
    console.print(table)


@review_group.command(name="show")
@click.argument("review_id", type=int)
@server_files_options
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def review_show(review_id: int, config_path: Path | None, data_dir: Path | None, fmt: str) -> None:
    """The whole review REVIEW_ID: checklist, findings, history, sign-off and hash."""
    with _store(config_path, data_dir) as store:
        review = store.get(review_id)
    if review is None:
        exit_usage(UsageError(f"no review {review_id}", hint="'k3watch review list' shows them"))
    if fmt == "json":
        write_json(review.to_dict())
        return
    from k3watch.review.signoff_export import markdown_review

    click.echo(markdown_review(review.to_dict()), nl=False)


@review_group.command(name="export")
@server_files_options
@click.option(
    "--format", "fmt", type=click.Choice(["json", "md", "csv"]), default="json", show_default=True
)
@click.option(
    "--since",
    default=None,
    metavar="WHEN",
    help="Only reviews of periods ending after WHEN: a date, an RFC 3339 time or a duration "
    "ago (90d).",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write to this file instead of standard output.",
)
def review_export(
    config_path: Path | None,
    data_dir: Path | None,
    fmt: str,
    since: str | None,
    output: Path | None,
) -> None:
    """The review record for auditors: schedules, every review with its checklist, findings,
    sign-off and hash, and the verification of the chain (exit 1 when it is broken)."""
    from k3watch.review.signoff_export import build_export, render_export

    start = _since(since)
    with _store(config_path, data_dir) as store:
        record = build_export(store, since=start)
    body = render_export(record, fmt)
    if output is None:
        sys.stdout.buffer.write(body)
    else:
        try:
            output.write_bytes(body)
        except OSError as exc:
            exit_usage(UsageError(f"cannot write {output}: {exc.strerror or exc}"))
        stderr_console().print(
            f"wrote {len(record['reviews'])} review(s) to {output}", markup=False
        )
    if not record["verification"]["ok"]:
        stderr_console().print(f"error: {record['verification']['summary']}", markup=False)
        sys.exit(1)


@review_group.command(name="verify")
@server_files_options
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def review_verify(config_path: Path | None, data_dir: Path | None, fmt: str) -> None:
    """Recompute the hash chain of signed reviews; name the first one altered, removed or
    reordered. Exit code 1 when the chain is broken. Safe while the server runs."""
    with _store(config_path, data_dir) as store:
        check = store.verify()
    if fmt == "json":
        write_json(check.to_dict())
    else:
        click.echo(check.summary())
    if not check.ok:
        sys.exit(1)


def _store(config_path: Path | None, data_dir: Path | None) -> ReviewStore:
    from k3watch.review.store import ReviewStore, review_path

    config, directory = server_files(config_path, data_dir)
    try:
        return ReviewStore(review_path(directory), config.reviews.resolved(), readonly=True)
    except UsageError as exc:
        exit_usage(exc)


def _summary(review: Review) -> dict[str, object]:
    settled = sum(1 for i in review.items if i.state != "pending")
    issues = sum(1 for i in review.items if i.state == "issue")
    out: dict[str, object] = {
        "id": review.id,
        "schedule": review.schedule,
        "period": review.period,
        "state": review.state,
        "items": f"{settled}/{len(review.items)}" + (f" ({issues} issue)" if issues else ""),
        "findings": len(review.findings),
        "opened_by": review.opened_by,
    }
    if review.signoff is not None:
        out |= {
            "signed_by": review.signoff.reviewer,
            "signed_at": utc_minute(review.signoff.at),
            "hash": review.signoff.hash,
        }
    return out


def _since(text: str | None) -> float | None:
    from k3watch.timespec import parse_instant

    try:
        return parse_instant(text, time.time(), "--since")
    except UsageError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
