"""Kubernetes API-server audit events (``audit.k8s.io`` ``Event`` / ``EventList``) from bytes.

One code path reads every layout the API server and the usual tools produce:

- JSON lines, one ``Event`` a line (the log backend; K3s writes this). This is the hot path:
  one ``orjson.loads`` per line and a few dictionary lookups;
- ``EventList`` batches (the webhook backend) and JSON arrays of events, on one line or
  pretty-printed; each item becomes an :class:`~k3watch.event.Event` with ``item`` set;
- pretty-printed events (``jq .``, ``kubectl … -o json``), one or several in a row.

A line that does not parse but ends like the first line of a pretty-printed value (its brackets
are open and it ends with ``{``, ``[``, ``,`` or ``:``) starts a multi-line value: the following
lines are collected until the brackets balance. Top-level values in pretty-printed output start
at column 0 and their insides are indented, so a line starting with ``{`` or ``[`` while a value
is being collected means that value was cut short; it is reported as ``truncated`` and the new
line is read on its own. Unindented pretty-printing is therefore not supported.

Bad input never raises and never stops the stream: each problem is reported once, as an
:class:`~k3watch.errors.InputError` with a location and a ``reason``, and counted in
``parse_errors{reason}``; good events are counted in ``events``.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Generator, Iterator
from typing import Any, BinaryIO, cast

import msgspec
import orjson

from k3watch.errors import InputError, Location
from k3watch.event import TIME_FIELDS, Event, parse_time
from k3watch.sources.files import GZIP_MAGIC, OverlongLine, iter_lines, open_stream
from k3watch.telemetry import Counters

DEFAULT_MAX_EVENT_BYTES = 4 * 1024 * 1024
DEFAULT_MAX_LINE_BYTES = 256 * 1024 * 1024

API_GROUP_PREFIX = "audit.k8s.io/"
_V1 = "audit.k8s.io/v1"

# An object with none of these is some other JSON document, not an audit event. Real events
# may lack most fields (Metadata level has no bodies, old traces carry only ``timestamp``).
EVENT_KEYS = frozenset(
    {
        "auditID",
        "verb",
        "requestURI",
        "stage",
        "timestamp",
        "requestReceivedTimestamp",
        "stageTimestamp",
        "user",
        "objectRef",
    }
)

# A JSON string (escapes included). JSON strings cannot hold a raw newline, so on a line of
# pretty-printed JSON every string is complete and can be blanked out before counting brackets.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_VALUE_STARTS = (b"{", b"[")
_OPEN_ENDINGS = (b"{", b"[", b",", b":")

_Events = Generator[Event, None, None]


class _Head(msgspec.Struct):
    """What decides whether a line is a plain audit event, and its time: the fields that
    :func:`is_plain_event` and :attr:`Event.time` read, with the types a real event has."""

    auditID: str
    kind: str | None = None
    apiVersion: str | None = None
    requestReceivedTimestamp: str | None = None
    stageTimestamp: str | None = None
    timestamp: str | None = None
    time: str | None = None


_read_head = msgspec.json.Decoder(_Head).decode

# How many fast-path events parse_stream counts before adding them to the shared counters.
_COUNT_EVERY = 256


class _Pending:
    """A JSON value spread over several lines, collected until its brackets balance."""

    __slots__ = ("depth", "discard", "end", "parts", "size", "start")

    def __init__(self, start: int, line: bytes, depth: int) -> None:
        self.start = start
        self.end = start
        self.parts = [line]
        self.size = len(line)
        self.depth = depth
        # Set once the value is known to be unusable (already reported): keep following its
        # brackets to find where it ends, but stop keeping its lines.
        self.discard = False

    def span(self) -> str:
        return f"line {self.start}" if self.end == self.start else f"lines {self.start}-{self.end}"


class AuditParser:
    """Turns audit log bytes into :class:`~k3watch.event.Event` objects, reporting bad input.

    ``max_event_bytes``: an event bigger than this (by its encoded size) keeps its metadata but
    loses ``requestObject`` and ``responseObject``, and comes out with ``truncated`` set.
    ``max_line_bytes``: the hard limit; a longer line (or multi-line value) is skipped unread.
    Diagnostics go to ``on_error`` in stream order, before the events of the same value.
    """

    __slots__ = ("counters", "max_event_bytes", "max_line_bytes", "on_error")

    def __init__(
        self,
        counters: Counters,
        on_error: Callable[[InputError], None],
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    ) -> None:
        self.counters = counters
        self.on_error = on_error
        self.max_event_bytes = max_event_bytes
        self.max_line_bytes = max_line_bytes

    def parse_stream(self, stream: BinaryIO, source: str) -> Iterator[Event]:
        """Events from a stream of JSON lines, batches or pretty-printed JSON, in order.

        ``source`` names the input in locations (``audit.log:17``). The stream must already be
        decompressed (see :func:`k3watch.sources.files.open_input`); read errors end the
        stream with one diagnostic.
        """
        loads = orjson.loads
        decode_error = orjson.JSONDecodeError
        max_event = self.max_event_bytes
        counters = self.counters
        count_every = _COUNT_EVERY
        pending: _Pending | None = None
        lineno = 0
        # Fast-path events not yet added to the counters: one inc() per line would cost ~5%.
        fast = 0
        try:
            for lineno, line in iter_lines(stream, self.max_line_bytes):
                if pending is not None:
                    pending, consumed = yield from self._continue(pending, lineno, line, source)
                    if consumed:
                        continue
                if isinstance(line, OverlongLine):
                    self._report(
                        "line_too_long",
                        f"line is {line.length} bytes, over the {self.max_line_bytes}-byte "
                        "limit; line skipped",
                        Location(source, lineno),
                        "raise max_line_bytes if lines this long are expected",
                    )
                    continue
                try:
                    obj = loads(line)
                except decode_error as exc:
                    if lineno == 1 and line.startswith(GZIP_MAGIC):
                        self._report(
                            "compressed",
                            "input is gzip-compressed; not read",
                            Location(source, lineno),
                            "open it with k3watch.sources.files.open_input",
                        )
                        return
                    pending = yield from self._unparsed(line, lineno, source, exc)
                    continue
                # Fast path: a plain event of ordinary size. Anything else takes the general path
                # below, which repeats these checks with messages.
                if is_plain_event(obj, len(line), max_event):
                    fast += 1
                    if fast == count_every:
                        counters.inc("events", fast)
                        fast = 0
                    yield Event(obj, source, lineno, data=line)
                    continue
                yield from self._validated(obj, source, lineno, len(line))
        except InputError as exc:
            # From open_stream's gzip reader, which knows the file but not the line.
            self._report(exc.reason, exc.message, Location(source, lineno + 1), exc.hint)
        except OSError as exc:
            self._report(
                "read_error",
                f"read failed ({exc.strerror or exc}); rest of the input skipped",
                Location(source, lineno + 1),
            )
        finally:
            if fast:
                counters.inc("events", fast)
        if pending is not None:
            self._abandon(pending, source, "the input ends inside it")

    def parse_bytes(self, data: bytes, source: str) -> Iterator[Event]:
        """Events from a whole document (a webhook body, a file read at once); gzip allowed.

        Accepts everything :meth:`parse_stream` does, with the same locations and messages.
        """
        if data.startswith(GZIP_MAGIC):
            with open_stream(io.BytesIO(data), source) as stream:
                yield from self.parse_stream(stream, source)
            return
        if len(data) <= self.max_line_bytes:
            # One parse of the whole document covers a batch or a single event, pretty or not;
            # JSON lines and damaged documents fail here and take the line-by-line path.
            try:
                obj = orjson.loads(data)
            except orjson.JSONDecodeError:
                pass
            else:
                padding = len(data) - len(data.lstrip()) if data[:1].isspace() else 0
                line = data.count(b"\n", 0, padding) + 1  # the line the value starts on
                yield from self._validated(obj, source, line, len(data))
                return
        yield from self.parse_stream(io.BytesIO(data), source)

    def event_from_line(self, obj: object, data: bytes, source: str, line: int) -> list[Event]:
        """The events of one line's decoded value ``obj`` (``data`` the line): a plain event
        is taken as it is, with its line kept as its JSON; anything else is validated."""
        if is_plain_event(obj, len(data), self.max_event_bytes):
            self.counters.inc("events")
            return [Event(cast(dict[str, Any], obj), source, line, data=data)]
        return list(self._validated(obj, source, line, len(data)))

    def unparsed_event(self, data: bytes, source: str, line: int) -> Event | None:
        """The line ``data`` as an event whose ``raw`` is decoded only when used, if it is a
        plain v1 audit event (:func:`is_plain_event`) in ASCII; else ``None``, and the
        general path reads it. Checking the line's JSON this way builds only a few fields."""
        if len(data) > self.max_event_bytes or not data.isascii():
            return None  # invalid UTF-8 is replaced by the general path (msgspec keeps it)
        try:
            head = _read_head(data)
        except (msgspec.DecodeError, RecursionError):
            return None  # not JSON, not an object, or a field of an unusual type
        if head.kind not in _EVENT_KINDS or head.apiVersion not in _V1_VERSIONS:
            return None
        when = None
        for name in TIME_FIELDS:
            value = getattr(head, name)
            if value is not None and (when := parse_time(value)) is not None:
                break
        self.counters.inc("events")
        return Event.unparsed(data, source, line, when)

    def events_from_object(
        self, obj: object, source: str, line: int, *, size: int | None = None
    ) -> Iterator[Event]:
        """Validate one decoded JSON value and yield its events (a batch yields each item).

        ``size`` is the value's encoded size in bytes when known; without it the
        ``max_event_bytes`` limit is not applied (the caller bounded its input already).
        """
        return self._validated(obj, source, line, size)

    # -- the general path --------------------------------------------------------------------

    def _validated(self, obj: object, source: str, line: int, size: int | None) -> _Events:
        if type(obj) is dict:
            if obj.get("kind") == "EventList":
                yield from self._batch(obj, source, line, size)
                return
            problem = _event_problem(obj)
            if problem is None:
                yield self._event(obj, source, line, None, size)
            else:
                self._report(problem[0], f"{problem[1]}; skipped", Location(source, line))
        elif type(obj) is list:
            yield from self._items(obj, source, line, size)
        else:
            self._report(
                "not_an_object",
                f"expected a JSON object (an audit Event), got {_json_type(obj)}; skipped",
                Location(source, line),
            )

    def _batch(self, obj: dict[str, Any], source: str, line: int, size: int | None) -> _Events:
        api = obj.get("apiVersion")
        if api is not None and not _is_audit_api(api):
            self._report(
                "unknown_api_version",
                f"apiVersion must start with {API_GROUP_PREFIX!r}, got {_show(api)}; batch skipped",
                Location(source, line),
            )
            return
        items = obj.get("items")
        if items is None:  # an empty Go slice encodes as null
            return
        if type(items) is not list:
            self._report(
                "not_an_event",
                f"EventList items must be an array, got {_json_type(items)}; batch skipped",
                Location(source, line),
            )
            return
        yield from self._items(items, source, line, size)

    def _items(self, items: list[Any], source: str, line: int, size: int | None) -> _Events:
        # Only a batch over the limit can hold an event over the limit: measure items then.
        measure = size is not None and size > self.max_event_bytes
        for index, item in enumerate(items):
            if type(item) is not dict:
                self._report(
                    "not_an_object",
                    f"expected a JSON object (an audit Event), got {_json_type(item)}; "
                    "item skipped",
                    Location(source, line, index),
                )
                continue
            if item.get("kind") == "EventList":
                problem: tuple[str, str] | None = (
                    "not_an_event",
                    "an EventList inside a batch is not an event",
                )
            else:
                problem = _event_problem(item)
            if problem is not None:
                self._report(
                    problem[0], f"{problem[1]}; item skipped", Location(source, line, index)
                )
                continue
            yield self._event(item, source, line, index, _encoded_size(item) if measure else None)

    def _event(
        self, obj: dict[str, Any], source: str, line: int, item: int | None, size: int | None
    ) -> Event:
        truncated = False
        if size is not None and size > self.max_event_bytes:
            obj.pop("requestObject", None)
            obj.pop("responseObject", None)
            truncated = True
            self._report(
                "event_too_large",
                f"event is {size} bytes, over the {self.max_event_bytes}-byte limit; "
                "requestObject and responseObject dropped, metadata kept",
                Location(source, line, item),
                "raise max_event_bytes to keep the bodies",
            )
        self.counters.inc("events")
        return Event(obj, source, line, item, truncated)

    # -- lines that do not parse on their own ------------------------------------------------

    def _unparsed(
        self, line: bytes, lineno: int, source: str, exc: orjson.JSONDecodeError
    ) -> Generator[Event, None, _Pending | None]:
        """Handle a line orjson rejected; returns the multi-line value it starts, if any."""
        if not line.strip():
            return None
        replaced, obj, problem, offset = _reparse(line, exc)
        if replaced:
            self._report(
                "invalid_utf8",
                "invalid UTF-8 bytes replaced with U+FFFD; parsed anyway",
                Location(source, lineno),
            )
            yield from self._validated(obj, source, lineno, len(line))
            return None
        depth, bare = _bracket_depth(line)
        if depth > 0 and bare.rstrip().endswith(_OPEN_ENDINGS):
            return _Pending(lineno, line, depth)
        self._report(
            "invalid_json",
            f"invalid JSON ({problem} at byte {offset}); line skipped",
            Location(source, lineno),
        )
        return None

    def _continue(
        self, pending: _Pending, lineno: int, line: bytes | OverlongLine, source: str
    ) -> Generator[Event, None, tuple[_Pending | None, bool]]:
        """Add a line to a multi-line value; returns (still pending, whether line was used)."""
        if isinstance(line, OverlongLine):
            pending.end = lineno
            if not pending.discard:
                self._report(
                    "line_too_long",
                    f"line {lineno} is {line.length} bytes, over the {self.max_line_bytes}-byte "
                    "limit; the JSON value starting here is skipped",
                    Location(source, pending.start),
                )
                pending.discard = True
                pending.parts = []
            return pending, True
        if line.startswith(_VALUE_STARTS):
            self._abandon(pending, source, f"a new value starts at line {lineno}")
            return None, False
        pending.end = lineno
        pending.depth += _bracket_depth(line)[0]
        if not pending.discard:
            pending.size += len(line) + 1
            if pending.size > self.max_line_bytes:
                self._report(
                    "line_too_long",
                    f"multi-line JSON value is over the {self.max_line_bytes}-byte limit; "
                    "skipped to its end",
                    Location(source, pending.start),
                    "raise max_line_bytes if values this big are expected",
                )
                pending.discard = True
                pending.parts = []
            else:
                pending.parts.append(line)
        if pending.depth > 0:
            return pending, True
        if not pending.discard:
            yield from self._finish(pending, source)
        return None, True

    def _finish(self, pending: _Pending, source: str) -> _Events:
        data = b"\n".join(pending.parts)
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            replaced, obj, problem, offset = _reparse(data, exc)
            if not replaced:
                at = pending.start + data.count(b"\n", 0, offset)
                self._report(
                    "invalid_json",
                    f"invalid JSON ({problem} on line {at}); {pending.span()} skipped",
                    Location(source, pending.start),
                )
                return
            self._report(
                "invalid_utf8",
                "invalid UTF-8 bytes replaced with U+FFFD; parsed anyway",
                Location(source, pending.start),
            )
        yield from self._validated(obj, source, pending.start, len(data))

    def _abandon(self, pending: _Pending, source: str, why: str) -> None:
        if not pending.discard:
            self._report(
                "truncated",
                f"incomplete JSON value ({why}); {pending.span()} skipped",
                Location(source, pending.start),
            )

    def _report(self, reason: str, message: str, location: Location, hint: str = "") -> None:
        self.counters.inc("parse_errors", reason=reason)
        self.on_error(InputError(message, location, hint, reason))


