"""The agent's main loop: sources → batches → spool (on disk) → the forwarder → the server.

Each source's items are grouped into batches of at most ``batch_max_events``, waiting at most
``batch_max_wait``. A batch is written to the spool and flushed to disk, and only then is the
source's checkpoint moved past its last item: a crash before that reads the items again (the
server drops what it already has), a crash after finds them in the spool. The forwarder runs
alongside and sends the spool to the server.

``--once`` reads until every source is done (``audit_file``, ``file`` and ``journald`` read
what is there; ``stdin`` to its end; ``webhook`` sources are not started), then waits for the
spool to drain and exits 1 if it did not within the timeout. :meth:`Agent.stop` (SIGTERM,
SIGINT) closes the sources, writes what was read to the spool and exits 0.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import orjson

from k3watch.agent.config import (
    AgentConfig,
    AuditFileSourceConfig,
    FileSourceConfig,
    JournaldSourceConfig,
    SourceConfig,
    StdinSourceConfig,
    WebhookSourceConfig,
)
from k3watch.agent.forward import Forwarder
from k3watch.agent.local import LocalRules
from k3watch.agent.metrics import MetricsServer, SourceTelemetry, Telemetry
from k3watch.agent.spool import IDENTITY, FrameHeader, Spool
from k3watch.errors import InputError, K3watchError, Location, UsageError
from k3watch.process import tune_gc
from k3watch.rules.extension import parse_duration
from k3watch.sources.base import Item, Position, Source
from k3watch.sources.checkpoint import CheckpointStore
from k3watch.telemetry import Counters

log = logging.getLogger(__name__)

TICK = 0.1  # how often sources without a poll interval of their own are polled
MAX_SLEEP = 1.0  # the loop wakes at least this often (to notice a stop)
SPOOL_DIR = "spool"
CHECKPOINT_DIR = "checkpoints"
ERRORS_PER_MINUTE = 10  # input errors logged per source and reason; the rest are counted
SPOOL_RETRY = 1.0  # wait before writing a batch again after the spool refused it


def _size(value: int | str | None) -> int | None:
    from k3watch.config import parse_size

    return None if value is None else parse_size(value)


def _bytes(value: int | str) -> int:
    from k3watch.config import parse_size

    return parse_size(value)


class _ErrorLog:
    """Logs a source's input errors, at most :data:`ERRORS_PER_MINUTE` per reason a minute."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._windows: dict[str, tuple[float, int]] = {}

    def __call__(self, error: InputError) -> None:
        now = time.monotonic()
        start, count = self._windows.get(error.reason, (now, 0))
        if now - start >= 60:
            if count > ERRORS_PER_MINUTE:
                log.warning(
                    "%s: %d more input errors of reason %s in the last minute (counted, not "
                    "logged)",
                    self.source,
                    count - ERRORS_PER_MINUTE,
                    error.reason,
                )
            start, count = now, 0
        count += 1
        self._windows[error.reason] = (start, count)
        if count <= ERRORS_PER_MINUTE:
            log.warning(
                "%s: %s",
                self.source,
                error,
                extra={"fields": {"source": self.source, "reason": error.reason}},
            )


