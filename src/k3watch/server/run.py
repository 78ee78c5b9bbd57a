"""Serving the application with uvicorn: HTTPS (or explicitly plain HTTP), an optional second
listener for ingest with client certificates, in the foreground or in a background thread."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import ssl
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import uvicorn

from k3watch.errors import UsageError
from k3watch.server.app import Surface, create_app
from k3watch.server.config import ServerConfig, listen_url, parse_listen
from k3watch.server.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Listener:
    surface: Surface
    socket: socket.socket
    config: uvicorn.Config

    @property
    def url(self) -> str:
        host, port = self.socket.getsockname()[:2]
        return listen_url("https" if self.config.ssl_certfile else "http", host, port)


def listeners(runtime: Runtime) -> list[Listener]:
    """Bind the configured addresses (port 0 picks a free port)."""
    config = runtime.config.server
    if config.tls is None and not config.insecure_http:
        raise UsageError(
            "the server has no TLS certificate",
            hint="run 'k3watch certs init' and set server.tls, or set server.insecure_http: "
            "true to serve plain HTTP (loopback or behind a TLS proxy only)",
        )
    mutual = config.tls is not None and config.tls.client_ca_file is not None
    out = [
        _listener(runtime, config, config.listen, "api" if config.ingest_listen else "all", False)
    ]
    if config.ingest_listen is not None:
        out.append(_listener(runtime, config, config.ingest_listen, "ingest", mutual))
    return out


def _listener(
    runtime: Runtime, config: ServerConfig, address: str, surface: Surface, mutual: bool
) -> Listener:
    host, port = parse_listen(address)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {address}: {exc.strerror or exc}") from exc
    sock.listen(512)
    sock.set_inheritable(True)
    tls = config.tls
    uconfig = uvicorn.Config(
        create_app(runtime, surface),
        log_level="warning",
        lifespan="off",
        server_header=False,
        date_header=True,
        timeout_keep_alive=30,
        ssl_certfile=tls.cert_file if tls else None,
        ssl_keyfile=tls.key_file if tls else None,
        ssl_ca_certs=tls.client_ca_file if (tls and mutual) else None,
        ssl_cert_reqs=ssl.CERT_REQUIRED if mutual else ssl.CERT_NONE,
    )
    return Listener(surface, sock, uconfig)


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to ``serve_forever``: uvicorn's own handling
    stops only the listener that installed its handler last, and re-raises the signal after
    serving, which would end the process before the runtime is stopped."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _serve(servers: Sequence[tuple[uvicorn.Server, socket.socket]]) -> None:
    await asyncio.gather(*(server.serve(sockets=[sock]) for server, sock in servers))


def serve_forever(runtime: Runtime, bound: list[Listener]) -> None:
    """Serve until SIGINT/SIGTERM, then stop the runtime: what is queued is stored, the
    ingest workers exit, the store is closed. A second signal exits at once."""
    servers = [(_Server(listener.config), listener.socket) for listener in bound]

    def stop(signum: int, _frame: object) -> None:
        if any(server.should_exit for server, _ in servers):
            raise SystemExit(128 + signum)  # asked twice: do not wait any longer
        log.info("%s received: stopping", signal.Signals(signum).name)
        for server, _ in servers:
            server.should_exit = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    runtime.start()
    try:
        asyncio.run(_serve(servers))
    finally:
        try:
            runtime.stop()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


class BackgroundServer:
    """The server in a thread (tests, the demo, benchmarks): ``url``, ``stop()``."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.listeners = listeners(runtime)
        self._servers = [(uvicorn.Server(lst.config), lst.socket) for lst in self.listeners]
        self._thread = threading.Thread(target=self._run, name="k3watch-server", daemon=True)

    @property
    def url(self) -> str:
        return self.listeners[0].url

    @property
    def ingest_url(self) -> str:
        return self.listeners[-1].url

    def _run(self) -> None:
        asyncio.run(_serve(self._servers))

    def start(self) -> BackgroundServer:
        self.runtime.start()
        self._thread.start()
        for server, _ in self._servers:
            while not server.started and self._thread.is_alive():
                threading.Event().wait(0.01)
        return self

    def stop(self) -> None:
        for server, _ in self._servers:
            server.should_exit = True
        self._thread.join(15)
        for _, sock in self._servers:
            with contextlib.suppress(OSError):
                sock.close()
        self.runtime.stop()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


@contextlib.contextmanager
def running(runtime: Runtime) -> Iterator[BackgroundServer]:
    server = BackgroundServer(runtime).start()
    try:
        yield server
    finally:
        server.stop()
