"""The demo: a k3watch server on the embedded store, fed the generated sample cluster through
the real ingest API, node by node in batches, with alerts shown as the story unfolds.

The learning week before the attacks is sent as fast as the server takes it; the attack day is
replayed at ``speed`` times real time from a little before the first attack, so alerts appear
one after another as they would on a live cluster.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import orjson

from k3watch.client import Client
from k3watch.config import Config
from k3watch.event import parse_time
from k3watch.rules.model import RuleSet
from k3watch.server.config import ServerConfig
from k3watch.server.run import BackgroundServer
from k3watch.server.runtime import Runtime
from k3watch.server.tokens import Role

BATCH = 500


@dataclass
class DemoResult:
    url: str
    admin_token: str
    events: int = 0
    alerts: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def _batches(events: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    iterator = iter(events)
    while chunk := list(itertools.islice(iterator, BATCH)):
        yield chunk


def run_demo(
    config: Config,
    ruleset: RuleSet,
    events: list[dict[str, Any]],
    *,
    attack_start: float,
    speed: float = 600.0,
    on_start: Callable[[DemoResult], None],
    on_alert: Callable[[dict[str, Any]], None],
    keep_serving: Callable[[DemoResult], None] | None = None,
) -> DemoResult:
    """Serve, replay ``events`` through ``/api/v1/ingest``, report alerts as they appear."""
    runtime = Runtime.build(config, ruleset)
    _, admin = runtime.tokens.create(f"demo-admin-{int(time.time())}", Role.ADMIN)
    _, agent_secret = runtime.tokens.create(f"demo-agent-{int(time.time())}", Role.AGENT)
    server = BackgroundServer(runtime).start()
    result = DemoResult(server.url, admin)
    started = time.monotonic()
    try:
        on_start(result)
        shown: set[int] = set()
        with Client(server.url, agent_secret) as agent, Client(server.url, admin) as reader:
            polled = [0.0]

            def show_new(force: bool = False) -> None:
                if not force and time.monotonic() - polled[0] < 0.5:
                    return  # poll twice a second at most: the replay is the work here
                polled[0] = time.monotonic()
                for alert in reversed(reader.alerts(limit=200, status="open")["alerts"]):
                    if alert["id"] not in shown:
                        shown.add(alert["id"])
                        result.alerts.append(alert)
                        on_alert(alert)

            history = [e for e in events if _time(e) < attack_start - 1800]
            story = events[len(history) :]
            for number, chunk in enumerate(_batches(history)):
                agent.ingest(_lines(chunk), batch=f"demo-history-{number}", node="server-1")
                result.events += len(chunk)
            show_new(force=True)
            clock_zero = _time(story[0]) if story else 0.0
            wall_zero = time.monotonic()
            for number, chunk in enumerate(_paced(story)):
                due = wall_zero + (_time(chunk[0]) - clock_zero) / speed
                pause = due - time.monotonic()
                if pause > 0:
                    time.sleep(min(pause, 2.0))
                agent.ingest(_lines(chunk), batch=f"demo-story-{number}", node="server-1")
                result.events += len(chunk)
                show_new()
            show_new(force=True)
        result.seconds = time.monotonic() - started
        if keep_serving is not None:
            keep_serving(result)
    finally:
        server.stop()
    return result


def _paced(events: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Batches of at most ``BATCH`` events spanning at most two minutes of cluster time."""
    chunk: list[dict[str, Any]] = []
    for event in events:
        if chunk and (len(chunk) >= BATCH or _time(event) - _time(chunk[0]) > 120):
            yield chunk
            chunk = []
        chunk.append(event)
    if chunk:
        yield chunk


def _time(event: dict[str, Any]) -> float:
    return parse_time(event.get("requestReceivedTimestamp")) or 0.0


def _lines(events: list[dict[str, Any]]) -> list[bytes]:
    return [orjson.dumps(e) for e in events]


def demo_config(data_dir: Path, base: Config) -> Config:
    server = ServerConfig(
        data_dir=str(data_dir),
        listen="127.0.0.1:0",
        insecure_http=True,
        cluster="demo",
        suppress="10m",
    )
    return msgspec.structs.replace(base, server=server)
