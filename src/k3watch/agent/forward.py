"""The forwarder: a thread that sends the spool's frames to the server's ``/api/v1/ingest``, in
order, and acknowledges each in the spool once the server has stored it.

What the server answers decides what happens to a frame:

- 200: acknowledge it; events the server rejected are counted (``dropped{rejected_by_server}``).
- 429, 503: wait ``Retry-After`` (at most a minute) and send it again with the same batch id.
- A connection error, a timeout, a 5xx: send it again after an exponential back-off with
  jitter (at most a minute).
- 413: split it in halves sent as ``<id>-a`` and ``<id>-b`` (again while needed); a single
  event still too large is dropped, logged and counted (``dropped{too_large}``).
- 400, 422: log it, count its events (``dropped{rejected_by_server}``) and acknowledge it: a
  batch the server can never take must not hold up the spool.
- 401, 403 and other 4xx: log an error and try again slowly; the token, the certificate or
  the URL may be fixed meanwhile.

A batch's id comes from its place in the spool, so a frame sent again (after a timeout, a
restart) is recognized by the server, which stores nothing twice.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from k3watch import __version__
from k3watch.agent.spool import IDENTITY, Frame, FrameHeader, Spool, compress, decompress
from k3watch.telemetry import Counters

log = logging.getLogger(__name__)

INGEST_PATH = "/api/v1/ingest"
MAX_BACKOFF = 60.0
MIN_BACKOFF = 1.0
AUTH_BACKOFF = 10.0  # first wait after a 401/403 or a misconfiguration answer
MAX_RETRY_AFTER = 60.0
_IDLE_WAIT = 1.0


class Forwarder:
    """Sends ``spool`` to the server at ``server`` with ``token`` (see the module).

    ``ca``, ``cert`` and ``key`` are PEM files for TLS (the server's CA, and a client
    certificate for mutual TLS). Frames are sent as the spool stores them (compressed).
    """

    def __init__(
        self,
        spool: Spool,
        *,
        server: str,
        token: str,
        node: str,
        cluster: str = "",
        ca: Path | None = None,
        cert: Path | None = None,
        key: Path | None = None,
        timeout: float = 30.0,
        counters: Counters | None = None,
        min_backoff: float = MIN_BACKOFF,
        max_backoff: float = MAX_BACKOFF,
    ) -> None:
        self.spool = spool
        self.node = node
        self.cluster = cluster
        self.counters = counters or Counters("forward")
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.last_success: float | None = None
        """Wall-clock time of the last batch the server stored."""
        self.last_error = ""
        """What went wrong with the last attempt, while failing; empty once sending works."""
        self._failures = 0
        self._failing_since: float | None = None
        verify: Any = True
        if server.startswith("https://"):
            from k3watch.certs import client_ssl_context

            verify = client_ssl_context(ca, cert, key)
        self._http = httpx.Client(
            base_url=server.rstrip("/"),
            headers={
                "Authorization": f"Bearer {token}",
                "User-Agent": f"k3watch-agent/{__version__}",
            },
            verify=verify,
            timeout=timeout,
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the thread ----------------------------------------------------------------------------

    def start(self) -> Forwarder:
        self._thread = threading.Thread(target=self._run, name="k3watch-forward", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the request in flight (or abandon it after ``timeout`` seconds: it is
        still in the spool and is sent again next time)."""
        self._stop.set()
        self.spool.wake()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._http.close()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        cursor = None
        while not self._stop.is_set():
            try:
                frame = self.spool.read(cursor)
            except OSError as exc:
                self.counters.inc("failed", reason="spool_read")
                log.error("cannot read the spool: %s", exc)
                self._stop.wait(self.max_backoff)
                continue
            if frame is None:
                self.spool.wait(cursor, _IDLE_WAIT, self._stop)
                continue
            if not self.deliver(frame):
                return  # stopping: the frame stays in the spool
            self.spool.ack(frame)
            cursor = (frame.segment, frame.end)

    # -- sending -------------------------------------------------------------------------------

    def deliver(self, frame: Frame) -> bool:
        """Send one frame until the server has taken it (or it is dropped); ``False`` when
        stopped first."""
        batch = self.spool.batch_id(self.node, frame)
        return self._send(batch, frame.body, frame.header.count, frame.header)

    def _send(self, batch: str, body: bytes, count: int, header: FrameHeader) -> bool:
        """Send ``body`` (``count`` JSON lines) as batch ``batch``; see the module."""
        while not self._stop.is_set():
            try:
                response = self._post(batch, body, header)
            except httpx.HTTPError as exc:
                self._failed("connection", f"cannot reach the server: {exc or type(exc).__name__}")
                self._wait(self._backoff())
                continue
            status = response.status_code
            self.counters.inc("requests", reason=str(status))
            if status == 200:
                self._stored(batch, count, header, response)
                return True
            detail = _detail(response)
            if status in (429, 503):
                delay = _retry_after(response)
                self.counters.inc("retries", reason="busy")
                log.info(
                    "server busy (%d: %s); sending batch %s again in %.0f s",
                    status,
                    detail,
                    batch,
                    delay,
                    extra={"fields": {"batch": batch, "status": status}},
                )
                self._wait(delay)
                continue
            if status == 413:
                return self._split(batch, body, header, detail)
            if status in (400, 422):
                self.counters.inc("dropped", count, reason="rejected_by_server")
                log.error(
                    "server refused batch %s (%d events of %s) as invalid (%d: %s); dropped it "
                    "so that the rest of the spool can go",
                    batch,
                    count,
                    header.source,
                    status,
                    detail,
                    extra={"fields": {"batch": batch, "status": status, "events": count}},
                )
                return True
            if status >= 500:
                self._failed("server_error", f"server error {status}: {detail}")
                self._wait(self._backoff())
                continue
            reason = {401: "unauthorized", 403: "forbidden"}.get(status, f"http_{status}")
            hint = (
                "check agent.token (an agent token) and the client certificate"
                if status in (401, 403)
                else "check agent.server (the ingest listener's URL)"
            )
            self._failed(reason, f"server answered {status}: {detail}; {hint}", loud=True)
            self._wait(max(AUTH_BACKOFF, self._backoff()))
        return False

    def _post(self, batch: str, body: bytes, header: FrameHeader) -> httpx.Response:
        headers = {"Content-Type": "application/x-ndjson"}
        if header.encoding != IDENTITY:
            headers["Content-Encoding"] = header.encoding
        params = {"batch": batch, "node": self.node, "source": header.label}
        params["format"] = header.format
        if self.cluster:
            params["cluster"] = self.cluster
        self.counters.inc("bytes", len(body))
        return self._http.post(INGEST_PATH, params=params, content=body, headers=headers)

    def _stored(
        self, batch: str, count: int, header: FrameHeader, response: httpx.Response
    ) -> None:
        try:
            result = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            result = {}
        if type(result) is not dict:
            result = {}
        self.counters.inc("sent_events", count)
        self.counters.inc("accepted", _count(result.get("accepted")))
        self.counters.inc("duplicates", _count(result.get("duplicates")))
        rejected = _count(result.get("rejected"))
        if rejected:
            self.counters.inc("dropped", rejected, reason="rejected_by_server")
            errors = result.get("errors")
            first = errors[0] if isinstance(errors, list) and errors else {}
            log.warning(
                "server rejected %d of the %d events of batch %s (%s): %s",
                rejected,
                count,
                batch,
                header.source,
                first.get("message", "") if isinstance(first, dict) else "",
                extra={"fields": {"batch": batch, "rejected": rejected}},
            )
        if self._failures:
            log.info(
                "sending works again after %d failed attempts (%.0f s)",
                self._failures,
                time.monotonic() - (self._failing_since or time.monotonic()),
            )
        self._failures = 0
        self._failing_since = None
        self.last_error = ""
        self.last_success = time.time()

    def _split(self, batch: str, body: bytes, header: FrameHeader, detail: str) -> bool:
        lines = decompress(body, header.encoding).splitlines()
        if len(lines) <= 1:
            self.counters.inc("dropped", len(lines), reason="too_large")
            log.error(
                "server refused an event of %d bytes from %s as too large (%s); dropped it "
                "(raise server.limits.max_body, or lower the source's max_event_bytes)",
                len(lines[0]) if lines else 0,
                header.source,
                detail,
                extra={"fields": {"batch": batch, "bytes": len(lines[0]) if lines else 0}},
            )
            return True
        self.counters.inc("splits")
        log.info(
            "batch %s (%d events) is over the server's size limit; sending it in halves",
            batch,
            len(lines),
        )
        half = len(lines) // 2
        first, second = lines[:half], lines[half:]
        del lines
        encoding = header.encoding
        return self._send(
            f"{batch}-a", compress(b"\n".join(first) + b"\n", encoding), len(first), header
        ) and self._send(
            f"{batch}-b", compress(b"\n".join(second) + b"\n", encoding), len(second), header
        )

    # -- failures --------------------------------------------------------------------------------

    def _failed(self, reason: str, message: str, *, loud: bool = False) -> None:
        self.counters.inc("failed", reason=reason)
        self._failures += 1
        if self._failing_since is None:
            self._failing_since = time.monotonic()
        changed = message != self.last_error
        self.last_error = message
        # Said once when it starts or changes, then every tenth attempt: outages are long.
        if loud or changed or self._failures % 10 == 0:
            level = logging.ERROR if loud or self._failures >= 10 else logging.WARNING
            log.log(
                level,
                "%s (attempt %d; %d events waiting in the spool)",
                message,
                self._failures,
                self.spool.backlog_events,
                extra={"fields": {"reason": reason, "attempt": self._failures}},
            )

    def _backoff(self) -> float:
        """Exponential in the failures so far, with jitter, at most ``max_backoff``."""
        exponent = min(self._failures - 1, 16)
        delay = min(self.max_backoff, self.min_backoff * 2.0**exponent)
        return delay * random.uniform(0.5, 1.0)

    def _wait(self, seconds: float) -> None:
        self._stop.wait(seconds)


def _detail(response: httpx.Response) -> str:
    try:
        obj = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.text[:200]
    if isinstance(obj, dict) and "detail" in obj:
        return str(obj["detail"])[:500]
    return response.text[:200]


def _retry_after(response: httpx.Response) -> float:
    value = response.headers.get("Retry-After", "")
    try:
        seconds = float(value)
    except ValueError:
        seconds = 5.0  # an HTTP date, or nothing: wait a little
    return min(max(seconds, 0.1), MAX_RETRY_AFTER)


def _count(value: object) -> int:
    return value if type(value) is int and value > 0 else 0