_EVENT_KINDS = ("Event", None)
_V1_VERSIONS = (_V1, None)


def is_plain_event(obj: object, size: int, max_event: int) -> bool:
    """Whether ``obj`` (``size`` bytes of JSON) is a plain v1 (or version-less) audit event of
    ordinary size, which needs none of the general path's checks."""
    if type(obj) is not dict:
        return False
    kind = obj.get("kind")
    api = obj.get("apiVersion")
    return (
        (kind == "Event" or kind is None)
        and (api == _V1 or api is None)
        and size <= max_event
        and ("auditID" in obj or not obj.keys().isdisjoint(EVENT_KEYS))
    )


def _event_problem(obj: dict[str, Any]) -> tuple[str, str] | None:
    """Why a JSON object is not an audit Event, as (reason, message); ``None`` if it is one."""
    kind = obj.get("kind")
    if kind is not None and kind != "Event":
        return "unknown_kind", f"kind must be 'Event' or 'EventList', got {_show(kind)}"
    api = obj.get("apiVersion")
    if api is not None and not _is_audit_api(api):
        return (
            "unknown_api_version",
            f"apiVersion must start with {API_GROUP_PREFIX!r}, got {_show(api)}",
        )
    if obj.keys().isdisjoint(EVENT_KEYS):
        return "not_an_event", "no audit event fields (auditID, verb, stage, timestamp, user…)"
    return None


