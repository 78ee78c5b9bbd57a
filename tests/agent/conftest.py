"""A real k3watch server on loopback for the agent to send to, and agent configurations."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest
from tests.conftest import builtin_rules

from k3watch.agent.config import AgentConfig, AuditFileSourceConfig, SourceConfig
from k3watch.config import Config
from k3watch.redact import RedactionConfig
from k3watch.sample import generate_events
from k3watch.server.config import LimitsConfig, ServerConfig
from k3watch.server.run import BackgroundServer
from k3watch.server.runtime import Runtime
from k3watch.server.tokens import Role


@functools.cache
def sample_events() -> tuple[dict[str, Any], ...]:
    """About 700 audit events of a generated K3s cluster (each auditID and stage once)."""
    return tuple(generate_events(days=0.1, attacks=False, seed=11))


def write_audit_log(path: Path, events: tuple[dict[str, Any], ...] | list[dict[str, Any]]) -> Path:
    """Append ``events`` to the audit log at ``path`` as JSON lines."""
    with path.open("ab") as out:
        out.write(b"".join(orjson.dumps(e) + b"\n" for e in events))
    return path


@dataclass
class Server:
    """A running server: its URL, an agent token, its runtime."""

    background: BackgroundServer
    agent_token: str

    @property
    def url(self) -> str:
        return self.background.url

    @property
    def ingest_url(self) -> str:
        return self.background.ingest_url

    @property
    def runtime(self) -> Runtime:
        return self.background.runtime

    def stored(self) -> int:
        """Events in the server's store."""
        return self.runtime.store.stats().events

    def wait_stored(self, count: int, timeout: float = 20.0) -> int:
        deadline = time.monotonic() + timeout
        while self.stored() < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.stored()


StartServer = Callable[..., Server]


@pytest.fixture
def k3watch_server(tmp_path: Path) -> Iterator[StartServer]:
    """Starts servers (plain HTTP on loopback unless TLS is asked for); stops them after."""
    started: list[BackgroundServer] = []

    def start(
        limits: LimitsConfig | None = None,
        redaction: RedactionConfig | None = None,
        **server: Any,
    ) -> Server:
        settings = ServerConfig(
            data_dir=str(tmp_path / f"server-{len(started)}"),
            listen="127.0.0.1:0",
            insecure_http=True,
            workers=0,  # in-process: a test server starts in milliseconds
            cluster="test",
            limits=limits or LimitsConfig(),
        )
        settings = msgspec.structs.replace(settings, **server)
        config = Config(server=settings, redaction=redaction or RedactionConfig())
        runtime = Runtime.build(config, builtin_rules())
        _, token = runtime.tokens.create("test-agent", Role.AGENT)
        background = BackgroundServer(runtime).start()
        started.append(background)
        return Server(background, token)

    yield start
    for background in started:
        background.stop()


def agent_config(
    tmp_path: Path,
    server: str,
    token: str,
    sources: tuple[SourceConfig, ...] | None = None,
    **options: Any,
) -> AgentConfig:
    """An agent reading ``tmp_path/audit.log`` into ``tmp_path/agent``, with small batches."""
    settings: dict[str, Any] = {
        "server": server,
        "token": token,
        "node": "node-1",
        "spool_dir": str(tmp_path / "agent"),
        "batch_max_events": 100,
        "batch_max_wait": 0.2,
        "metrics_listen": None,
        "sources": sources
        if sources is not None
        else (AuditFileSourceConfig(path=str(tmp_path / "audit.log")),),
    }
    settings.update(options)
    return AgentConfig(**settings)


def free_url() -> str:
    """A loopback URL where nothing listens."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
