"""The systemd journal's JSON export (``journalctl --output=json``), one entry a line.

Fields read: ``MESSAGE``, ``__CURSOR`` (the record's key), ``__REALTIME_TIMESTAMP``,
``_SYSTEMD_INVOCATION_ID``, ``_HOSTNAME``, ``_SYSTEMD_UNIT``, ``SYSLOG_IDENTIFIER`` (else
``_COMM``), ``_PID``, ``PRIORITY`` and ``_TRANSPORT``; for the audit transport also
``_AUDIT_TYPE``, ``_AUDIT_ID`` and ``_SOURCE_REALTIME_TIMESTAMP``.

journalctl writes a field as a string when it is printable UTF-8, as an array of byte values
otherwise (invalid UTF-8, terminal colour codes), as ``null`` when it is over 4 KiB and
``--all`` was not given, and as an array of those when an entry has the field more than once.
All are read: bytes are decoded as UTF-8 with U+FFFD for invalid sequences; a null message is
reported (``message_omitted``) and the entry still comes out, empty and marked truncated.

The message is then read like a line of the K3s stream (:mod:`k3watch.parse.k3s_log`):
kernel and audit entries as AppArmor/seccomp records, the rest as logrus, klog, JSON or text,
each writer (host, unit, pid) with its own continuation lines; the entry's real time resolves
klog's year and zone (see :class:`~k3watch.parse.timestamps.LocalClock`).
"""

from __future__ import annotations

from typing import Any

import orjson

from k3watch.errors import Location
from k3watch.event import Event
from k3watch.parse.k3s_log import Context, StreamParser
from k3watch.parse.kernel import KERNEL_IDENTS
from k3watch.parse.logs import PRIORITIES, Origin, decode

_MISSING = object()
_KERNEL_TRANSPORTS = frozenset({"kernel", "audit"})


class JournaldParser(StreamParser):
    """Records from ``journalctl --output=json`` lines (see the module).

    Run journalctl with ``--all``, or messages over 4 KiB (K3s's ``Running kube-apiserver``
    line is one) come out empty. Options are :class:`~k3watch.parse.k3s_log.StreamParser`'s.
    """

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
        data = line.encode("utf-8", "surrogateescape") if isinstance(line, str) else line
        data = data.lstrip(b"\x1e")  # --output=json-seq puts a record separator first
        if not data.strip():
            self.counters.inc("skipped", reason="blank")
            return []
        location = Location(source, lineno)
        if truncated:
            # The JSON of a cut line cannot be read; the limit is reported already.
            self.counters.inc("dropped", reason="line_too_long")
            return []
        try:
            entry = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            self.report(
                "invalid_json",
                f"not a JSON object ({exc.msg}); line skipped",
                location,
                "read the journal with journalctl --output=json",
            )
            return []
        if type(entry) is not dict:
            self.report(
                "not_an_object",
                "a journal entry must be a JSON object; line skipped",
                location,
            )
            return []
        return self._entry(entry, Origin(source, lineno, offset), location)

    def _entry(self, entry: dict[str, Any], origin: Origin, location: Location) -> list[Event]:
        origin.cursor = _text(entry.get("__CURSOR"))
        origin.invocation = _text(entry.get("_SYSTEMD_INVOCATION_ID"))
        realtime = self._number(entry, "__REALTIME_TIMESTAMP", location)
        priority = self._number(entry, "PRIORITY", location)
        transport = _text(entry.get("_TRANSPORT"))
        context = Context(
            "journald",
            _text(entry.get("_HOSTNAME")),
            _text(entry.get("_SYSTEMD_UNIT")),
            _text(entry.get("SYSLOG_IDENTIFIER")) or _text(entry.get("_COMM")),
            self._number(entry, "_PID", location),
            realtime,
            PRIORITIES[priority] if priority is not None and 0 <= priority <= 7 else None,
            realtime,
        )
        message = entry.get("MESSAGE", _MISSING)
        omitted = False
        if message is _MISSING:
            self.report("missing_message", "entry has no MESSAGE field; kept empty", location)
            text = ""
        elif message is None:
            self.report(
                "message_omitted",
                "MESSAGE is null (over 4 KiB and journalctl ran without --all); kept empty",
                location,
                "read the journal with journalctl --all --output=json",
            )
            text, omitted = "", True
        else:
            found = _text(message)
            if found is None:
                self.report(
                    "invalid_field",
                    "MESSAGE is neither text nor bytes; kept empty",
                    location,
                )
            text = found or ""
        kernel = transport in _KERNEL_TRANSPORTS or context.ident in KERNEL_IDENTS
        if omitted or not text:
            record = context.record(text, omitted)
            record.component = "kernel" if kernel else None
            return [*self.flush_stream(context), self.emit(record, origin)]
        audit_type = self._number(entry, "_AUDIT_TYPE", location) if kernel else None
        stamp: tuple[int, int] | None = None
        if transport == "audit":
            serial = self._number(entry, "_AUDIT_ID", location)
            when = self._number(entry, "_SOURCE_REALTIME_TIMESTAMP", location) or realtime
            if serial is not None and when is not None:
                stamp = (when, serial)
        return self.dispatch(
            text, context, origin, kernel=kernel, audit_type=audit_type, stamp=stamp
        )

    def flush_stream(self, context: Context) -> list[Event]:
        """Close the record held for the writer of ``context`` (an entry that cannot join)."""
        stream = (context.host, context.unit or context.ident, context.pid)
        return [self.complete(done) for done in self.joiner.close(stream)]

    def _number(self, entry: dict[str, Any], name: str, location: Location) -> int | None:
        value = entry.get(name)
        if value is None:
            return None
        text = _text(value)
        if text is not None and text.isdigit() and len(text) < 20:
            return int(text)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        self.report("invalid_field", f"{name} is not a number ({_show(value)}); ignored", location)
        return None


def _text(value: object) -> str | None:
    """A journal field's value as text: a string, bytes as an array, or the first of several."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value:
        if all(type(item) is int and 0 <= item <= 255 for item in value):
            return decode(bytes(value))
        return _text(value[0])
    return None


def _show(value: object) -> str:
    try:
        text = repr(value) if isinstance(value, str) else orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        text = type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."
