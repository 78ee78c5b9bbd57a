"""The normalized log record (``k3watch.log/v1``) and what every log parser shares.

Component logs (K3s, kubelet, containerd, etcd) and kernel AppArmor/seccomp lines all become
:class:`~k3watch.event.Event` objects whose ``raw`` is one flat JSON object, documented field by
field in docs/logs.md. A parser fills a :class:`LogRecord` and turns it into an event with
:meth:`LogRecord.event`.

:class:`LineParser` is the base of the line-oriented parsers: it splits a byte stream into
lines with their byte offsets (the offset is part of the record's stable ``_key``), bounds
line length, reports diagnostics and keeps counters. Subclasses implement
:meth:`LineParser.parse_line`, which returns the records a line completes: a record that may
still receive continuation lines is held until the next header line or :meth:`flush`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from k3watch.errors import InputError, Location
from k3watch.event import Event
from k3watch.parse.timestamps import FIRST_US, LAST_US, format_us
from k3watch.telemetry import Counters

KIND = "k3watch.log/v1"

DEFAULT_MAX_LINE_BYTES = 1024 * 1024
DEFAULT_MAX_RECORD_BYTES = 256 * 1024
CHUNK_SIZE = 1024 * 1024

# Level names as written by each format → the normalized level.
LEVELS = {
    # klog
    "I": "info",
    "W": "warning",
    "E": "error",
    "F": "fatal",
    # logrus (text and terminal forms) and zap
    "trace": "trace",
    "debug": "debug",
    "info": "info",
    "warn": "warning",
    "warning": "warning",
    "error": "error",
    "dpanic": "error",
    "fatal": "fatal",
    "panic": "panic",
    "TRAC": "trace",
    "DEBU": "debug",
    "INFO": "info",
    "WARN": "warning",
    "ERRO": "error",
    "FATA": "fatal",
    "PANI": "panic",
}

# syslog / journald PRIORITY → level.
PRIORITIES = (
    "emergency",
    "alert",
    "critical",
    "error",
    "warning",
    "notice",
    "info",
    "debug",
)

# What could not be read in a line, as (reason, message): the parser reports each with the
# line's location.
Problems = list[tuple[str, str]]

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def strip_ansi(text: str) -> str:
    """Text without terminal colour codes (logrus colours its output on a terminal)."""
    return _ANSI.sub("", text) if "\x1b" in text else text


def decode(data: bytes | str) -> str:
    """Bytes as text: UTF-8, invalid sequences replaced with U+FFFD."""
    if isinstance(data, str):
        return data
    return data.decode("utf-8", errors="replace")


@dataclass(slots=True)
class LogRecord:
    """A log record being built; :meth:`event` makes the normalized raw object.

    ``time`` is UTC microseconds since the epoch. ``format`` is the innermost format that was
    recognized (``logrus``, ``klog``, ``json``, ``kernel``), else the wrapper's (``journald``,
    ``syslog``) or ``text``.
    """

    message: str
    format: str
    time: int | None = None
    level: str | None = None
    host: str | None = None
    unit: str | None = None
    ident: str | None = None
    pid: int | None = None
    component: str | None = None
    caller: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    kernel: dict[str, Any] | None = None
    container: dict[str, str] | None = None
    truncated: bool = False

    def raw(self, key: str, source: dict[str, Any]) -> dict[str, Any]:
        """The ``k3watch.log/v1`` object; unknown fields are left out rather than null."""
        raw: dict[str, Any] = {"kind": KIND}
        if self.time is not None:
            raw["time"] = format_us(self.time)
        raw["message"] = self.message
        if self.level is not None:
            raw["level"] = self.level
        if self.host is not None:
            raw["host"] = self.host
        if self.unit is not None:
            raw["unit"] = self.unit
        if self.ident is not None:
            raw["ident"] = self.ident
        if self.pid is not None:
            raw["pid"] = self.pid
        if self.component is not None:
            raw["component"] = self.component
        raw["format"] = self.format
        raw["source"] = source
        if self.caller is not None:
            raw["caller"] = self.caller
        if self.fields:
            raw["fields"] = self.fields
        if self.kernel is not None:
            raw["kernel"] = self.kernel
        if self.container:
            raw["container"] = self.container
        if self.truncated:
            raw["truncated"] = True
        raw["_key"] = key
        return raw

    def event(self, key: str, source: dict[str, Any], name: str, line: int, offset: int) -> Event:
        """The record as an Event read from ``name`` at ``line`` (``offset`` in bytes)."""
        return Event(self.raw(key, source), name, line, truncated=self.truncated, offset=offset)


class PreparedRecord:
    """A record whose raw object a parser's fast path made as its first line was read.

    Stands in for a :class:`LogRecord` where one is held and emitted, leaving only what is
    known later: the ``message`` (the body, once continuation lines are joined), the
    ``truncated`` mark (set when they overflow) and the key and source. ``raw`` holds every
    other field in :meth:`LogRecord.raw`'s order, with ``time`` (when there is one),
    ``message`` and ``source`` in their places to be filled: the time is written out when
    emitted, as a LogRecord's is (after :meth:`LineParser.emit` has checked its range). One
    is made per line, where a LogRecord and its raw object would take twice as long.
    """

    __slots__ = ("message", "raw", "time", "truncated")

    def __init__(
        self, raw: dict[str, Any], time: int | None, message: str, truncated: bool
    ) -> None:
        self.raw = raw
        self.time = time
        self.message = message
        self.truncated = truncated

    def event(self, key: str, source: dict[str, Any], name: str, line: int, offset: int) -> Event:
        """As :meth:`LogRecord.event` (the raw object is completed: emit a record once)."""
        raw = self.raw
        if self.time is not None:
            raw["time"] = format_us(self.time)
        else:
            raw.pop("time", None)  # dropped as out of range (a LogRecord leaves it out too)
        raw["message"] = self.message
        raw["source"] = source
        if self.truncated:
            raw["truncated"] = True
        raw["_key"] = key
        return Event(raw, name, line, truncated=self.truncated, offset=offset)


@dataclass(slots=True)
class Origin:
    """Where a record starts: the input's name, line number and byte offset (or cursor)."""

    name: str
    line: int
    offset: int
    cursor: str | None = None
    invocation: str | None = None

    def key(self, prefix: str | None = None) -> str:
        """The record's ``_key``: its cursor, else ``prefix`` (``name@`` if not given) and
        its offset."""
        if self.cursor is not None:
            return self.cursor
        return f"{self.name}@{self.offset}" if prefix is None else f"{prefix}{self.offset}"

    def source(self) -> dict[str, Any]:
        if self.cursor is not None:
            out: dict[str, Any] = {"cursor": self.cursor}
            if self.invocation is not None:
                out["invocation"] = self.invocation
            return out
        return {"file": self.name, "offset": self.offset, "line": self.line}


