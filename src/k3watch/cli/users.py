"""``k3watch user``: the people who log in to the web UI (names, roles, passwords).

The users live in ``users.sqlite`` in the data directory, passwords as argon2id hashes. Exit
status: 0 done, 2 usage errors (unknown user, a name taken, a weak password, a bad role).
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
    data_dir_option,
    exit_usage,
    stderr_console,
    utc_iso,
    utc_minute,
    write_json,
)
from k3watch.errors import UsageError

if TYPE_CHECKING:
    from k3watch.server.users import UserStore

USER_FILE = "users.sqlite"
ROLES = ("viewer", "analyst", "admin")

DATA_DIR_OPTION = data_dir_option(USER_FILE)
PASSWORD_STDIN = click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input instead of asking.",
)


@main.group(name="user")
def user_group() -> None:
    """Web UI users: add them with a role, change passwords and roles, remove them."""


@user_group.command(name="add")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(ROLES, case_sensitive=False),
    required=True,
    help="viewer: read; analyst: read, triage, silences, reviews; admin: all.",
)
@PASSWORD_STDIN
@DATA_DIR_OPTION
def user_add(name: str, role: str, password_stdin: bool, data_dir: Path) -> None:
    """Add the user NAME (the password is asked twice, or read with --password-stdin)."""
    from k3watch.server.tokens import Role

    password = _password(password_stdin)
    with _store(data_dir) as store:
        try:
            info = store.add(name, Role.parse(role), password)
        except UsageError as exc:
            exit_usage(exc)
    stderr_console().print(f"added user {info.name} (role {info.role.value})", markup=False)


@user_group.command(name="passwd")
@click.argument("name")
@PASSWORD_STDIN
@DATA_DIR_OPTION
def user_passwd(name: str, password_stdin: bool, data_dir: Path) -> None:
    """Set a new password for NAME; their open sessions end."""
    password = _password(password_stdin)
    with _store(data_dir) as store:
        try:
            store.set_password(name, password)
        except UsageError as exc:
            exit_usage(exc)
    stderr_console().print(f"changed the password of {name}", markup=False)


@user_group.command(name="role")
@click.argument("name")
@click.argument("role", type=click.Choice(ROLES, case_sensitive=False))
@DATA_DIR_OPTION
def user_role(name: str, role: str, data_dir: Path) -> None:
    """Give NAME another role; their open sessions end."""
    from k3watch.server.tokens import Role

    with _store(data_dir) as store:
        try:
            info = store.set_role(name, Role.parse(role))
        except UsageError as exc:
            exit_usage(exc)
    stderr_console().print(f"{info.name} now has the role {info.role.value}", markup=False)


@user_group.command(name="remove")
@click.argument("name")
@DATA_DIR_OPTION
def user_remove(name: str, data_dir: Path) -> None:
    """Remove NAME; their open sessions end."""
    with _store(data_dir) as store:
        try:
            store.remove(name)
        except UsageError as exc:
            exit_usage(exc)
    stderr_console().print(f"removed user {name}", markup=False)


@user_group.command(name="list")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@DATA_DIR_OPTION
def user_list(fmt: str, data_dir: Path) -> None:
    """List the users and their roles."""
    with _store(data_dir) as store:
        users = store.list()
    if fmt == "json":
        write_json(
            [
                {
                    "name": u.name,
                    "role": u.role.value,
                    "created": utc_iso(u.created),
                    "updated": utc_iso(u.updated),
                }
                for u in users
            ]
        )
        return
    if not users:
        stderr_console().print(
            f"no users in {data_dir / USER_FILE}; add one with 'k3watch user add NAME --role ROLE'",
            markup=False,
        )
        return
    table = Table(expand=False, caption="times in UTC")
    for column in ("Name", "Role", "Created", "Changed"):
        table.add_column(column)
    for user in users:
        table.add_row(
            user.name, user.role.value, utc_minute(user.created), utc_minute(user.updated)
        )
    Console(highlight=False, emoji=False).print(table)


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password: str = click.prompt(
        "Password (12 characters or more)", hide_input=True, confirmation_prompt=True
    )
    return password


def _store(data_dir: Path) -> UserStore:
    from k3watch.server.users import UserStore

    try:
        return UserStore(data_dir / USER_FILE)
    except UsageError as exc:
        exit_usage(exc)