def _is_audit_api(api: object) -> bool:
    return isinstance(api, str) and api.startswith(API_GROUP_PREFIX)


def _reparse(data: bytes, exc: orjson.JSONDecodeError) -> tuple[bool, Any, str, int]:
    """Second look at bytes orjson rejected, retrying with invalid UTF-8 replaced.

    Returns ``(True, value, "", 0)`` if invalid UTF-8 was the only problem, else
    ``(False, None, what is wrong, byte offset of the problem)``.
    """
    try:
        text = data.decode()
    except UnicodeDecodeError:
        text = data.decode(errors="replace")
        try:
            return True, orjson.loads(text), "", 0
        except orjson.JSONDecodeError as again:
            exc = again
    # orjson counts characters; people look at files in bytes.
    return False, None, exc.msg, len(text[: exc.pos].encode())


def _bracket_depth(line: bytes) -> tuple[int, bytes]:
    """How many brackets a line of JSON leaves open, and the line with strings blanked out."""
    bare = _STRING.sub(b"", line) if b'"' in line else line
    opened = bare.count(b"{") + bare.count(b"[")
    return opened - bare.count(b"}") - bare.count(b"]"), bare


def _encoded_size(obj: object) -> int:
    try:
        return len(orjson.dumps(obj))
    except orjson.JSONEncodeError:
        return 0


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _show(value: object) -> str:
    """A short rendering of a JSON value for messages: ``0``, ``'Pod'``, ``{"a":1}``."""
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    text = orjson.dumps(value).decode()
    return text if len(text) <= 60 else text[:57] + "..."
