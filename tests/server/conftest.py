"""A real k3watch server on loopback (plain HTTP unless a test asks for TLS), with tokens."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest
from tests.conftest import builtin_rules

from k3watch.alerting.config import AlertingConfig, FileConfig
from k3watch.client import Client
from k3watch.config import Config
from k3watch.server.config import LimitsConfig, ServerConfig
from k3watch.server.run import BackgroundServer
from k3watch.server.runtime import Runtime
from k3watch.server.tokens import Role


@dataclass
class Running:
    server: BackgroundServer
    tokens: dict[str, str]
    data_dir: Path
    alerts_file: Path

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def runtime(self) -> Runtime:
        return self.server.runtime

    def client(self, role: str = "admin") -> Client:
        return Client(self.url, self.tokens[role])

    def delivered(self) -> list[dict[str, Any]]:
        """Alerts the JSON-lines destination received."""
        if self.runtime.dispatcher is not None:
            self.runtime.dispatcher.flush()
        if not self.alerts_file.exists():
            return []
        return [msgspec.json.decode(line) for line in self.alerts_file.read_bytes().splitlines()]


StartServer = Callable[..., Running]


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[StartServer]:
    started: list[BackgroundServer] = []

    def start(limits: LimitsConfig | None = None, **server: Any) -> Running:
        """A server; several in one test each get their own data directory."""
        suffix = f"-{len(started)}" if started else ""
        data = tmp_path / f"data{suffix}"
        alerts_file = tmp_path / f"alerts{suffix}.jsonl"
        settings = ServerConfig(
            data_dir=str(data),
            listen="127.0.0.1:0",
            insecure_http=True,
            workers=0,  # in-process: a test server starts in milliseconds
            cluster="test",
            limits=limits or LimitsConfig(),
        )
        settings = msgspec.structs.replace(settings, **server)
        config = Config(
            server=settings,
            alerting=AlertingConfig(destinations=(FileConfig(name="file", path=str(alerts_file)),)),
        )
        runtime = Runtime.build(config, builtin_rules())
        tokens = {}
        for role in Role:
            _, tokens[role.value] = runtime.tokens.create(f"test-{role.value}", role)
        background = BackgroundServer(runtime).start()
        started.append(background)
        return Running(background, tokens, data, alerts_file)

    yield start
    for background in started:
        background.stop()
