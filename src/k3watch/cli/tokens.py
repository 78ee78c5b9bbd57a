"""``k3watch token``: create, list and revoke the server's API tokens.

The tokens live in ``tokens.sqlite`` in the data directory. Exit status: 0 done, 2 usage
errors (unknown token, a name already in use, a bad role or expiry).
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
    data_dir_option,
    exit_usage,
    stderr_console,
    utc_iso,
    utc_minute,
    write_json,
)
from k3watch.errors import UsageError

if TYPE_CHECKING:
    from k3watch.server.tokens import TokenInfo, TokenStore

TOKEN_FILE = "tokens.sqlite"
ROLES = ("agent", "viewer", "analyst", "admin")

DATA_DIR_OPTION = data_dir_option(TOKEN_FILE)


@main.group(name="token")
def token_group() -> None:
    """API tokens: create one per agent and per person, list them, revoke them."""


@token_group.command(name="create")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(ROLES, case_sensitive=False),
    required=True,
    help="agent: send events; viewer: read; analyst: read, triage, silences; admin: all.",
)
@click.option(
    "--expires",
    metavar="DURATION",
    default=None,
    help="Expire after this long (30d, 12h, 1w…). Default: never.",
)
@DATA_DIR_OPTION
def token_create(name: str, role: str, expires: str | None, data_dir: Path) -> None:
    """Create a token NAME and print its secret, once: it cannot be shown again.

    The secret alone goes to standard output (so that a script can capture it), everything
    else to standard error.
    """
    from k3watch.rules.extension import parse_duration
    from k3watch.server.tokens import Role

    expires_at = None
    if expires is not None:
        try:
            seconds = parse_duration(expires, "--expires")
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--expires") from exc
        if seconds <= 0:
            raise click.BadParameter("must be longer than 0s", param_hint="--expires")
        expires_at = time.time() + seconds
    with _store(data_dir) as store:
        try:
            info, secret = store.create(name, Role.parse(role), expires=expires_at)
        except UsageError as exc:
            exit_usage(exc)
    err = stderr_console()
    until = f", expires {utc_minute(info.expires)} UTC" if info.expires is not None else ""
    err.print(f"created token {info.id} ({info.name}, role {info.role.value}{until})", markup=False)
    err.print(
        "[yellow]This is the only time the secret is shown; store it now "
        "(it is not kept, only its hash):[/]",
        markup=True,
    )
    sys.stdout.write(secret + "\n")


@token_group.command(name="list")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@DATA_DIR_OPTION
def token_list(fmt: str, data_dir: Path) -> None:
    """List the tokens (never their secrets), revoked and expired ones included."""
    with _store(data_dir) as store:
        tokens = store.list()
    now = time.time()
    if fmt == "json":
        write_json([_as_dict(t, now) for t in tokens])
        return
    if not tokens:
        stderr_console().print(
            f"no tokens in {data_dir / TOKEN_FILE}; create one with "
            "'k3watch token create NAME --role ROLE'",
            markup=False,
        )
        return
    table = Table(expand=False, caption="times in UTC")
    for column in ("ID", "Name", "Role", "State"):
        table.add_column(column, no_wrap=column != "Name")
    for column in ("Created", "Expires", "Last used"):
        table.add_column(column)
    for token in tokens:
        state = token.state(now)
        style = {"revoked": "red", "expired": "yellow"}.get(state, "")
        table.add_row(
            token.id,
            token.name,
            token.role.value,
            f"[{style}]{state}[/]" if style else state,
            utc_minute(token.created),
            utc_minute(token.expires) if token.expires is not None else "never",
            utc_minute(token.last_used) if token.last_used is not None else "never",
        )
    Console(highlight=False, emoji=False).print(table)


@token_group.command(name="revoke")
@click.argument("id_or_name")
@DATA_DIR_OPTION
def token_revoke(id_or_name: str, data_dir: Path) -> None:
    """Revoke the token with the id (or the name) ID_OR_NAME.

    A running server refuses it within a few seconds.
    """
    with _store(data_dir) as store:
        try:
            info = store.revoke(id_or_name)
        except UsageError as exc:
            exit_usage(exc)
    stderr_console().print(
        f"revoked token {info.id} ({info.name}, role {info.role.value})", markup=False
    )


def _store(data_dir: Path) -> TokenStore:
    from k3watch.server.tokens import TokenStore

    try:
        return TokenStore(data_dir / TOKEN_FILE)
    except UsageError as exc:
        exit_usage(exc)


def _as_dict(token: TokenInfo, now: float) -> dict[str, object]:
    return {
        "id": token.id,
        "name": token.name,
        "role": token.role.value,
        "state": token.state(now),
        "created": utc_iso(token.created),
        "expires": utc_iso(token.expires),
        "last_used": utc_iso(token.last_used),
    }
