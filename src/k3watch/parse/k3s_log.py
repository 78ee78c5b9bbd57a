"""The K3s log stream, containerd's log, and syslog files, as normalized records.

One K3s process writes everything it embeds into one stream (the ``k3s`` / ``k3s-agent``
journal, or ``/var/log/k3s.log`` on openrc installs), in several formats:

- logrus, K3s's own code: ``time="…" level=info msg="…"`` (or ``INFO[…] …`` on a terminal);
- klog, the Kubernetes components: ``I0523 20:29:53.123456  334 kubelet.go:2160] …``;
- JSON, the embedded etcd: ``{"level":"info","ts":"…","msg":"…"}``;
- headerless continuation lines: the steps of a ``Trace[…]:`` block, wrapped text, Go stack
  traces. Each joins the record before it from the same writer if that record had a header,
  so such a record comes out when the writer's next header line (or the end of the input,
  or :meth:`~LineParser.flush`) arrives. A few plain-text lines start a record that takes
  continuation lines (:data:`TEXT_STARTS`: ``panic: …``); any other plain line that
  continues nothing is a record of its own and comes out at once.

:class:`K3sLogParser` reads such a stream from a file, with or without syslog prefixes
(``May 23 20:29:53 host k3s[334]: …``: ``journalctl -u k3s`` text output, /var/log/syslog,
/var/log/messages), so it reads syslog files too: lines tagged ``kernel`` (or holding an
AppArmor or seccomp record) are read by :mod:`k3watch.parse.kernel`, the rest by the rules
above, each writer (host, tag, pid) with its own continuation lines. The same line reading
serves the journal (:mod:`k3watch.parse.journald_json`) through :class:`LineReader`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from typing import Any

import orjson

from k3watch.errors import InputError, Location
from k3watch.event import Event
from k3watch.parse import components
from k3watch.parse.kernel import KERNEL_IDENTS, kernel_record, looks_like_record, parse_kernel
from k3watch.parse.klog import parse_klog, split_structured
from k3watch.parse.logrus import logrus_parts, logrus_text
from k3watch.parse.logs import (
    DEFAULT_MAX_LINE_BYTES,
    DEFAULT_MAX_RECORD_BYTES,
    KIND,
    LEVELS,
    Joiner,
    LineParser,
    LogRecord,
    Origin,
    Pending,
    PreparedRecord,
    Problems,
    decode,
    strip_ansi,
)
from k3watch.parse.syslog import prefix_time, split_syslog
from k3watch.parse.timestamps import LocalClock, parse_rfc3339
from k3watch.telemetry import Counters

# Plain-text lines that start a record of their own rather than continue the one before: a
# Go panic or fatal error (its stack trace then joins it), a deprecated-flag notice.
TEXT_STARTS = ("panic: ", "fatal error: ", "Flag --")

# Fields of an etcd JSON line that become record fields rather than "fields" entries.
_JSON_KNOWN = ("level", "ts", "time", "msg", "message", "caller")


@dataclass(slots=True)
class Context:
    """What the wrapper of a line (journal entry, syslog prefix, file) says about it."""

    format: str  # "journald", "syslog" or "text"
    host: str | None = None
    unit: str | None = None
    ident: str | None = None
    pid: int | None = None
    time: int | None = None  # UTC µs
    level: str | None = None
    # The wrapper's time when it is a real one (the journal's, or a prefix with its UTC
    # offset), which klog's local time can be resolved against; not one the clock assumed.
    reference: int | None = None

    def record(self, message: str, truncated: bool = False) -> LogRecord:
        # Positional: one is made for every line, and keyword arguments slow the call down.
        record = LogRecord(
            message, self.format, self.time, self.level, self.host, self.unit, self.ident, self.pid
        )
        if truncated:
            record.truncated = True
        return record


@dataclass(slots=True)
class Reading:
    """One line read: its record, the body continuation lines extend, whether it had a header."""

    record: LogRecord
    body: str
    header: bool
    finish: Callable[[Pending], None] | None = None
    problems: Problems = field(default_factory=list)


class LineReader:
    """Reads one component log line (logrus, klog, JSON or plain text) into a record.

    ``component`` forces the component of every line (containerd's own log); otherwise it is
    derived as :mod:`k3watch.parse.components` describes.
    """

    __slots__ = ("clock", "component")

    def __init__(self, clock: LocalClock, component: str | None = None) -> None:
        self.clock = clock
        self.component = component

    def read(self, text: str, context: Context, truncated: bool = False) -> Reading:
        record = context.record(text, truncated)
        named = self.component or components.program_component(context.ident, context.unit)
        if text.startswith("{"):
            reading = self._json(text, record)
            if reading is not None:
                record.component = named or (
                    "etcd"
                    if components.in_k3s_stream(context.ident, context.unit)
                    or _mentions_etcd(record)
                    else None
                )
                return reading
        logrus = logrus_parts(text)
        if logrus is not None:
            level, message, stamp, fields = logrus
            problems: Problems = []
            record.format = "logrus"
            record.level = level or record.level
            record.fields = fields
            record.component = named or (
                "k3s" if components.in_k3s_stream(context.ident, context.unit) else None
            )
            if stamp is not None and not stamp.isdigit():
                when = self.logrus_time(stamp, problems)
                if when is not None:
                    record.time = when
            if record.component == "containerd":
                record.container = components.container_from_message(message) or None
            return Reading(record, message, True, _finish_text, problems)
        plain = strip_ansi(text)
        klog = parse_klog(plain)
        if klog is not None:
            problems = []
            record.format = "klog"
            record.level = klog.level
            record.caller = klog.caller
            if record.pid is None:
                record.pid = klog.pid
            record.component = named or components.klog_component(klog.caller)
            when = self.clock.resolve(
                klog.month,
                klog.day,
                klog.hour,
                klog.minute,
                klog.second,
                klog.micro,
                reference=context.reference,
            )
            if when is None:
                problems.append(
                    (
                        "invalid_time",
                        f"klog date {klog.month:02d}{klog.day:02d} {klog.hour:02d}:"
                        f"{klog.minute:02d}:{klog.second:02d} does not exist; "
                        "the wrapper's time is used",
                    )
                )
            else:
                record.time = when
            return Reading(record, klog.body, True, _finish_klog, problems)
        record.component = named
        return Reading(record, plain, plain.startswith(TEXT_STARTS), _finish_text)

    def logrus_time(self, text: str, problems: Problems) -> int | None:
        """A logrus time (UTC µs), learned by the clock; ``None`` (and a problem) if invalid."""
        parsed = parse_rfc3339(text)
        if parsed is None:
            problems.append(
                ("invalid_time", f"logrus time {text[:40]!r} is not RFC 3339; not used")
            )
            return None
        wall, offset = parsed
        if offset is None:
            return self.clock.localize(wall)
        utc = wall - offset
        self.clock.learn(utc, offset)
        return utc

    def _json(self, text: str, record: LogRecord) -> Reading | None:
        try:
            obj = orjson.loads(text)
        except orjson.JSONDecodeError:
            return None
        if type(obj) is not dict or not ("msg" in obj or "level" in obj):
            return None
        problems: Problems = []
        record.format = "json"
        level = obj.get("level")
        if isinstance(level, str):
            record.level = LEVELS.get(level, level.lower())
        caller = obj.get("caller")
        if isinstance(caller, str):
            record.caller = caller
        when = obj.get("ts", obj.get("time"))
        if isinstance(when, int | float) and not isinstance(when, bool):
            if abs(when) < 1e11:  # seconds; zap's default epoch encoder
                record.time = round(when * 1_000_000)
                self.clock.learn(record.time)
        elif isinstance(when, str):
            parsed = parse_rfc3339(when)
            if parsed is None:
                problems.append(("invalid_time", f"time {when[:40]!r} is not RFC 3339; not used"))
            elif parsed[1] is None:
                record.time = self.clock.localize(parsed[0])
            else:
                record.time = parsed[0] - parsed[1]
                self.clock.learn(record.time, parsed[1])
        message = obj.get("msg", obj.get("message", ""))
        record.fields = {k: v for k, v in obj.items() if k not in _JSON_KNOWN}
        body = message if isinstance(message, str) else orjson.dumps(message).decode()
        return Reading(record, body, True, _finish_text, problems)


def _mentions_etcd(record: LogRecord) -> bool:
    logger = record.fields.get("logger")
    return "etcd" in (record.caller or "") or (isinstance(logger, str) and "etcd" in logger)


def _finish_text(pending: Pending) -> None:
    pending.record.message = pending.body


def _finish_klog(pending: Pending) -> None:
    """Structured klog: the message and fields, read once continuation lines are joined."""
    record = pending.record
    assert isinstance(record, LogRecord)  # a klog line takes the general reading
    structured = split_structured(pending.body)
    if structured is None:
        record.message = pending.body
        return
    record.message, fields = structured
    record.fields = fields
    container = components.container_from_fields(fields)
    if container:
        record.container = container


class StreamParser(LineParser):
    """Shared by the K3s-stream and journal parsers: kernel lines, component lines, joining.

    ``component`` forces the component of every line. ``tz`` and ``now`` resolve times
    written without a zone or a year. A record grows to at most ``max_record_bytes`` of
    continuation lines; a headerless line more than ``continuation_window`` seconds after its
    writer's last line does not join it.
    """

    def __init__(
        self,
        counters: Counters,
        on_error: Callable[[InputError], None],
        *,
        component: str | None = None,
        tz: tzinfo = UTC,
        now: Callable[[], float] = time.time,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        continuation_window: float = 5.0,
    ) -> None:
        super().__init__(counters, on_error, max_line_bytes=max_line_bytes)
        self.clock = LocalClock(tz, now)
        self.reader = LineReader(self.clock, component)
        self.joiner = Joiner(counters, max_record_bytes)
        self.window = int(continuation_window * 1_000_000)

    def dispatch(
        self,
        content: str,
        context: Context,
        origin: Origin,
        *,
        kernel: bool = False,
        truncated: bool = False,
        audit_type: int | None = None,
        stamp: tuple[int, int] | None = None,
    ) -> list[Event]:
        """The events one line completes. ``kernel``: the line is from the kernel's stream."""
        if kernel or looks_like_record(content):
            line = parse_kernel(content, audit_type=audit_type, stamp=stamp)
            if line.kernel is not None or kernel:
                self._report_all(line.problems, origin)
                record = context.record(content, truncated)
                kernel_record(line, record)
                return [self.emit(record, origin)]
        reading = self.reader.read(content, context, truncated)
        if reading.problems:
            self._report_all(reading.problems, origin)
        stream = (context.host, context.unit or context.ident, context.pid)
        pending = Pending(
            reading.record, origin, reading.body, last_time=context.time, finish=reading.finish
        )
        if reading.header:
            # Held: the lines that follow from the same writer may continue it.
            return list(map(self.complete, self.joiner.start(stream, pending)))
        if self.joiner.join(stream, reading.body, context.time, self.window):
            return []
        # A plain line that continues nothing is a record of its own, and takes no
        # continuation lines itself (syslog lines of ordinary programs are one line each).
        done = self.joiner.close(stream)
        return [*(self.complete(held) for held in done), self.complete(pending)]

    def flush(self) -> list[Event]:
        return [self.complete(done) for done in self.joiner.flush()]

    def complete(self, pending: Pending) -> Event:
        if pending.finish is not None:
            pending.finish(pending)
        else:
            pending.record.message = pending.body
        return self.emit(pending.record, pending.origin)

    def _report_all(self, problems: Problems, origin: Origin) -> None:
        for reason, message in problems:
            self.report(reason, message, Location(origin.name, origin.line))


class K3sLogParser(StreamParser):
    """Records from the K3s stream, containerd's log, or a syslog file (see the module).

    ``ident`` is the program assumed for lines without a syslog prefix (``k3s``; ``None``
    when unknown); ``unit`` and ``host`` fill those fields when the lines do not. The other
    options are :class:`StreamParser`'s.
    """

    def __init__(
        self,
        counters: Counters,
        on_error: Callable[[InputError], None],
        *,
        ident: str | None = "k3s",
        unit: str | None = None,
        host: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__(counters, on_error, **options)
        self.ident = ident
        self.unit = unit
        self.host = host
        # What every line without a syslog prefix is wrapped in: one for all of them, as
        # nothing changes a Context once made (containerd's log has no prefixes at all).
        self._text_context = Context("text", host, unit, ident)
        # What the general reading derives from that wrapper for a logrus line, derived once
        # for the fast path (see _logrus_line); never taken for a kernel stream.
        self._logrus_fast = ident not in KERNEL_IDENTS
        self._text_stream = (host, unit or ident, None)
        self._logrus_component = (
            self.reader.component
            or components.program_component(ident, unit)
            or ("k3s" if components.in_k3s_stream(ident, unit) else None)
        )
        # The fields of the raw object between its level and its format, as LogRecord.raw
        # writes them for such a line (those that are not None, in that order).
        wrapper = {
            "host": host,
            "unit": unit,
            "ident": ident,
            "component": self._logrus_component,
        }
        self._logrus_wrapper = {k: v for k, v in wrapper.items() if v is not None}

    def parse_line(
        self,
        line: bytes | str,
        source: str,
        lineno: int = 1,
        offset: int = 0,
        *,
        truncated: bool = False,
    ) -> list[Event]:
        self.counters.inc("lines")
        text = decode(line)
        if not text or text.isspace():
            self.counters.inc("skipped", reason="blank")
            return []
        if text.startswith('time="') and self._logrus_fast and not looks_like_record(text):
            # Nearly every line of containerd's log and of K3s's own code (no syslog prefix:
            # a prefix never starts with a lowercase letter).
            return self._logrus_line(text, source, lineno, offset, truncated)
        prefix = split_syslog(text)
        if prefix is None:
            context = self._text_context
            content = text
        else:
            when = prefix_time(prefix, self.clock)
            context = Context(
                "syslog",
                prefix.host or self.host,
                self.unit,
                prefix.ident,
                prefix.pid,
                when,
                prefix.level,
                when if prefix.offset is not None else None,
            )
            content = prefix.message
        return self.dispatch(
            content,
            context,
            Origin(source, lineno, offset),
            kernel=context.ident in KERNEL_IDENTS,
            truncated=truncated,
        )

    def _logrus_line(
        self, text: str, source: str, lineno: int, offset: int, truncated: bool
    ) -> list[Event]:
        """A logrus line without syslog prefix: what :meth:`~StreamParser.dispatch` does for
        it (through :meth:`LineReader.read` with the wrapper of unprefixed lines), without
        the objects and tests the general reading needs for every other kind of line.

        tests/parse/test_parse_fast_paths.py checks that both give the same events.
        """
        level, message, stamp, fields = logrus_text(text)
        problems: Problems = []
        when = None
        if stamp is not None and not stamp.isdigit():
            when = self.reader.logrus_time(stamp, problems)
        raw: dict[str, Any] = {"kind": KIND}
        if when is not None:
            raw["time"] = None  # written out when emitted
        raw["message"] = None  # the body, once complete
        if level is not None:
            raw["level"] = level
        raw.update(self._logrus_wrapper)
        raw["format"] = "logrus"
        raw["source"] = None  # filled when emitted
        if fields:
            raw["fields"] = fields
        if self._logrus_component == "containerd":
            container = components.container_from_message(message)
            if container:
                raw["container"] = container
        record = PreparedRecord(raw, when, message, truncated)
        origin = Origin(source, lineno, offset)
        if problems:
            self._report_all(problems, origin)
        # Held, as every record with a header is: the lines that follow may continue it.
        # Positional (body, lines, size, last time, finish); without a finish, complete()
        # sets the message from the body, as _finish_text would.
        pending = Pending(record, origin, message, 1, 0, None, None)
        return [self.complete(done) for done in self.joiner.start(self._text_stream, pending)]


def containerd_parser(
    counters: Counters, on_error: Callable[[InputError], None], **options: Any
) -> K3sLogParser:
    """containerd's own log (``/var/lib/rancher/k3s/agent/containerd/containerd.log``)."""
    options.setdefault("ident", "containerd")
    options.setdefault("component", "containerd")
    return K3sLogParser(counters, on_error, **options)


def syslog_parser(
    counters: Counters, on_error: Callable[[InputError], None], **options: Any
) -> K3sLogParser:
    """A syslog file (/var/log/syslog, /var/log/messages): every line names its program."""
    options.setdefault("ident", None)
    return K3sLogParser(counters, on_error, **options)
