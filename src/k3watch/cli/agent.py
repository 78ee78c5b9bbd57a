"""``k3watch agent``: read this node's logs into a disk spool and forward them to the server."""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click
from rich.console import Console

from k3watch.cli.app import main
from k3watch.cli.common import (
    load_selected_rules,
    read_config,
    report_rule_problems,
    stderr_console,
)
from k3watch.config import Config
from k3watch.errors import Location, UsageError
from k3watch.rules.extension import parse_duration

if TYPE_CHECKING:
    from k3watch.agent.local import LocalRules


@main.command(name="agent")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="K3WATCH_CONFIG",
    required=True,
    help="Configuration file (YAML) with an 'agent:' section; also read from $K3WATCH_CONFIG.",
)
@click.option(
    "--once",
    is_flag=True,
    help="Read what is there, deliver it, and exit (for cron and tests).",
)
@click.option(
    "--once-timeout",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="With --once: seconds to wait for the server to take everything; exit code 1 if not.",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Log lines as text or as one JSON object each.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
def agent_command(
    config_path: Path, once: bool, once_timeout: float, log_format: str, log_level: str
) -> None:
    """Run the node agent: read the configured sources (audit log, journal, log files, the
    audit webhook), keep every event in a disk spool until the server has stored it, and
    forward it to the server's ingest API.

    Exit codes: 0 when stopped (SIGTERM, SIGINT) or, with --once, when everything was
    delivered; 1 when --once could not deliver everything in time; 2 for a bad configuration.
    """
    from k3watch.agent.metrics import setup_logging
    from k3watch.agent.run import Agent

    console = stderr_console()
    config = read_config(config_path)
    try:
        config.agent.require()
    except ValueError as exc:
        console.print(f"error: {Location(str(config_path))}: {exc}", highlight=False)
        sys.exit(2)
    setup_logging(log_format, getattr(logging, log_level.upper()))
    _map_large_blocks()
    try:
        agent = Agent(config.agent, once=once, local=_local_rules(config, console))
    except UsageError as exc:
        console.print(f"error: {config_path}: {exc}", highlight=False)
        sys.exit(2)

    def on_signal(number: int, frame: FrameType | None) -> None:
        logging.getLogger("k3watch.agent").info("%s: stopping", signal.Signals(number).name)
        agent.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if agent.metrics_url is not None:
        logging.getLogger("k3watch.agent").info("metrics at %s/metrics", agent.metrics_url)
    sys.exit(agent.run(once_timeout=once_timeout))


def _local_rules(config: Config, console: Console) -> LocalRules | None:
    """The rules to evaluate on this node, when ``agent.local_rules`` asks for them."""
    from k3watch.agent.local import LocalRules

    settings = config.agent
    if not settings.local_rules:
        return None
    if not config.alerting.destinations:
        raise UsageError(
            "agent.local_rules is on but alerting.destinations is empty: "
            "the alerts would go nowhere"
        )
    ruleset = load_selected_rules((), False, (), (), config)
    report_rule_problems(ruleset, console)
    return LocalRules(
        ruleset,
        config.alerting,
        config.redaction,
        directory=Path(settings.spool_dir) / "local",
        cluster=settings.cluster,
        suppress_window=parse_duration(settings.local_suppress),
    )


def _map_large_blocks() -> None:
    """Have glibc give every large block (a batch is a megabyte or so) its own mapping,
    returned to the system when freed.

    By default glibc raises that threshold each time such a block is freed, after which the
    batches come from the heap, whose free space it rarely hands back: a long-running agent's
    memory then creeps up by tens of megabytes. (Other C libraries ignore this.)
    """
    try:
        import ctypes

        ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, 128 * 1024)
    except (OSError, AttributeError):
        pass


_M_MMAP_THRESHOLD = -3  # from glibc's malloc.h