@dataclass(slots=True)
class Pending:
    """A record held for continuation lines: its header's body and the lines joined so far."""

    record: LogRecord | PreparedRecord
    origin: Origin
    body: str  # the text after the header, which continuation lines extend
    lines: int = 1
    size: int = 0
    last_time: int | None = None  # the wrapper time of the last line joined (journal only)
    finish: Callable[[Pending], None] | None = None  # re-reads the body once it is complete


class Joiner:
    """Holds the last record of each stream until a header line or the end ends it.

    A stream is one writer (a unit and process, a syslog tag and pid); headerless lines
    (``Trace[…]:`` steps, wrapped text, stack traces) are appended to the record held for
    their stream. A record that grows past ``max_bytes`` is closed, marked truncated, and the
    rest of its continuation lines are dropped (counted in ``dropped{continuation_overflow}``).
    """

    __slots__ = ("_counters", "_overflowed", "_pending", "max_bytes", "max_streams")

    def __init__(self, counters: Counters, max_bytes: int, max_streams: int = 256) -> None:
        self._counters = counters
        self._pending: dict[object, Pending] = {}
        self._overflowed: set[object] = set()
        self.max_bytes = max_bytes
        self.max_streams = max_streams

    def start(self, stream: object, pending: Pending) -> list[Pending]:
        """Hold a new record for ``stream``; returns the records this closes."""
        done = []
        previous = self._pending.pop(stream, None)
        if previous is not None:
            done.append(previous)
        self._overflowed.discard(stream)
        if len(self._pending) >= self.max_streams:
            oldest = next(iter(self._pending))
            done.append(self._pending.pop(oldest))
        pending.size = len(pending.body)
        self._pending[stream] = pending
        return done

    def join(self, stream: object, text: str, when: int | None = None, window: int = 0) -> bool:
        """Append a continuation line; ``False`` if no record of the stream can take it.

        With ``when`` and ``window`` (µs) set, a line more than ``window`` after the last
        line joined belongs to no record (a journal entry written much later).
        """
        pending = self._pending.get(stream)
        if pending is None:
            return False
        last = pending.last_time
        if window and when is not None and last is not None and abs(when - last) > window:
            return False
        if stream in self._overflowed or pending.size + len(text) + 1 > self.max_bytes:
            pending.record.truncated = True
            self._overflowed.add(stream)
            self._counters.inc("dropped", reason="continuation_overflow")
            return True
        pending.body += "\n" + text
        pending.size += len(text) + 1
        pending.lines += 1
        if when is not None:
            pending.last_time = when
        self._counters.inc("joined")
        return True

    def close(self, stream: object) -> list[Pending]:
        pending = self._pending.pop(stream, None)
        self._overflowed.discard(stream)
        return [] if pending is None else [pending]

    def flush(self) -> list[Pending]:
        """Every record held, oldest stream first."""
        done = list(self._pending.values())
        self._pending.clear()
        self._overflowed.clear()
        return done


