"""``k3watch deploy``: Kubernetes manifests, K3s auto-deploy, host service units, and the
server's first admin token (docs/deploy.md)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from k3watch.cli.app import main
from k3watch.cli.common import exit_usage, stderr_console
from k3watch.cli.k3s import present_plan
from k3watch.errors import UsageError

if TYPE_CHECKING:
    from k3watch.deploy.values import Values

_VALUES = click.option(
    "--values",
    "values_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Values file (YAML); the defaults suit a stock K3s. `k3watch deploy values` prints them.",
)
_OUTPUT_DIR = click.option(
    "--output-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Write the files into this directory instead of printing them.",
)


def _values(path: Path | None) -> Values:
    from k3watch.deploy.values import load_values

    try:
        return load_values(path)
    except UsageError as exc:
        exit_usage(exc)


def _write(directory: Path, files: dict[str, tuple[str, int]]) -> None:
    from k3watch.durable import write_atomically

    directory.mkdir(parents=True, exist_ok=True)
    for name, (text, mode) in files.items():
        write_atomically(directory / name, text.encode("utf-8"), mode)
        stderr_console().print(f"wrote {directory / name} (mode {mode:04o})", highlight=False)


@main.group(name="deploy")
def deploy_group() -> None:
    """Deploy k3watch: manifests for K3s, K3s auto-deploy, systemd and openrc services."""


@deploy_group.command(name="values")
def deploy_values() -> None:
    """Print the default values (every key `--values` takes)."""
    import msgspec

    from k3watch.deploy.values import Values
    from k3watch.deploy.yamlout import dump

    defaults = msgspec.to_builtins(Values())
    defaults.pop("source", None)
    click.echo(dump(defaults), nl=False)


@deploy_group.command(name="render")
@_VALUES
@_OUTPUT_DIR
def deploy_render(values_path: Path | None, output_dir: Path | None) -> None:
    """Print the Kubernetes manifests: namespace, service accounts, ConfigMaps, the server
    (with its volume claim, Service and disruption budget), the agent DaemonSets, network
    policies, and the Secrets of the files the values name.

    With --output-dir, writes k3watch.yaml and, when there are Secrets, k3watch-secrets.yaml
    (mode 0600) for `kubectl apply -f DIR`.
    """
    from k3watch.deploy.manifests import render

    values = _values(values_path)
    try:
        rendered = render(values)
    except UsageError as exc:
        exit_usage(exc)
    if output_dir is None:
        click.echo(rendered.combined, nl=False)
        return
    files = {"k3watch.yaml": (rendered.manifest, 0o644)}
    if rendered.secrets:
        files["k3watch-secrets.yaml"] = (rendered.secrets_manifest, 0o600)
    _write(output_dir, files)


@deploy_group.command(name="install")
@click.option(
    "--k3s",
    "k3s",
    is_flag=True,
    help="Install through K3s: manifests into its auto-deploy directory, and the audit set-up.",
)
@_VALUES
@click.option(
    "--root",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("/"),
    show_default=True,
    help="Directory standing in for / (a copy of a node's files, or a test tree).",
)
@click.option("--apply", "apply_", is_flag=True, help="Write the files (default: show a diff).")
def deploy_install(k3s: bool, values_path: Path | None, root: Path, apply_: bool) -> None:
    """Install on a K3s server node: the audit policy and API-server flags (as `k3watch k3s
    setup` writes them) and the rendered manifests in /var/lib/rancher/k3s/server/manifests/,
    which K3s applies by itself. Never restarts K3s.

    Without --apply, prints a diff of every file it would create or change (files holding
    secrets are named, not shown). With it, writes each file atomically, keeping a
    .bak.<timestamp> copy of any file it replaces. Running it twice changes nothing. Run it
    with the same values on every server node.
    """
    from k3watch.deploy.install import plan_install
    from k3watch.policy.k3s.layout import Layout
    from k3watch.policy.k3s.setup import next_steps

    if not k3s:
        raise click.UsageError("say where to install: --k3s (the only target so far)")
    values = _values(values_path)
    try:
        plan = plan_install(Layout(root), values)
    except UsageError as exc:
        exit_usage(exc)
    present_plan(
        plan,
        root,
        apply_,
        done="k3watch and the audit set-up are already in place",
        steps=[
            *next_steps(plan)[:2],
            f"K3s applies the manifests by itself: kubectl -n {values.namespace} get pods -w",
            *_secret_steps(values),
            "verify: sudo k3watch k3s check, and the web UI's Pipeline page (docs/deploy.md)",
        ],
    )


def _secret_steps(values: Values) -> list[str]:
    """What the user still has to create by hand (Secrets the values name no file for)."""
    ns = values.namespace
    steps = []
    if values.tls.from_dir is None:
        steps.append(
            f"create the TLS Secret and CA ConfigMap: kubectl -n {ns} create secret tls "
            f"{values.tls.secret} --cert=pki/server.crt --key=pki/server.key; kubectl -n {ns} "
            f"create configmap {values.tls.ca_config_map} --from-file=ca.crt=pki/ca.crt"
        )
    if values.agent.token_file is None:
        steps.append(
            f"create the agent token Secret once the server runs: kubectl -n {ns} exec "
            "deploy/k3watch-server -c server -- k3watch token create agents --role agent "
            f"--data-dir /var/lib/k3watch/data | kubectl -n {ns} create secret generic "
            f"{values.agent.token_secret} --from-file=token=/dev/stdin"
        )
    if values.audit.source == "webhook":
        steps.append(
            f"the webhook token Secret {values.audit.webhook_token_secret} comes from "
            "audit.webhook_token_file (rendered into k3watch-secrets.yaml)"
        )
    return steps


@deploy_group.command(name="systemd")
@_VALUES
@_OUTPUT_DIR
def deploy_systemd(values_path: Path | None, output_dir: Path | None) -> None:
    """Print hardened systemd units for the server and the agent (or write them into
    --output-dir, e.g. /etc/systemd/system)."""
    from k3watch.deploy.host import systemd_units

    units = systemd_units(_values(values_path))
    _emit(units, output_dir, 0o644)


@deploy_group.command(name="openrc")
@_VALUES
@_OUTPUT_DIR
def deploy_openrc(values_path: Path | None, output_dir: Path | None) -> None:
    """Print openrc scripts for the server and the agent, for Alpine-based K3s nodes (or write
    them into --output-dir, e.g. /etc/init.d)."""
    from k3watch.deploy.host import openrc_scripts

    scripts = openrc_scripts(_values(values_path))
    _emit(scripts, output_dir, 0o755)


def _emit(files: dict[str, str], output_dir: Path | None, mode: int) -> None:
    if output_dir is not None:
        _write(output_dir, {name: (text, mode) for name, text in files.items()})
        return
    for name, text in files.items():
        click.echo(f"### {name}")
        click.echo(text)


@deploy_group.command(name="bootstrap")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="The server's data directory.",
)
@click.option(
    "--admin-token-file",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="Where a new admin token's secret is written (mode 0600).",
)
def deploy_bootstrap(data_dir: Path, admin_token_file: Path) -> None:
    """Before the server's first start: create an admin token and write its secret to a file,
    so that the server prints none to its log. Does nothing when an admin token exists.

    Run by the server's init container and its systemd unit (ExecStartPre).
    """
    from k3watch.deploy.bootstrap import ADMIN_NAME, ensure_admin_token

    try:
        done = ensure_admin_token(data_dir, admin_token_file)
    except OSError as exc:
        exit_usage(UsageError(f"{exc.filename or admin_token_file}: {exc.strerror or exc}"))
    except UsageError as exc:
        exit_usage(exc)
    if done.created:
        click.echo(
            f"created admin token {done.token_id} ({ADMIN_NAME}); its secret is in "
            f"{done.secret_file} (mode 0600): read it once, create your own tokens, revoke "
            f"{ADMIN_NAME} and delete the file"
        )
    else:
        click.echo("an admin token exists: nothing to do")
