"""``k3watch server`` (ingest, detection, storage, delivery, query API) and ``k3watch verify``
(the event store's hash chain)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click
import msgspec

from k3watch.cli.app import main
from k3watch.cli.common import (
    given,
    load_selected_rules,
    read_config,
    report_rule_problems,
    rule_options,
    stderr_console,
    write_json,
)
from k3watch.errors import UsageError


@main.command(name="server")
@rule_options
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="K3WATCH_DATA_DIR",
    default=None,
    help="Where events, alerts and tokens are kept [default: server.data_dir, ./k3watch-data].",
)
@click.option("--listen", default=None, help="host:port [default: server.listen, 127.0.0.1:8443].")
@click.option(
    "--insecure-http",
    is_flag=True,
    help="Serve plain HTTP (loopback or behind a TLS proxy only).",
)
def server_command(
    rule_paths: tuple[Path, ...],
    no_builtin: bool,
    pipelines: tuple[Path, ...],
    placeholders: tuple[str, ...],
    config_path: Path | None,
    data_dir: Path | None,
    listen: str | None,
    insecure_http: bool,
) -> None:
    """Run the k3watch server: agents and the API server's audit webhook send events, rules run
    live, alerts are stored and delivered, and the API answers queries.

    On first start an admin token is created and printed once.
    """
    from k3watch.server.run import listeners, serve_forever
    from k3watch.server.runtime import Runtime, first_admin_token

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    console = stderr_console()
    config = read_config(config_path)
    server = config.server
    if data_dir is not None:
        server = msgspec.structs.replace(server, data_dir=str(data_dir))
    if listen is not None:
        server = msgspec.structs.replace(server, listen=listen)
    if given("insecure_http"):
        server = msgspec.structs.replace(server, insecure_http=True)
    try:
        server.check()
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    config = msgspec.structs.replace(config, server=server)
    ruleset = load_selected_rules(rule_paths, no_builtin, pipelines, placeholders, config)
    report_rule_problems(ruleset, console)
    runtime = Runtime.build(config, ruleset)
    try:
        bound = listeners(runtime)
    except UsageError as exc:
        runtime.stop()
        console.print(f"error: {exc}", highlight=False)
        sys.exit(2)
    secret = first_admin_token(runtime.tokens)
    for listener in bound:
        console.print(f"k3watch {listener.surface} listening on {listener.url}", highlight=False)
    console.print(
        f"{len(ruleset.event_rules)} rules, {len(ruleset.correlations)} correlations; "
        f"data in {server.data_dir}",
        highlight=False,
    )
    if secret is not None:
        console.print(f"admin token (shown once, keep it safe): [bold]{secret}[/]", highlight=False)
    serve_forever(runtime, bound)


@main.command(name="verify")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    envvar="K3WATCH_DATA_DIR",
    default=Path("k3watch-data"),
    show_default=True,
    help="The server's data directory.",
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def verify_command(data_dir: Path, fmt: str) -> None:
    """Recompute the event store's hash chain; name the first batch altered, removed or
    reordered. Exit code 1 when the chain is broken. Safe while the server runs."""
    from k3watch.server.runtime import store_path
    from k3watch.store.sqlite import SqliteStore

    path = store_path(data_dir)
    if not path.exists():
        raise click.UsageError(f"no event store at {path}")
    store = SqliteStore.open_readonly(path)
    try:
        report = store.verify()
    finally:
        store.close()
    if fmt == "json":
        problem = report.problem
        write_json(
            {
                "ok": problem is None,
                "batches": report.batches,
                "events": report.events,
                "pruned": report.pruned,
                "head": report.head,
                "problem": None
                if problem is None
                else {
                    "seq": problem.seq,
                    "batch_id": problem.batch_id,
                    "problem": problem.problem,
                    "detail": problem.detail,
                },
            }
        )
    else:
        out = click.echo
        if report.problem is None:
            out(
                f"ok: {report.batches:,} batches ({report.events:,} events, {report.pruned:,} "
                f"removed by retention) chain intact; head {report.head}"
            )
        else:
            p = report.problem
            out(f"BROKEN at batch {p.seq} ({p.batch_id}): {p.problem}: {p.detail}")
    if report.problem is not None:
        sys.exit(1)
