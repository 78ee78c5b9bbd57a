"""``k3watch certs``: a private CA with server and client certificates for TLS and mTLS.

Exit status: 0 written, 2 usage errors (bad names, existing files, a missing CA).
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from k3watch.cli.app import main
from k3watch.cli.common import exit_usage
from k3watch.errors import UsageError

DIR_OPTION = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="The directory the CA and the certificates are (to be) in.",
)


@main.group(name="certs")
def certs_group() -> None:
    """Certificates: a private CA, the server's certificate, one per agent for mTLS."""


@certs_group.command(name="init")
@DIR_OPTION
@click.option(
    "--name",
    "names",
    multiple=True,
    metavar="DNS",
    help="A DNS name the server is reached by; repeatable. Default: localhost and this "
    "host's name.",
)
@click.option(
    "--ip",
    "ips",
    multiple=True,
    metavar="IP",
    help="An IP address the server is reached by; repeatable. Default: 127.0.0.1 and ::1.",
)
@click.option(
    "--client",
    "clients",
    multiple=True,
    metavar="NAME",
    help="Also issue a client certificate with this name (CN); repeatable.",
)
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=825,
    show_default=True,
    help="Lifetime of the server and client certificates.",
)
@click.option(
    "--ca-days",
    type=click.IntRange(min=1),
    default=3650,
    show_default=True,
    help="Lifetime of the CA.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Replace existing files (certificates signed by the old CA stop working).",
)
def certs_init(
    directory: Path,
    names: tuple[str, ...],
    ips: tuple[str, ...],
    clients: tuple[str, ...],
    days: int,
    ca_days: int,
    force: bool,
) -> None:
    """Create a CA, a server certificate and client certificates in --dir.

    --name and --ip each replace their default, so give every name and address the server is
    reached by (clients check them). Private keys are written with mode 0600.
    """
    from k3watch.certs import DEFAULT_SERVER_IPS, default_server_names, init_pki

    try:
        pki = init_pki(
            directory,
            server_names=list(names) if names else default_server_names(),
            server_ips=list(ips) if ips else list(DEFAULT_SERVER_IPS),
            clients=clients,
            days=days,
            ca_days=ca_days,
            overwrite=force,
        )
    except UsageError as exc:
        exit_usage(exc)
    console = Console(highlight=False, soft_wrap=True, emoji=False)
    for files in pki.files():
        _show(console, files.cert, files.key)
    console.print(
        f"The server needs {pki.ca.cert}, {pki.server.cert} and {pki.server.key}; each agent "
        f"needs {pki.ca.cert} and its own client certificate and key. Keep {pki.ca.key} "
        "away from the server when you can: it is only needed to issue certificates.",
        markup=False,
    )


@certs_group.command(name="client")
@click.argument("name")
@DIR_OPTION
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=825,
    show_default=True,
    help="Lifetime of the certificate (at most the CA's).",
)
@click.option("--force", is_flag=True, help="Replace this client's existing files.")
def certs_client(name: str, directory: Path, days: int, force: bool) -> None:
    """Issue a client certificate NAME, signed by the CA in --dir."""
    from k3watch.certs import issue_client

    try:
        files = issue_client(directory, name, days, overwrite=force)
    except UsageError as exc:
        exit_usage(exc)
    _show(Console(highlight=False, soft_wrap=True, emoji=False), files.cert, files.key)


def _show(console: Console, cert: Path, key: Path) -> None:
    from k3watch.certs import describe

    info = describe(cert)
    console.print(f"wrote {cert}", markup=False)
    console.print(f"  subject      {info.subject}", markup=False)
    if info.sans:
        console.print(f"  names        {', '.join(info.sans)}", markup=False)
    if info.usages:
        console.print(f"  usage        {', '.join(info.usages)}", markup=False)
    console.print(f"  expires      {info.not_after:%Y-%m-%d %H:%M} UTC", markup=False)
    console.print(f"  sha256       {info.fingerprint}", markup=False)
    console.print(f"wrote {key} (private key, mode 0600)", markup=False)
