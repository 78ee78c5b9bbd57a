"""What the k3watch commands share: rule selection options, configuration, output helpers."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
import orjson
from click.core import ParameterSource
from rich.console import Console

from k3watch.alert import Severity
from k3watch.config import Config, load_config
from k3watch.errors import UsageError
from k3watch.rules.loader import load_rules
from k3watch.rules.model import RuleSet

F = TypeVar("F", bound=Callable[..., Any])

LEVELS = [s.label for s in Severity]


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def exit_usage(exc: UsageError) -> NoReturn:
    """Print a usage error on one line and exit with status 2."""
    stderr_console().print(f"error: {exc}", markup=False, emoji=False)
    sys.exit(2)


def utc_minute(epoch: float | None) -> str:
    """``2026-11-27 21:06`` (UTC), or an empty string."""
    if epoch is None:
        return ""
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%d %H:%M")


def utc_iso(epoch: float | None) -> str | None:
    """``2026-11-27T21:06:43Z``, or None."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def data_dir_option(holds: str) -> Callable[[F], F]:
    """``--data-dir``: the server's data directory, where ``holds`` (a file name) is."""
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="K3WATCH_DATA_DIR",
        default=Path("k3watch-data"),
        show_default=True,
        help=f"The server's data directory ({holds} is there); also read from $K3WATCH_DATA_DIR.",
    )


def server_files_options(func: F) -> F:
    """``--config`` and ``--data-dir``, for commands that read a server's files (the data
    directory defaults to the configuration's ``server.data_dir``): see :func:`server_files`."""
    func = click.option(
        "--data-dir",
        type=click.Path(path_type=Path, file_okay=False),
        envvar="K3WATCH_DATA_DIR",
        default=None,
        help="The server's data directory [default: server.data_dir of --config, "
        "./k3watch-data]; also read from $K3WATCH_DATA_DIR.",
    )(func)
    return click.option(
        "--config",
        "config_path",
        type=click.Path(path_type=Path, dir_okay=False),
        envvar="K3WATCH_CONFIG",
        default=None,
        help="The server's configuration file (its data directory, rules and review "
        "schedules); also read from $K3WATCH_CONFIG.",
    )(func)


def server_files(config_path: Path | None, data_dir: Path | None) -> tuple[Config, Path]:
    """The configuration and the data directory :func:`server_files_options` name."""
    config = read_config(config_path)
    return config, data_dir if data_dir is not None else Path(config.server.data_dir)


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


def read_config(path: Path | None) -> Config:
    """The configuration file's settings (defaults without one); a bad file ends the command."""
    if path is None:
        return Config()
    try:
        return load_config(path)
    except UsageError as exc:
        stderr_console().print(f"error: {exc}", highlight=False)
        sys.exit(2)


def load_selected_rules(
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
        disabled=settings.disable,
    )


def given(name: str) -> bool:
    """Whether the option ``name`` was set on the command line (not left at its default)."""
    source = click.get_current_context().get_parameter_source(name)
    return source is not None and source is not ParameterSource.DEFAULT


def report_rule_problems(ruleset: RuleSet, console: Console) -> None:
    for error in ruleset.errors:
        console.print(f"[red]rule error[/]: {error}", markup=True, highlight=False)
    for warning in ruleset.warnings:
        console.print(f"[yellow]rule warning[/]: {warning}", markup=True, highlight=False)


def write_json(payload: object) -> None:
    sys.stdout.buffer.write(orjson.dumps(payload, option=orjson.OPT_INDENT_2) + b"\n")