class LineParser:
    """Base class of the line-oriented log parsers.

    Diagnostics go to ``on_error`` as located :class:`~k3watch.errors.InputError` objects and
    are counted in ``parse_errors{reason}``; emitted records are counted in ``events``, lines
    read in ``lines``. No input makes a parser raise.

    ``key_prefix``, when set, starts the ``_key`` of every record read from a file in place
    of ``name@``: a file source names the file by its path and fingerprint there, so that a
    record read again from a rotated backup keeps its key. It may change between lines and
    applies to the records emitted after the change.
    """

    key_prefix: str | None = None

    def __init__(
        self,
        counters: Counters,
        on_error: Callable[[InputError], None],
        *,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    ) -> None:
        self.counters = counters
        self.on_error = on_error
        self.max_line_bytes = max_line_bytes

    def parse_stream(
        self, stream: BinaryIO, source: str, *, offset: int = 0, line: int = 1
    ) -> Iterator[Event]:
        """Events from a byte stream, in order; the records still held are flushed at its end.

        ``offset`` and ``line`` say where the stream starts in the file (a source resuming a
        file it read before), so that keys and locations stay those of the whole file.
        """
        lineno = line - 1
        try:
            for lineno, start, data, cut in read_lines(stream, self.max_line_bytes, offset, line):
                if cut:
                    self.report(
                        "line_too_long",
                        f"line is over the {self.max_line_bytes}-byte limit; "
                        "the rest of it is dropped",
                        Location(source, lineno),
                        "raise max_line_bytes if lines this long are expected",
                    )
                yield from self.parse_line(data, source, lineno, start, truncated=cut)
        except OSError as exc:
            self.report(
                "read_error",
                f"read failed ({exc.strerror or exc}); rest of the input skipped",
                Location(source, lineno + 1),
            )
        yield from self.flush()

    def parse_lines(self, lines: Iterable[bytes | str], source: str) -> Iterator[Event]:
        """Events from lines without their newlines (offsets count one byte per newline)."""
        offset = 0
        for lineno, line in enumerate(lines, 1):
            data = line.encode("utf-8", errors="surrogateescape") if isinstance(line, str) else line
            yield from self.parse_line(data, source, lineno, offset)
            offset += len(data) + 1
        yield from self.flush()

    def parse_line(
        self,
        line: bytes | str,
        source: str,
        lineno: int = 1,
        offset: int = 0,
        *,
        truncated: bool = False,
    ) -> list[Event]:
        """The events completed by one line (often none, while a record waits for more)."""
        raise NotImplementedError

    def flush(self) -> list[Event]:
        """Every record still held, as events (at the end of the input, or when idle)."""
        return []

    def report(self, reason: str, message: str, location: Location, hint: str = "") -> None:
        self.counters.inc("parse_errors", reason=reason)
        self.on_error(InputError(message, location, hint, reason))

    def emit(self, record: LogRecord | PreparedRecord, origin: Origin) -> Event:
        self.counters.inc("events")
        when = record.time
        if when is not None and not FIRST_US <= when <= LAST_US:
            record.time = None
            self.report(
                "invalid_time",
                "time outside the years 1 to 9999 once in UTC; not used",
                Location(origin.name, origin.line),
            )
        return record.event(
            origin.key(self.key_prefix), origin.source(), origin.name, origin.line, origin.offset
        )


def read_lines(
    stream: BinaryIO,
    max_line_bytes: int,
    offset: int = 0,
    line: int = 1,
    chunk_size: int = CHUNK_SIZE,
) -> Iterator[tuple[int, int, bytes, bool]]:
    """``(line number, byte offset, line, cut)`` for each line; ``cut`` if it was too long.

    Lines come without ``\\n`` (and a ``\\r`` before it); only the first ``max_line_bytes``
    of a longer line are kept, so memory stays bounded whatever the input.
    """
    parts: list[bytes] = []
    held = 0
    cut = False
    start = offset
    base = offset  # the offset of the current chunk
    lineno = line
    limit = max_line_bytes + 1  # room for a "\r" that will be stripped
    while chunk := stream.read(chunk_size):
        begin = 0
        while True:
            newline = chunk.find(b"\n", begin)
            end = len(chunk) if newline < 0 else newline
            if not cut and end > begin:
                room = limit - held
                piece = chunk[begin : begin + room] if end - begin > room else chunk[begin:end]
                if end - begin > room:
                    cut = True
                parts.append(piece)
                held += len(piece)
            if newline < 0:
                break
            data = b"".join(parts)
            if data.endswith(b"\r"):
                data = data[:-1]
            if len(data) > max_line_bytes:
                data, cut = data[:max_line_bytes], True
            yield lineno, start, data, cut
            parts, held, cut = [], 0, False
            lineno += 1
            start = base + newline + 1
            begin = newline + 1
        base += len(chunk)
    if parts or cut:
        data = b"".join(parts)
        if data.endswith(b"\r"):
            data = data[:-1]
        if len(data) > max_line_bytes:
            data, cut = data[:max_line_bytes], True
        yield lineno, start, data, cut
