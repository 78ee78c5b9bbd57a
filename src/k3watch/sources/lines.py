"""Lines from bytes that arrive in pieces, and the parsers that turn lines into records.

:class:`LineSplitter` keeps the incomplete last line of a growing file until its newline
arrives, numbers lines, records their byte offsets and bounds their length.
:func:`line_decoder` wraps a parser chosen by name: ``audit`` for API-server audit logs (JSON
lines, one ``Event`` or ``EventList`` a line), or any name of
:data:`k3watch.parse.registry.PARSERS`. A decoder also tells which records it still holds for
continuation lines, which is what lets a source resume without losing or repeating them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import orjson

from k3watch.errors import InputError, Location
from k3watch.event import Event
from k3watch.parse.audit import DEFAULT_MAX_EVENT_BYTES, AuditParser
from k3watch.parse.k3s_log import StreamParser
from k3watch.parse.kernel import KernelParser
from k3watch.parse.logs import DEFAULT_MAX_LINE_BYTES, LineParser, Origin
from k3watch.parse.registry import create_parser
from k3watch.telemetry import Counters

AUDIT = "audit"
# Audit lines longer than this are skipped (an event over max_event_bytes keeps its metadata).
DEFAULT_MAX_AUDIT_LINE_BYTES = 4 * DEFAULT_MAX_EVENT_BYTES


class Line(NamedTuple):
    """A complete line without its newline (nor a ``\\r`` before it).

    ``offset`` is where it starts and ``end`` where the next line starts; ``cut`` says the
    line was longer than the limit and ``data`` holds only its first bytes. A named tuple
    rather than a frozen dataclass: one is made per line read, and a frozen dataclass takes
    twice as long to build.
    """

    data: bytes
    offset: int
    end: int
    number: int
    cut: bool = False


class LineSplitter:
    """Splits bytes fed in pieces into :class:`Line` values, holding the incomplete last one.

    ``offset`` is where the held partial line starts (the end of the last complete line) and
    ``line`` its number; a line over ``max_line_bytes`` keeps only its first bytes.
    """

    __slots__ = ("_cut", "_kept", "_parts", "_size", "line", "max_line_bytes", "offset")

    def __init__(self, max_line_bytes: int, offset: int = 0, line: int = 1) -> None:
        self.max_line_bytes = max_line_bytes
        self.offset = offset
        self.line = line
        self._parts: list[bytes] = []
        self._size = 0  # bytes of the partial line, including those dropped from a long one
        self._kept = 0  # bytes in _parts
        self._cut = False

    @property
    def pending(self) -> int:
        """Bytes of the incomplete last line."""
        return self._size

    def feed(self, data: bytes) -> list[Line]:
        """The lines that ``data`` completes."""
        lines: list[Line] = []
        begin = 0
        find = data.find
        if self._size:  # the held start of a line first
            newline = find(b"\n")
            self._keep(data, 0, len(data) if newline < 0 else newline)
            if newline < 0:
                return lines
            lines.append(self._complete(1))
            begin = newline + 1
        # Whole lines within ``data``, the common case: sliced once, with the same result as
        # _keep and _complete (a line over the limit takes that path).
        room = self.max_line_bytes + 1  # + 1: room for a "\r" to strip
        offset, number = self.offset, self.line
        while (newline := find(b"\n", begin)) >= 0:
            if newline - begin > room:
                self.offset, self.line = offset, number
                self._keep(data, begin, newline)
                lines.append(self._complete(1))
                offset, number = self.offset, self.line
            else:
                text = data[begin:newline]
                if text[-1:] == b"\r":
                    text = text[:-1]
                cut = len(text) > self.max_line_bytes
                if cut:
                    text = text[: self.max_line_bytes]
                end = offset + newline - begin + 1
                lines.append(Line(text, offset, end, number, cut))
                offset, number = end, number + 1
            begin = newline + 1
        self.offset, self.line = offset, number
        self._keep(data, begin, len(data))
        return lines

    def finish(self) -> Line | None:
        """The incomplete last line as a complete one (the input ended); ``None`` if empty."""
        if not self._size:
            return None
        return self._complete(0)

    def discard(self) -> None:
        """Forget the incomplete last line (its file was truncated)."""
        self._parts, self._size, self._kept, self._cut = [], 0, 0, False

    def _keep(self, data: bytes, begin: int, end: int) -> None:
        if end <= begin:
            return
        self._size += end - begin
        if self._cut:
            return
        room = self.max_line_bytes + 1 - self._kept  # + 1: room for a "\r" to strip
        if end - begin > room:
            end, self._cut = begin + room, True
        self._parts.append(data[begin:end])
        self._kept += end - begin

    def _complete(self, newline: int) -> Line:
        data = b"".join(self._parts)
        if data.endswith(b"\r"):
            data = data[:-1]
        cut = self._cut
        if len(data) > self.max_line_bytes:
            data, cut = data[: self.max_line_bytes], True
        start = self.offset
        end = start + self._size + newline
        line = Line(data, start, end, self.line, cut)
        self.offset = end
        self.line += 1
        self.discard()
        return line


@dataclass(slots=True)
class Record:
    """An event and where its first line starts (``index``: its rank among that line's).

    Not frozen, though nothing changes a record once made: one is made per record, and a
    frozen dataclass takes three times as long to build.
    """

    event: Event
    offset: int
    line: int
    index: int = 0


class LineDecoder(Protocol):
    """Turns lines into records; may hold records that continuation lines could extend."""

    holds: bool  # whether records can be held between lines (then flush when idle)

    def decode(self, line: Line, source: str) -> list[Record]: ...

    def flush(self) -> list[Record]: ...

    def held(self) -> list[tuple[int, int]]:
        """``(offset, line)`` of the records started but not returned yet."""
        ...


class AuditLines:
    """API-server audit log lines: one ``Event`` (or ``EventList``) of JSON per line.

    Bad lines are reported through the :class:`AuditParser`'s ``on_error`` and counted in
    its counters' ``parse_errors{reason}``, never raised.
    """

    holds = False

    def __init__(self, parser: AuditParser) -> None:
        self.parser = parser

    def decode(self, line: Line, source: str) -> list[Record]:
        data = line.data
        if line.cut:
            self._report(
                "line_too_long",
                f"line is over the {self.parser.max_line_bytes}-byte limit; line skipped",
                Location(source, line.number),
                "raise max_line_bytes if lines this long are expected",
            )
            return []
        if not data.strip():
            return []
        event = self.parser.unparsed_event(data, source, line.number)
        if event is not None:
            return [Record(event, line.offset, line.number)]
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            obj = _with_utf8_replaced(data)
            if obj is _UNREADABLE:
                self._report(
                    "invalid_json",
                    f"invalid JSON ({exc.msg}); line skipped",
                    Location(source, line.number),
                )
                return []
            self._report(
                "invalid_utf8",
                "invalid UTF-8 bytes replaced with U+FFFD; parsed anyway",
                Location(source, line.number),
            )
            # not the line as read: its bytes are not what was parsed
            events = self.parser.events_from_object(obj, source, line.number, size=len(data))
            return self._records(list(events), line)
        return self._records(self.parser.event_from_line(obj, data, source, line.number), line)

    def _records(self, events: list[Event], line: Line) -> list[Record]:
        return [Record(event, line.offset, line.number, i) for i, event in enumerate(events)]

    def flush(self) -> list[Record]:
        return []

    def held(self) -> list[tuple[int, int]]:
        return []

    def _report(self, reason: str, message: str, location: Location, hint: str = "") -> None:
        self.parser.counters.inc("parse_errors", reason=reason)
        self.parser.on_error(InputError(message, location, hint, reason))


class LogLines:
    """Lines for a component-log parser of the registry (``k3s``, ``containerd``…).

    The parser may hold a record for its continuation lines; :meth:`held` reads which. For a
    parser whose held records cannot be inspected, every line is flushed at once (records
    are then not joined across lines, but resuming stays exact).
    """

    def __init__(self, parser: LineParser) -> None:
        self.parser = parser
        self.holds = isinstance(parser, StreamParser | KernelParser)

    def decode(self, line: Line, source: str) -> list[Record]:
        if line.cut:
            self.parser.report(
                "line_too_long",
                f"line is over the {self.parser.max_line_bytes}-byte limit; "
                "the rest of it is dropped",
                Location(source, line.number),
                "raise max_line_bytes if lines this long are expected",
            )
        events = self.parser.parse_line(
            line.data, source, line.number, line.offset, truncated=line.cut
        )
        if not self.holds:
            events = [*events, *self.parser.flush()]
        return list(map(_record, events))

    def flush(self) -> list[Record]:
        return list(map(_record, self.parser.flush()))

    def held(self) -> list[tuple[int, int]]:
        origins = held_origins(self.parser)
        if len(origins) == 1:  # asked after every record: the usual answer, made quickly
            return [(origins[0].offset, origins[0].line)]
        return sorted([(o.offset, o.line) for o in origins])


def held_origins(parser: LineParser) -> list[Origin]:
    """Where the records ``parser`` holds for continuation lines start (none if unknown)."""
    # The parsers keep held records private; reading them here keeps the parsers' API small.
    # LogLines flushes a parser type not known here after every line instead.
    if isinstance(parser, StreamParser):
        return [pending.origin for pending in parser.joiner._pending.values()]
    if isinstance(parser, KernelParser) and parser._held is not None:
        return [parser._held[1]]
    return []


_UNREADABLE = object()


def _with_utf8_replaced(data: bytes) -> object:
    """``data`` parsed with invalid UTF-8 replaced; ``_UNREADABLE`` if that is not the fix."""
    try:
        data.decode()
    except UnicodeDecodeError:
        try:
            return orjson.loads(data.decode(errors="replace"))
        except orjson.JSONDecodeError:
            return _UNREADABLE
    return _UNREADABLE


def _record(event: Event) -> Record:
    """A log record and where it starts (journal entries too: their key is their cursor, but
    the file source resumes by offset)."""
    return Record(event, event.offset or 0, event.line)


def line_decoder(
    format: str,
    counters: Counters,
    on_error: Callable[[InputError], None],
    *,
    max_line_bytes: int | None = None,
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    parser_options: dict[str, Any] | None = None,
) -> AuditLines | LogLines:
    """The decoder for ``format``: ``audit`` or a registry parser name (its options too).

    Raises :class:`~k3watch.errors.UsageError` for an unknown name or option.
    """
    if format == AUDIT:
        parser = AuditParser(
            counters,
            on_error,
            max_event_bytes=max_event_bytes,
            max_line_bytes=max_line_bytes or DEFAULT_MAX_AUDIT_LINE_BYTES,
        )
        return AuditLines(parser)
    options = dict(parser_options or {})
    options.setdefault("max_line_bytes", max_line_bytes or DEFAULT_MAX_LINE_BYTES)
    return LogLines(create_parser(format, counters, on_error, **options))
