"""Log timestamps: RFC 3339 parsing, and local times without a zone or a year made UTC.

Times are kept as integer microseconds since the epoch (UTC) so that the six fraction digits
written by klog, journald and the kernel come out exactly as they went in.

klog (``I0102 15:04:05.123456``) and BSD syslog (``May 23 20:29:53``) write the node's local
time with neither a zone nor a year. :class:`LocalClock` resolves them:

- against a *reference*, when the record has a real timestamp of its own (the journal's
  ``__REALTIME_TIMESTAMP``): the year is the one that brings the two nearest, and the UTC
  offset is their difference rounded to a quarter hour (and remembered);
- otherwise with the offset learned earlier in the stream (a logrus or RFC 3339 time with a
  zone, or a reference), else the configured zone; the year is the one nearest the previous
  record, or for the first record the latest one that is not after now.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache

_EPOCH = datetime(1970, 1, 1)
_MICRO = 1_000_000
_QUARTER_HOUR = 900 * _MICRO
_MAX_OFFSET = 14 * 3600 * _MICRO  # the widest UTC offset in use (UTC+14)
_FUTURE_SLACK = 86400 * _MICRO  # clocks differ; a time up to a day ahead of now is accepted

# 2024-05-23T20:29:53Z, 2024-05-23 20:29:53.123456789+02:00, 2024-05-23T20:29:53+0200.
# Groups: the time to the second (fixed positions), the fraction, the zone.
_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d)(?:[.,](\d{1,9}))?(Z|z|[+-]\d\d:?\d\d)?")

MONTHS = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}


# Lines of a log share a few seconds and one zone, so the calendar work is done once per
# second rather than once per line. Bounded: cleared when full.
_CACHED = 4096
_SECOND_TEXTS: dict[int, str] = {}  # seconds since the epoch → "2024-05-23T20:29:53."
_SECOND_STARTS: dict[str, int] = {}  # "2024-05-23T20:29:53" → its µs (valid, not a leap second)
# Zone as written → its UTC offset in µs; only valid zones, so at most 5,760 (±hh[:]mm).
_OFFSETS: dict[str | None, int | None] = {None: None, "Z": 0, "z": 0}
_UNKNOWN = 1  # not an offset (those are whole minutes): a zone not in _OFFSETS


# The times format_us can write: years 1 to 9999 (an offset can push a time written as
# 9999-12-31 past them).
FIRST_US = (datetime(1, 1, 1) - _EPOCH) // timedelta(microseconds=1)
LAST_US = (datetime(9999, 12, 31, 23, 59, 59, 999999) - _EPOCH) // timedelta(microseconds=1)


def format_us(us: int) -> str:
    """Microseconds since the epoch as RFC 3339 UTC with six fraction digits."""
    second, micro = divmod(us, _MICRO)
    head = _SECOND_TEXTS.get(second)
    if head is None:
        # OverflowError out of datetime's range, as for the whole time.
        head = (_EPOCH + timedelta(seconds=second)).strftime("%Y-%m-%dT%H:%M:%S.")
        if len(_SECOND_TEXTS) >= _CACHED:
            _SECOND_TEXTS.clear()
        _SECOND_TEXTS[second] = head
    return head + str(micro).zfill(6) + "Z"  # micro is never negative; faster than :06d


def fraction_us(digits: str | None) -> int:
    """A decimal fraction of a second (``"5"``, ``"123456789"``) in whole microseconds."""
    if not digits:
        return 0
    return int((digits + "000000")[:6])


def wall_us(
    year: int, month: int, day: int, hour: int, minute: int, second: int, micro: int = 0
) -> int | None:
    """A wall-clock time as microseconds since the epoch, read as if it were UTC.

    ``None`` for a date or time that does not exist (month 13, February 30, hour 24).
    A leap second (``:60``) is read as the last microsecond of its minute.
    """
    if second == 60:
        second, micro = 59, 999_999
    if not (0 <= hour < 24 and 0 <= minute < 60 and 0 <= second < 60 and 0 <= micro < _MICRO):
        return None
    midnight = _midnight(year, month, day)
    if midnight is None:
        return None
    return midnight + ((hour * 60 + minute) * 60 + second) * _MICRO + micro


@lru_cache(maxsize=4096)
def _midnight(year: int, month: int, day: int) -> int | None:
    """Microseconds since the epoch at the start of a date (read as UTC); None if invalid."""
    try:
        return (datetime(year, month, day) - _EPOCH).days * 86400 * _MICRO
    except (ValueError, OverflowError):
        return None


def parse_rfc3339(text: str) -> tuple[int, int | None] | None:
    """``(wall-clock µs read as UTC, UTC offset in µs or None)`` from an RFC 3339 time.

    The UTC time is ``wall - offset``; an offset of ``None`` means the text had no zone
    (a local time, see :meth:`LocalClock.localize`). ``None`` if the text is not a valid time.
    """
    # Nearly every time is UTC with a fraction ("2024-05-23T20:29:53.123456789Z") in a second
    # seen lately: read by position what the expression below would read.
    start = _SECOND_STARTS.get(text[:19])
    if start is not None and text[19:20] == "." and text[-1:] == "Z" and 22 <= len(text) <= 30:
        digits = text[20:-1]
        if digits.isascii() and digits.isdigit():
            micro = int(digits[:6]) if len(digits) >= 6 else int((digits + "000000")[:6])
            return start + micro, 0
    match = _RFC3339.fullmatch(text.strip())
    if match is None:
        return None
    second, fraction, zone = match.groups()
    start = _SECOND_STARTS.get(second)
    offset = _OFFSETS.get(zone, _UNKNOWN)
    if start is None or offset == _UNKNOWN:
        return _parse_parts(second, fraction, zone)
    return (start + int((fraction + "000000")[:6]) if fraction else start), offset


def _parse_parts(
    second: str, fraction: str | None, zone: str | None
) -> tuple[int, int | None] | None:
    """:func:`parse_rfc3339` for a second or zone not seen lately (it remembers them)."""
    parts = (second[0:4], second[5:7], second[8:10], second[11:13], second[14:16], second[17:19])
    year, month, day, hour, minute, seconds = (int(part) for part in parts)
    start = wall_us(year, month, day, hour, minute, seconds)
    if start is None:
        return None
    offset = _OFFSETS.get(zone, _UNKNOWN)
    if offset == _UNKNOWN and zone is not None:  # [+-]hh:mm (None, Z and z are known)
        hours, minutes = int(zone[1:3]), int(zone[-2:])
        if hours > 23 or minutes > 59:
            return None
        offset = (hours * 3600 + minutes * 60) * _MICRO
        if zone[0] == "-":
            offset = -offset
        _OFFSETS[zone] = offset
    if seconds == 60:
        return start, offset  # a leap second: the last µs of its minute, whatever the fraction
    if len(_SECOND_STARTS) >= _CACHED:
        _SECOND_STARTS.clear()
    _SECOND_STARTS[second] = start
    return start + fraction_us(fraction), offset


def _years(center: int, month: int, day: int, latest_first: bool = False) -> range:
    """The candidate years around ``center``: ±1, or ±4 for February 29th (leap years)."""
    spread = 4 if (month, day) == (2, 29) else 1
    if latest_first:
        return range(center + spread, center - spread - 1, -1)
    return range(center - spread, center + spread + 1)


def _year_of(us: int) -> int:
    return _year_of_day(us // (86400 * _MICRO))


@lru_cache(maxsize=4096)
def _year_of_day(day: int) -> int:
    return (_EPOCH + timedelta(days=day)).year


class LocalClock:
    """Resolves local times written without a zone (and often without a year) to UTC.

    ``tz`` is the zone assumed until the stream tells the offset; ``now`` returns the current
    time in epoch seconds (tests pass a fixed one). One clock serves one stream: it remembers
    the offset it learned and the last time it resolved.
    """

    __slots__ = ("_now", "_tz", "last", "offset")

    def __init__(self, tz: tzinfo = UTC, now: Callable[[], float] = time.time) -> None:
        self._tz = tz
        self._now = now
        self.offset: int | None = None  # learned UTC offset of the node's clock, in µs
        self.last: int | None = None  # the last time resolved or learned, UTC µs

    def learn(self, utc: int, offset: int | None = None) -> None:
        """Note a real time seen in the stream, and the UTC offset it was written with."""
        self.last = utc
        if offset is not None:
            self.offset = offset

    def localize(self, wall: int) -> int:
        """UTC µs of a full local wall-clock time (with its year) that had no zone."""
        utc = wall - self._offset_at(wall)
        self.last = utc
        return utc

    def resolve(
        self,
        month: int,
        day: int,
        hour: int,
        minute: int,
        second: int,
        micro: int = 0,
        reference: int | None = None,
    ) -> int | None:
        """UTC µs of a local time without a year; ``None`` if no year makes it a valid date.

        ``reference`` is the record's own real time (UTC µs) when it has one.
        """
        if reference is not None:
            resolved = self._against(reference, month, day, hour, minute, second, micro)
            if resolved is not None:
                self.last = resolved
                return resolved
        anchor = self.last
        latest = anchor is None
        if anchor is None:
            anchor = int(self._now() * _MICRO)
        try:
            center = _year_of(anchor)
        except OverflowError:
            return None
        best: int | None = None
        for year in _years(center, month, day, latest_first=True):
            wall = wall_us(year, month, day, hour, minute, second, micro)
            if wall is None:
                continue
            utc = wall - self._offset_at(wall)
            if latest:
                # The first record of a stream: the latest year that is not in the future.
                if utc <= anchor + _FUTURE_SLACK:
                    best = utc
                    break
                if best is None:
                    best = utc
            elif best is None or abs(utc - anchor) < abs(best - anchor):
                best = utc
        if best is not None:
            self.last = best
        return best

    def _against(
        self,
        reference: int,
        month: int,
        day: int,
        hour: int,
        minute: int,
        second: int,
        micro: int,
    ) -> int | None:
        try:
            center = _year_of(reference)
        except OverflowError:
            return None
        best: int | None = None
        for year in _years(center, month, day):
            wall = wall_us(year, month, day, hour, minute, second, micro)
            if wall is not None and (best is None or abs(wall - reference) < abs(best - reference)):
                best = wall
        if best is None:
            return None
        offset = round((best - reference) / _QUARTER_HOUR) * _QUARTER_HOUR
        if abs(offset) > _MAX_OFFSET:
            # Too far apart to be a time zone (a late or replayed line): keep what is known.
            return best - self._offset_at(best)
        self.offset = offset
        return best - offset

    def _offset_at(self, wall: int) -> int:
        if self.offset is not None:
            return self.offset
        if self._tz is UTC:
            return 0
        try:
            local = _EPOCH + timedelta(microseconds=wall)
            delta = self._tz.utcoffset(local)
        except (OverflowError, ValueError):
            return 0
        return 0 if delta is None else (delta.days * 86400 + delta.seconds) * _MICRO
