"""Syslog line prefixes: when, which host, which program and process wrote the line.

The prefixes found in files and in ``journalctl`` text output:

- BSD (RFC 3164), journalctl's default: ``May 23 20:29:53 host k3s[334]: …``, also with a
  fraction (``short-precise``), a UTC offset, or a ``<PRI>`` in front;
- ISO (rsyslog's RFC 3339 template, ``short-iso``): ``2024-05-23T20:29:53.123+02:00 host
  kernel: …``, or with a space instead of the ``T``;
- socklog: ``2021-09-11T20:57:41.91645 kern.notice: …`` (facility and level, no host);
- RFC 5424: ``<34>1 2024-05-23T20:29:53Z host app 334 - - …``.

:func:`split_syslog` only takes the prefix apart; :func:`prefix_time` turns its time into UTC
with the stream's :class:`~k3watch.parse.timestamps.LocalClock` (BSD times have no year and
usually no zone).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from k3watch.parse.logs import PRIORITIES
from k3watch.parse.timestamps import MONTHS, LocalClock, fraction_us, parse_rfc3339

_PRI = re.compile(r"<(\d{1,3})>")
_BSD = re.compile(
    r"([A-Z][a-z]{2}) {1,2}(\d{1,2}) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?"
    r"(?:(Z)|([+-])(\d\d):?(\d\d))? "
)
_ISO = re.compile(r"(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d{1,9})?(?:Z|[+-]\d\d:?\d\d)?) ")
_RFC5424 = re.compile(
    r"1 (\S+) (\S+) (\S+) (\S+) (\S+) "
    r'(-|(?:\[(?:[^\]"\\]|\\.|"(?:[^"\\]|\\.)*")*\])+) ?'
)
_FACILITY = re.compile(r"([a-z0-9]+)\.([a-z]+): ?")
# host, then the tag: a program name and an optional [pid], then a colon.
_TAG = re.compile(r"(\S+) ([^\s\[\]:]+)(?:\[(\d+)\])?: ?")
_HOST_ONLY = re.compile(r"(\S+) ")

_LEVEL_NAMES = {
    "emerg": 0,
    "panic": 0,
    "alert": 1,
    "crit": 2,
    "err": 3,
    "error": 3,
    "warn": 4,
    "warning": 4,
    "notice": 5,
    "info": 6,
    "debug": 7,
}


@dataclass(frozen=True, slots=True)
class SyslogPrefix:
    """The parts of a syslog prefix; ``message`` is the text after it.

    A full date comes as ``wall`` (µs read as UTC) and ``offset`` (µs, ``None`` if the time
    had no zone); a BSD date has no year and comes as ``month`` … ``micro`` with ``wall``
    ``None``. ``severity`` is 0 (emergency) to 7 (debug) when the prefix tells it.
    """

    message: str
    host: str | None = None
    ident: str | None = None
    pid: int | None = None
    severity: int | None = None
    wall: int | None = None
    offset: int | None = None
    month: int = 0
    day: int = 0
    hour: int = 0
    minute: int = 0
    second: int = 0
    micro: int = 0

    @property
    def level(self) -> str | None:
        return None if self.severity is None else PRIORITIES[self.severity]


def split_syslog(text: str) -> SyslogPrefix | None:
    """The prefix of a syslog line, or ``None`` if the line does not start with one."""
    if text[:1].islower():
        return None  # every prefix starts with "<", a digit or a capital (logrus: "time=")
    severity: int | None = None
    position = 0
    pri = _PRI.match(text)
    if pri is not None:
        severity = int(pri[1]) & 7
        position = pri.end()
        rfc5424 = _RFC5424.match(text, position)
        if rfc5424 is not None:
            return _rfc5424(text, rfc5424, severity)
    head = text[position : position + 1]
    if head.isdigit():
        iso = _ISO.match(text, position)
        if iso is None:
            return None
        parsed = parse_rfc3339(iso[1])
        if parsed is None:
            return None
        return _tagged(text, iso.end(), severity, wall=parsed[0], offset=parsed[1])
    bsd = _BSD.match(text, position)
    if bsd is None:
        return None
    month = MONTHS.get(bsd[1])
    if month is None:
        return None
    offset: int | None = None
    if bsd[7]:
        offset = 0
    elif bsd[8]:
        offset = (int(bsd[9]) * 3600 + int(bsd[10]) * 60) * 1_000_000
        if bsd[8] == "-":
            offset = -offset
    return _tagged(
        text,
        bsd.end(),
        severity,
        offset=offset,
        date=(month, int(bsd[2]), int(bsd[3]), int(bsd[4]), int(bsd[5]), fraction_us(bsd[6])),
    )


def prefix_time(prefix: SyslogPrefix, clock: LocalClock) -> int | None:
    """The prefix's time in UTC µs (``None`` if it names no real date)."""
    if prefix.wall is not None:
        if prefix.offset is None:
            return clock.localize(prefix.wall)
        utc = prefix.wall - prefix.offset
        clock.learn(utc, prefix.offset)
        return utc
    if prefix.offset is not None:
        # A BSD time with a zone but no year: the year is the clock's, the offset the line's.
        known = clock.offset
        clock.offset = prefix.offset
        try:
            return clock.resolve(
                prefix.month, prefix.day, prefix.hour, prefix.minute, prefix.second, prefix.micro
            )
        finally:
            clock.offset = known
    return clock.resolve(
        prefix.month, prefix.day, prefix.hour, prefix.minute, prefix.second, prefix.micro
    )


def _tagged(
    text: str,
    position: int,
    severity: int | None,
    *,
    wall: int | None = None,
    offset: int | None = None,
    date: tuple[int, int, int, int, int, int] = (0, 0, 0, 0, 0, 0),
) -> SyslogPrefix | None:
    """The prefix, given its time: reads the host and tag (or socklog's facility.level)."""
    host: str | None = None
    ident: str | None = None
    pid: int | None = None
    facility = _FACILITY.match(text, position)
    tag = None if facility is not None else _TAG.match(text, position)
    if facility is not None:
        ident = facility[1]
        level = _LEVEL_NAMES.get(facility[2])
        if level is not None:
            severity = level
        end = facility.end()
    elif tag is not None:
        host, ident = tag[1], tag[2]
        pid = int(tag[3]) if tag[3] and len(tag[3]) < 10 else None
        end = tag.end()
    else:
        bare = _HOST_ONLY.match(text, position)
        if bare is None:
            return None
        host, end = bare[1], bare.end()
    return SyslogPrefix(text[end:], host, ident, pid, severity, wall, offset, *date)


def _rfc5424(text: str, match: re.Match[str], severity: int) -> SyslogPrefix | None:
    wall: int | None = None
    offset: int | None = None
    if match[1] != "-":
        parsed = parse_rfc3339(match[1])
        if parsed is None:
            return None
        wall, offset = parsed
    procid = match[4]
    message = text[match.end() :]
    if message.startswith("\ufeff"):
        message = message[1:]
    return SyslogPrefix(
        message,
        None if match[2] == "-" else match[2],
        None if match[3] == "-" else match[3],
        int(procid) if procid.isdigit() and len(procid) < 10 else None,
        severity,
        wall=wall,
        offset=offset,
    )