def build_source(
    config: SourceConfig,
    *,
    follow: bool,
    start_at: str,
    checkpoints: CheckpointStore,
    on_error: Callable[[InputError], None],
    stdin: BinaryIO | None = None,
) -> Source:
    """The source a ``sources`` entry describes; UsageError when it cannot start."""
    name = config.source_name
    if isinstance(config, AuditFileSourceConfig):
        from k3watch.sources.audit_file import AuditFileSource

        return AuditFileSource(
            config.path,
            name=name,
            checkpoints=checkpoints,
            follow=follow,
            start_at=config.start_at or start_at,
            read_backups=config.read_backups,
            poll_interval=parse_duration(config.poll_interval),
            rotate_wait=parse_duration(config.rotate_wait),
            max_line_bytes=_bytes(config.max_line_bytes),
            max_event_bytes=_bytes(config.max_event_bytes),
            on_error=on_error,
        )
    if isinstance(config, FileSourceConfig):
        from k3watch.sources.tail import FileSource

        return FileSource(
            config.path,
            format=config.format,
            name=name,
            checkpoints=checkpoints,
            follow=follow,
            start_at=config.start_at or start_at,
            read_backups=config.read_backups,
            poll_interval=parse_duration(config.poll_interval),
            rotate_wait=parse_duration(config.rotate_wait),
            idle_flush=parse_duration(config.idle_flush),
            max_line_bytes=_size(config.max_line_bytes),
            max_event_bytes=_bytes(config.max_event_bytes),
            parser_options=dict(config.parser_options) or None,
            on_error=on_error,
        )
    if isinstance(config, JournaldSourceConfig):
        from k3watch.sources.journald import JournaldSource

        return JournaldSource(
            name=name,
            units=config.units,
            kernel=config.kernel,
            matches=config.matches,
            directory=config.directory,
            files=config.files,
            follow=follow,
            start_at=config.start_at or start_at,
            since=config.since,
            journalctl=config.journalctl,
            checkpoints=checkpoints,
            restart_delay=parse_duration(config.restart_delay),
            max_restart_delay=parse_duration(config.max_restart_delay),
            idle_flush=parse_duration(config.idle_flush),
            max_line_bytes=_bytes(config.max_line_bytes),
            queue_lines=config.queue_lines,
            parser_options=dict(config.parser_options) or None,
            on_error=on_error,
        )
    if isinstance(config, WebhookSourceConfig):
        from k3watch.sources.webhook import WebhookSource

        try:
            return WebhookSource(
                name=name,
                host=config.host,
                port=config.port,
                path=config.path,
                token=config.token,
                certfile=config.cert_file,
                keyfile=config.key_file,
                client_ca=config.client_ca_file,
                capacity=config.capacity,
                max_body_bytes=_bytes(config.max_body_bytes),
                max_event_bytes=_bytes(config.max_event_bytes),
                on_error=on_error,
            )
        except OSError as exc:
            raise UsageError(
                f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}"
            ) from exc
    if isinstance(config, StdinSourceConfig):
        from k3watch.sources.stdin import StdinSource

        return StdinSource(
            config.format,
            name=name,
            stream=stdin,
            idle_flush=parse_duration(config.idle_flush),
            max_line_bytes=_size(config.max_line_bytes),
            max_event_bytes=_bytes(config.max_event_bytes),
            parser_options=dict(config.parser_options) or None,
            on_error=on_error,
        )
    raise UsageError(f"unknown source type {type(config).__name__}")


@dataclass(slots=True)
class _Input:
    """A running source and the batch it is filling.

    Items are turned into JSON lines as soon as they are polled, so that the parsed events
    are freed at once: a batch waiting for more items holds its bytes only.
    """

    config: SourceConfig
    source: Source
    lines: list[bytes] = field(default_factory=list)
    position: Position = None  # the source's position after the batch's last item
    first_time: float | None = None
    last_time: float | None = None
    since: float = 0.0  # when the first item of the batch came (monotonic)
    retry_at: float = 0.0  # after the spool refused a batch: not before then
    stopped: bool = False  # failed: not polled any more
    pending: int = 0  # items polled into the batch (some may have been dropped)
    poll_every: float = TICK  # after a poll that found nothing, wait this long (the source's
    # poll_interval): polling a quiet file more often costs CPU and finds nothing sooner
    next_poll: float = 0.0

    @property
    def finished(self) -> bool:
        return (self.stopped or self.source.done) and not self.pending

    def take(self, items: list[Item], now: float, on_bad: Callable[[Exception], None]) -> None:
        """Add polled items to the batch."""
        if not self.pending:
            self.since = now
            self.first_time = items[0].event.time
        dumps = orjson.dumps
        lines = self.lines
        for item in items:
            event = item.event
            if event.data is not None:
                lines.append(event.data)  # the line as read: the same JSON, not encoded again
                continue
            try:
                lines.append(dumps(event.raw))
            except TypeError as exc:  # parsed input is JSON; but never crash on it
                on_bad(exc)
        self.pending += len(items)
        self.position = items[-1].position
        self.last_time = items[-1].event.time

    def clear(self) -> None:
        self.lines = []
        self.pending = 0
        self.position = None
        self.first_time = self.last_time = None


