"""``k3watch demo``: the server on the embedded store, fed a generated cluster with attacks."""

from __future__ import annotations

import contextlib
import math
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from k3watch.cli.app import main
from k3watch.cli.common import LEVELS, read_config, stderr_console


@main.command(name="demo")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("build/demo/data"),
    show_default=True,
    help="Where the demo server keeps its store (emptied first).",
)
@click.option("--days", default=8.0, show_default=True, help="Days of generated activity.")
@click.option(
    "--speed",
    default=1800.0,
    show_default=True,
    help="How many times faster than real time the attack afternoon is replayed.",
)
@click.option(
    "--min-severity",
    type=click.Choice(LEVELS),
    default="medium",
    show_default=True,
    help="Alerts shown as they appear (all are stored).",
)
@click.option(
    "--serve/--no-serve",
    default=None,
    help="Keep serving after the replay until Ctrl-C [default: when run in a terminal].",
)
def demo_command(
    data_dir: Path, days: float, speed: float, min_severity: str, serve: bool | None
) -> None:
    """Start a k3watch server, replay a generated K3s cluster (a learning week, then an
    afternoon with seven attacks) through its ingest API, and show alerts as they appear."""
    import shutil

    from k3watch.demo import demo_config, run_demo
    from k3watch.rules.loader import load_rules
    from k3watch.sample import generate_tagged_events

    console = stderr_console()
    out = click.echo
    if data_dir.exists():
        shutil.rmtree(data_dir)
    events: list[dict[str, Any]] = []
    attack_start = None
    # The cluster's days end at midnight today (UTC), so the attack afternoon was yesterday and
    # searches with the usual time windows find it.
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=math.ceil(days))
    for event, scenario in generate_tagged_events(days=days, start=start):
        events.append(event)
        if scenario and attack_start is None:
            attack_start = event["requestReceivedTimestamp"]
    from k3watch.event import parse_time

    first_attack = (parse_time(attack_start) if attack_start else None) or float("inf")
    config = demo_config(data_dir, read_config(None))
    ruleset = load_rules([], builtin=True)
    keep = serve if serve is not None else sys.stdout.isatty()

    def started(result: Any) -> None:
        console.print(f"k3watch server: {result.url}   (plain HTTP on loopback, demo only)")
        console.print(f"admin token:    {result.admin_token}")
        console.print(f"web UI:         {result.url}/ui/   (log in with the admin token)")
        console.print(
            f"replaying {len(events):,} audit events of a 3-node K3s cluster "
            f"({days:g} days; the attack afternoon at {speed:g}x)…"
        )

    threshold = LEVELS.index(min_severity)

    def alert(item: dict[str, Any]) -> None:
        if LEVELS.index(item["severity"]) < threshold:
            return
        out(
            f"{item['last_seen'][:19]}  {item['severity']:<8} #{item['id']:<4} "
            f"{item['title']}: {item['summary'][:110]}"
        )

    def forever(result: Any) -> None:
        console.print(
            f"\n{result.events:,} events ingested in {result.seconds:.0f}s, "
            f"{len(result.alerts)} alerts stored (all severities). Try:\n"
            f"  export K3WATCH_SERVER={result.url} K3WATCH_TOKEN={result.admin_token}\n"
            "  k3watch alerts list\n  k3watch search --where user=alice@example.com exec\n"
            f"or open {result.url}/ui/ in a browser (log in with the admin token).\n"
            "Serving until Ctrl-C."
        )
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()

    result = run_demo(
        config,
        ruleset,
        events,
        attack_start=first_attack,
        speed=speed,
        on_start=started,
        on_alert=alert,
        keep_serving=forever if keep else None,
    )
    if not keep:
        console.print(
            f"\n{result.events:,} events ingested through the API in {result.seconds:.0f}s; "
            f"{len(result.alerts)} alerts stored (all severities). The store is in {data_dir} "
            f"(k3watch server --data-dir {data_dir} --insecure-http serves it again)."
        )
