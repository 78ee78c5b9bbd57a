"""The ``stdin`` source: lines from a stream (standard input by default), parsed by name.

``kubectl logs -f … | k3watch agent --source stdin:k3s`` or ``cat audit.log | …``. A thread
reads the stream (a read may block for as long as the writer is quiet) into a small bounded
queue; :meth:`StdinSource.poll` splits and parses. A stream cannot be read again, so items
have no position and nothing is checkpointed. The end of the stream ends the source; its last
line counts even without a newline.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, BinaryIO

from k3watch.errors import InputError, Location
from k3watch.parse.audit import DEFAULT_MAX_EVENT_BYTES
from k3watch.sources.base import DEFAULT_MAX_ITEMS, Item, Position
from k3watch.sources.files import STDIN_NAME
from k3watch.sources.lines import AUDIT, Line, LineSplitter, Record, line_decoder
from k3watch.sources.rotation import FINGERPRINT_BYTES, fingerprint_of
from k3watch.telemetry import Counters

READ_SIZE = 64 * 1024
_TICK = 0.1


class StdinSource:
    """Reads ``stream`` (standard input when ``None``) with the parser named ``format``.

    ``format`` is ``audit`` or a name of :mod:`k3watch.parse.registry` (options in
    ``parser_options``); ``idle_flush`` is how long a parser may hold a record waiting for its
    continuation lines while the stream is quiet. Records of component logs get a ``_key``
    made of the name, a fingerprint of the stream's first line and the byte offset, so the same
    input piped twice gives the same keys.
    """

    def __init__(
        self,
        format: str = AUDIT,
        *,
        name: str = "stdin",
        stream: BinaryIO | None = None,
        idle_flush: float = 2.0,
        max_line_bytes: int | None = None,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        parser_options: dict[str, Any] | None = None,
        counters: Counters | None = None,
        parser_counters: Counters | None = None,
        on_error: Callable[[InputError], None] | None = None,
    ) -> None:
        self.name = name
        self.format = format
        self.counters = counters or Counters("source")
        self.parser_counters = parser_counters or Counters("parse")
        self.on_error = on_error or (lambda error: None)
        self.idle_flush = idle_flush
        self._decoder = line_decoder(
            format,
            self.parser_counters,
            self.on_error,
            max_line_bytes=max_line_bytes,
            max_event_bytes=max_event_bytes,
            parser_options=parser_options,
        )
        self._stream = stream if stream is not None else sys.stdin.buffer
        self._split = LineSplitter(self._decoder.parser.max_line_bytes)
        self._head = b""
        self._chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=64)
        self._outbox: deque[Item] = deque()
        self._reader: threading.Thread | None = None
        self._last_line = time.monotonic()
        self._ended = False
        self._closed = False

    @property
    def done(self) -> bool:
        return self._closed or (self._ended and not self._outbox)

    def poll(self, max_items: int = DEFAULT_MAX_ITEMS, timeout: float = 0.0) -> list[Item]:
        if self._reader is None:
            self._reader = threading.Thread(target=self._read, name=f"{self.name}-reader")
            self._reader.daemon = True  # a read from a quiet pipe cannot be interrupted
            self._reader.start()
        deadline = time.monotonic() + timeout
        while len(self._outbox) < max_items and not (self._ended or self._closed):
            left = deadline - time.monotonic()
            try:
                if self._outbox or left <= 0:
                    chunk = self._chunks.get_nowait()
                else:
                    chunk = self._chunks.get(timeout=min(left, _TICK))
            except queue.Empty:
                if time.monotonic() - self._last_line >= self.idle_flush:
                    self._emit(self._decoder.flush())
                if self._outbox or time.monotonic() >= deadline:
                    break
                continue
            if chunk is None:
                self._end()
            else:
                self._take(chunk)
        count = min(max_items, len(self._outbox))
        return [self._outbox.popleft() for _ in range(count)]

    def commit(self, position: Position) -> None:
        """Nothing to persist: a stream cannot be read again."""

    def close(self) -> None:
        self._closed = True

    def _read(self) -> None:
        stream = self._stream
        read = getattr(stream, "read1", stream.read)  # read1: whatever is there, not 64 KiB
        try:
            while chunk := read(READ_SIZE):
                self._chunks.put(chunk)
        except (OSError, ValueError) as exc:
            self.counters.inc("failed", reason="read_error")
            self.on_error(
                InputError(
                    f"read failed ({exc}); rest of the input skipped",
                    Location(STDIN_NAME),
                    reason="read_error",
                )
            )
        self._chunks.put(None)

    def _take(self, chunk: bytes) -> None:
        if len(self._head) < FINGERPRINT_BYTES:
            self._head += chunk[: FINGERPRINT_BYTES - len(self._head)]
        self.counters.inc("bytes", len(chunk))
        lines = self._split.feed(chunk)
        if lines:
            self._last_line = time.monotonic()
        for line in lines:
            self._line(line)

    def _line(self, line: Line) -> None:
        self.counters.inc("lines")
        self._emit(self._decoder.decode(line, STDIN_NAME))

    def _end(self) -> None:
        last = self._split.finish()
        if last is not None:
            self._line(last)
        self._emit(self._decoder.flush())
        self._ended = True

    def _emit(self, records: list[Record]) -> None:
        if not records:
            return
        base = f"{self.name}#{fingerprint_of(self._head).sha256[:16]}"
        for record in records:
            raw = record.event.raw
            if "_key" in raw:
                raw["_key"] = f"{base}@{record.offset}"
            self._outbox.append(Item(record.event, None))
        self.counters.inc("items", len(records))