class Agent:
    """The node agent for ``config`` (see the module). ``once`` reads what is there and
    ends; ``stdin`` replaces standard input for ``stdin`` sources (tests)."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        once: bool = False,
        stdin: BinaryIO | None = None,
        local: LocalRules | None = None,
    ) -> None:
        try:
            config.require()
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
        self.config = config
        self.once = once
        self.local = local
        """Rules evaluated here (``agent.local_rules``), built by the caller."""
        self.node = config.node_name
        self.counters = Counters("reader")
        self.max_events = config.batch_max_events
        self.max_wait = config.batch_max_wait_seconds
        self._stop = threading.Event()
        self._failed_sources = 0
        self.inputs: list[_Input] = []
        self.metrics: MetricsServer | None = None
        directory = Path(config.spool_dir)
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.spool = Spool(
                directory / SPOOL_DIR,
                max_size=config.spool_max_size_bytes,
                encoding=IDENTITY if config.compression == "none" else config.compression,
            )
        except OSError as exc:
            raise UsageError(
                f"cannot open the spool: {exc.strerror or exc}",
                Location(str(directory)),
                "check agent.spool_dir: the agent needs its own directory it can write",
            ) from exc
        try:
            self.checkpoints = CheckpointStore(directory / CHECKPOINT_DIR)
            self.forwarder = Forwarder(
                self.spool,
                server=config.server,
                token=config.token,
                node=self.node,
                cluster=config.cluster,
                ca=Path(config.ca_file) if config.ca_file else None,
                cert=Path(config.cert_file) if config.cert_file else None,
                key=Path(config.key_file) if config.key_file else None,
                timeout=config.timeout_seconds,
            )
            self.telemetry = Telemetry(self.spool, self.forwarder, self.counters)
            self._build_sources(stdin)
            if config.metrics_listen is not None:
                try:
                    self.metrics = MetricsServer(config.metrics_listen, self.telemetry)
                except OSError as exc:
                    raise UsageError(
                        f"cannot listen on {config.metrics_listen} for /metrics: "
                        f"{exc.strerror or exc}",
                        hint="set agent.metrics_listen to a free address, or null",
                    ) from exc
        except BaseException:
            self._close_sources()
            if hasattr(self, "forwarder"):
                self.forwarder.stop()
            self.spool.close()
            raise

    def _build_sources(self, stdin: BinaryIO | None) -> None:
        for config in self.config.sources:
            if self.once and isinstance(config, WebhookSourceConfig):
                log.warning(
                    "%s: webhook sources do not run with --once (nothing to read to an end)",
                    config.source_name,
                )
                continue
            try:
                source = build_source(
                    config,
                    follow=not self.once,
                    start_at=self.config.start_at,
                    checkpoints=self.checkpoints,
                    on_error=_ErrorLog(config.source_name),
                    stdin=stdin,
                )
            except K3watchError as exc:
                raise UsageError(f"source {config.source_name!r}: {exc}") from exc
            every = getattr(config, "poll_interval", None)
            self.inputs.append(
                _Input(config, source, poll_every=TICK if every is None else parse_duration(every))
            )
            self.telemetry.sources.append(
                SourceTelemetry(
                    source.name, source.counters, getattr(source, "parser_counters", None)
                )
            )

    # -- running -----------------------------------------------------------------------------------

    @property
    def metrics_url(self) -> str | None:
        return self.metrics.url if self.metrics is not None else None

    def stop(self) -> None:
        """Ask the agent to end (from a signal handler or another thread)."""
        self._stop.set()
        self.spool.wake()

    def run(self, once_timeout: float = 60.0) -> int:
        """Run until stopped (or, with ``once``, until read and delivered); the exit code."""
        names = ", ".join(i.source.name for i in self.inputs)
        log.info(
            "agent for node %s sending to %s; sources: %s; spool %s (%d events waiting)",
            self.node,
            self.config.server,
            names or "none",
            self.spool.directory,
            self.spool.backlog_events,
            extra={"fields": {"node": self.node, "backlog_events": self.spool.backlog_events}},
        )
        tune_gc()
        if self.local is not None:
            self.local.start()
        self.forwarder.start()
        if self.metrics is not None:
            self.metrics.start()
        code = 0
        try:
            try:
                self._read()
            finally:
                self._close_sources()
                self._spool_the_rest()
                if self.local is not None:
                    self.local.close()
            if self.once and not self._stop.is_set():
                code = self._drain(once_timeout)
        finally:
            self.forwarder.stop()
            if self.metrics is not None:
                self.metrics.stop()
            self.spool.close()
        if self.once and self._failed_sources:
            code = 1
        log.info(
            "agent stopped; %d events waiting in the spool",
            self.spool.backlog_events,
            extra={"fields": {"backlog_events": self.spool.backlog_events}},
        )
        return code

    def _read(self) -> None:
        while not self._stop.is_set():
            busy = False
            now = time.monotonic()
            wake = now + MAX_SLEEP
            for put in self.inputs:
                if put.retry_at > now:
                    wake = min(wake, put.retry_at)
                    continue
                room = self.max_events - put.pending
                due = put.next_poll <= now or self.once
                if due and room > 0 and not put.stopped and not put.source.done:
                    try:
                        items = put.source.poll(room, 0.0)
                    except Exception as exc:
                        self._source_failed(put, exc)
                        items = []
                    if items:
                        if self.local is not None:
                            self.local.observe(items)
                        put.take(items, now, self._unserializable(put))
                        busy = busy or len(items) == room
                    else:
                        put.next_poll = now + put.poll_every
                if put.pending and (
                    put.pending >= self.max_events
                    or now - put.since >= self.max_wait
                    or put.stopped
                    or put.source.done
                ):
                    self._flush(put)
                wake = min(wake, max(put.next_poll, now + TICK))
                if put.pending:
                    wake = min(wake, put.since + self.max_wait)
            if self.once and all(put.finished for put in self.inputs):
                return
            if not busy:
                self._stop.wait(max(0.005, wake - time.monotonic()) if not self.once else TICK)

    def _unserializable(self, put: _Input) -> Callable[[Exception], None]:
        def report(exc: Exception) -> None:
            self.counters.inc("dropped", reason="unserializable")
            log.error("%s: an event is not JSON (%s); dropped", put.source.name, exc)

        return report

    def _flush(self, put: _Input) -> bool:
        """Write the input's batch to the spool, then commit its position to the source."""
        lines = put.lines
        config = put.config
        header = FrameHeader(
            source=put.source.name,
            label=config.server_label,
            format=config.wire_format,
            count=len(lines),
            first_time=put.first_time,
            last_time=put.last_time,
            written=time.time(),
        )
        if lines:
            try:
                self.spool.append(header, lines)
            except OSError as exc:
                self.counters.inc("failed", reason="spool_write")
                put.retry_at = time.monotonic() + SPOOL_RETRY
                log.error(
                    "cannot write %d events of %s to the spool (%s); reading it is paused and "
                    "the batch is written again in %.0f s",
                    len(lines),
                    put.source.name,
                    exc.strerror or exc,
                    SPOOL_RETRY,
                    extra={"fields": {"source": put.source.name, "events": len(lines)}},
                )
                return False
        self.counters.inc("spooled_events", len(lines))
        position = put.position
        put.clear()
        if position is not None:
            try:
                put.source.commit(position)
            except (OSError, K3watchError) as exc:
                # The events are in the spool: a restart reads them again, and the server
                # drops what it already has.
                self.counters.inc("failed", reason="checkpoint")
                log.error("%s: cannot save its checkpoint: %s", put.source.name, exc)
        return True

    def _source_failed(self, put: _Input, exc: Exception) -> None:
        self._failed_sources += 1
        put.stopped = True
        self.counters.inc("failed", reason="source")
        if isinstance(exc, K3watchError):
            log.error("%s stopped: %s", put.source.name, exc)
        else:
            log.exception("%s stopped by an unexpected error", put.source.name)
        try:
            put.source.close()
        except Exception:
            log.exception("%s: closing it failed", put.source.name)

    def _close_sources(self) -> None:
        for put in self.inputs:
            try:
                put.source.close()
            except Exception:
                log.exception("%s: closing it failed", put.source.name)

    def _spool_the_rest(self) -> None:
        """After the sources are closed: what they read (the webhook's queue) goes to the
        spool, so that it is not lost."""
        for put in self.inputs:
            while True:
                room = self.max_events - put.pending
                try:
                    items = put.source.poll(room, 0.0) if room > 0 and not put.stopped else []
                except Exception:
                    items = []
                if items:
                    if self.local is not None:
                        self.local.observe(items)
                    put.take(items, time.monotonic(), self._unserializable(put))
                if not put.pending:
                    break
                if not self._flush(put):
                    if put.position is None:  # not read again after a restart
                        self.counters.inc("dropped", len(put.lines), reason="spool_write")
                        log.error(
                            "%s: %d events lost: the spool cannot be written",
                            put.source.name,
                            len(put.lines),
                        )
                    put.clear()
                    break
                if not items:
                    break

    def _drain(self, timeout: float) -> int:
        if self.spool.wait_drained(timeout, self._stop):
            log.info("everything read was delivered to the server")
            return 0
        if self._stop.is_set():
            return 0
        log.error(
            "%d events were not delivered within %.0f s (%s); they stay in the spool and go "
            "with the next run",
            self.spool.backlog_events,
            timeout,
            self.forwarder.last_error or "the server is slow",
            extra={"fields": {"backlog_events": self.spool.backlog_events}},
        )
        return 1
