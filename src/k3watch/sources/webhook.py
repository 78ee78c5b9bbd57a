"""The ``webhook`` source: a local listener for the API server's audit webhook backend.

The API server (``--audit-webhook-config-file``) POSTs ``EventList`` batches. On a server node
it posts to the agent on the same host, so auditing never depends on the network. The
listener answers 200 only once the batch's events are in the source's queue; when the queue
cannot take the whole batch it answers 503 and takes nothing, leaving the batch to the API
server's retry policy.

Security: requests need ``Authorization: Bearer <token>`` (or a client certificate signed by
``client_ca``). Without TLS the listener only binds loopback addresses: a bearer token sent
in clear over a network is as good as public.
"""

from __future__ import annotations

import hmac
import ipaddress
import socket
import ssl
import threading
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from k3watch.certs import server_ssl_context
from k3watch.errors import InputError, UsageError
from k3watch.parse.audit import DEFAULT_MAX_EVENT_BYTES, AuditParser
from k3watch.server.config import listen_url
from k3watch.sources.base import DEFAULT_MAX_ITEMS, Item, Position
from k3watch.telemetry import Counters

DEFAULT_PORT = 9443
DEFAULT_PATH = "/audit"
DEFAULT_CAPACITY = 10_000  # events; the API server's own buffer is 10 000 by default
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
REQUEST_TIMEOUT = 30.0  # seconds a client may take to send a request
_SHUTDOWN_CHECK = 0.1  # how often the accept loop looks whether close() was called


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is a loopback address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, source: WebhookSource, address: tuple[str, int], tls: ssl.SSLContext | None):
        self.source = source
        self.tls = tls
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = self.socket.accept()
        if self.tls is not None:
            # The handshake happens in the request's thread (finish_request), so that a slow
            # client cannot hold up the accept loop.
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(REQUEST_TIMEOUT)
        if isinstance(request, ssl.SSLSocket):
            try:
                request.do_handshake()
            except (ssl.SSLError, OSError):
                self.source.counters.inc("rejected", reason="tls_handshake")
                return
        super().finish_request(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_POST(self) -> None:
        self.server.source._handle(self)

    def do_GET(self) -> None:
        self.server.source._reply(self, 405, "use POST", close=True)

    do_PUT = do_DELETE = do_PATCH = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass  # requests are counted, not logged


class WebhookSource:
    """Receives audit ``EventList`` batches over HTTP(S); see the module and docs/sources.md.

    ``certfile``/``keyfile`` turn on TLS (required unless ``host`` is a loopback address);
    ``client_ca`` verifies client certificates, which then replace the token. ``capacity``
    bounds the events waiting for :meth:`poll`; ``port`` 0 picks a free port (see
    :attr:`address`). Items have no position: the API server does not resend what was
    acknowledged, so a crash loses the events not yet forwarded.
    """

    def __init__(
        self,
        *,
        name: str = "webhook",
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        path: str = DEFAULT_PATH,
        token: str | None = None,
        certfile: str | Path | None = None,
        keyfile: str | Path | None = None,
        client_ca: str | Path | None = None,
        capacity: int = DEFAULT_CAPACITY,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        counters: Counters | None = None,
        parser_counters: Counters | None = None,
        on_error: Callable[[InputError], None] | None = None,
    ) -> None:
        self.name = name
        self.path = path
        self.counters = counters or Counters("source")
        self.parser_counters = parser_counters or Counters("parse")
        self.on_error = on_error or (lambda error: None)
        self.capacity = capacity
        self.max_body_bytes = max_body_bytes
        self.max_event_bytes = max_event_bytes
        if certfile is None and not is_loopback(host):
            raise UsageError(
                f"refusing to listen on {host} without TLS",
                hint="give certfile and keyfile, or listen on 127.0.0.1 (the API server on "
                "the same node reaches it there)",
            )
        if not token and client_ca is None:
            raise UsageError(
                "the audit webhook needs a bearer token (or client_ca for client certificates)",
                hint="give the API server the same token in its webhook kubeconfig "
                "(users[].user.token)",
            )
        self._expected = f"Bearer {token}".encode() if token else None
        tls = None
        if certfile is not None:
            tls = server_ssl_context(
                Path(certfile),
                Path(keyfile or certfile),
                Path(client_ca) if client_ca is not None else None,
                require_client_cert=client_ca is not None and not token,
            )
        self._queue: deque[Item] = deque()
        self._ready = threading.Condition()
        self._closed = False
        self._server = _Server(self, (host, port), tls)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            args=(_SHUTDOWN_CHECK,),
            name=f"{name}-listener",
            daemon=True,
        )
        self._thread.start()

    @property
    def address(self) -> tuple[str, int]:
        """The address and port listened on."""
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        scheme = "https" if self._server.tls is not None else "http"
        return listen_url(scheme, host, port) + self.path

    # -- the Source protocol -----------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self._closed and not self._queue

    def poll(self, max_items: int = DEFAULT_MAX_ITEMS, timeout: float = 0.0) -> list[Item]:
        with self._ready:
            if not self._queue and timeout > 0 and not self._closed:
                self._ready.wait_for(lambda: bool(self._queue) or self._closed, timeout)
            count = min(max_items, len(self._queue))
            return [self._queue.popleft() for _ in range(count)]

    def commit(self, position: Position) -> None:
        """Nothing to persist: the API server cannot be asked to send events again."""

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify_all()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    # -- requests ------------------------------------------------------------------------------

    def _handle(self, request: _Handler) -> None:
        self.counters.inc("requests")
        if urlsplit(request.path).path != self.path:
            self._reject(request, 404, "not_found", f"POST audit events to {self.path}")
            return
        if not self._authorized(request):
            self._reject(request, 401, "unauthorized", "a valid bearer token is required")
            return
        try:
            length = int(request.headers.get("Content-Length", ""))
        except ValueError:
            self._reject(request, 411, "no_length", "Content-Length is required")
            return
        if length < 0 or length > self.max_body_bytes:
            self._reject(request, 413, "too_large", f"body over {self.max_body_bytes} bytes")
            return
        body = request.rfile.read(length)
        if len(body) < length:
            self._reject(request, 400, "incomplete", "body shorter than Content-Length")
            return
        self.counters.inc("bytes", length)
        errors: list[InputError] = []

        def report(error: InputError) -> None:
            errors.append(error)
            self.on_error(error)

        parser = AuditParser(self.parser_counters, report, max_event_bytes=self.max_event_bytes)
        events = list(parser.parse_bytes(body, self.name))
        if not events and errors:
            self._reject(request, 400, "invalid", str(errors[0]), close=False)
            return
        with self._ready:
            if len(self._queue) + len(events) > self.capacity:
                full = True
            else:
                full = False
                self._queue.extend(Item(event, None) for event in events)
                self._ready.notify_all()
        if full:
            self.counters.inc("refused_events", len(events), reason="queue_full")
            self._reject(request, 503, "queue_full", "queue full, retry later", close=False)
            return
        self.counters.inc("items", len(events))
        self._reply(request, 200, "")

    def _authorized(self, request: _Handler) -> bool:
        if self._expected is not None:
            given = request.headers.get("Authorization", "").encode()
            if hmac.compare_digest(given, self._expected):
                return True
        # A verified client certificate authenticates on its own (when no token is set).
        return self._expected is None and isinstance(request.connection, ssl.SSLSocket)

    def _reject(
        self, request: _Handler, status: int, reason: str, message: str, *, close: bool = True
    ) -> None:
        self.counters.inc("rejected", reason=reason)
        self._reply(request, status, message, close=close)

    @staticmethod
    def _reply(request: _Handler, status: int, message: str, *, close: bool = False) -> None:
        body = orjson.dumps({"message": message} if message else {})
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(body)))
        if status == 401:
            request.send_header("WWW-Authenticate", "Bearer")
        if status == 503:
            request.send_header("Retry-After", "1")
        if close:
            # The body was not read: the connection cannot carry another request.
            request.send_header("Connection", "close")
            request.close_connection = True
        request.end_headers()
        request.wfile.write(body)
