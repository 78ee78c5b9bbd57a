"""Exact resumption: which re-read records were delivered before, and each new item's position.

A position (see :mod:`k3watch.sources.base`) says "everything read up to here was delivered,
except these held records". After a restart a source reads again from the first held record;
of the records that re-reading produces, those that start before the checkpoint and are not
held were delivered already and are suppressed. Every later position must keep saying so,
until reading passes the checkpoint, so that a second crash does not deliver them again.

Within one batch of records (the records one line completes, or a flush), the position after
record *i* also holds the records *i+1…* that start before it: an agent may commit in the
middle of a batch.
"""

from __future__ import annotations

from collections.abc import Sequence

from k3watch.sources.base import FilePosition, HeldRecord, JournalPosition
from k3watch.sources.lines import Record


class FileResume:
    """What a file checkpoint says was delivered: records before ``offset`` except ``remaining``."""

    __slots__ = ("line", "offset", "remaining")

    def __init__(self, position: FilePosition) -> None:
        self.offset = position.offset
        self.line = position.line
        self.remaining = {h.offset: h for h in position.held}

    def keeps(self, offset: int, index: int = 0) -> bool:
        """Whether the record starting at ``offset`` (``index``-th of its line) is new."""
        if offset >= self.offset:
            return True
        held = self.remaining.get(offset)
        return held is not None and index >= held.index

    def delivered(self, records: Sequence[Record]) -> None:
        for record in records:
            self.remaining.pop(record.offset, None)


def file_positions(
    records: Sequence[Record],
    parser_held: Sequence[tuple[int, int]],
    resume: FileResume | None,
    offset: int,
    line: int,
) -> list[tuple[int, int, tuple[HeldRecord, ...]]]:
    """``(offset, line, held)`` after each of ``records`` (all new), read up to ``offset``.

    ``parser_held`` is ``(offset, line)`` of the records the parser still holds.
    """
    if resume is None and len(records) == 1:
        return [(offset, line, held_after(records[0], parser_held))]
    held: dict[int, HeldRecord] = {}
    if resume is not None:
        if resume.offset > offset:
            offset, line = resume.offset, resume.line
        held.update(resume.remaining)
    for start, start_line in parser_held:
        if resume is None or resume.keeps(start) or start in resume.remaining:
            held.setdefault(start, HeldRecord(start, start_line))
    out = []
    for i in range(len(records)):
        now = dict(held)
        for earlier in records[: i + 1]:
            now.pop(earlier.offset, None)
        for later in records[i + 1 :]:
            now.setdefault(later.offset, HeldRecord(later.offset, later.line, later.index))
        out.append((offset, line, tuple(sorted(now.values(), key=lambda h: h.offset))))
    return out


def held_after(record: Record, parser_held: Sequence[tuple[int, int]]) -> tuple[HeldRecord, ...]:
    """The ``held`` of the position after ``record``, the only record of its batch, when no
    checkpoint is being resumed: what the parser still holds (``(offset, line)``, sorted).

    The common case of :func:`file_positions`, once per line of a log whose every line starts
    a record (the parser then holds the record the line started).
    """
    if len(parser_held) == 1:
        start, at = parser_held[0]
        return () if start == record.offset else (HeldRecord(start, at),)
    first = record.offset
    return tuple([HeldRecord(start, at) for start, at in parser_held if start != first])


def cursor_time(cursor: str) -> int | None:
    """The real time (µs) of the entry a journal cursor names (its ``t=`` field, hex)."""
    for part in cursor.split(";"):
        if part.startswith("t="):
            try:
                return int(part[2:], 16)
            except ValueError:
                return None
    return None


class JournalResume:
    """What a journal checkpoint says was delivered: entries up to ``cursor`` except
    the records starting at ``remaining``. Entries are numbered in reading order."""

    __slots__ = ("cursor", "passed", "realtime", "remaining")

    def __init__(self, position: JournalPosition) -> None:
        self.cursor = position.cursor
        self.realtime = cursor_time(position.cursor)
        self.remaining = list(position.held)
        self.passed: int | None = None  # the number of the last entry at or before the cursor

    def see(self, number: int, cursor: str | None) -> None:
        """Entry ``number`` (``cursor``) was read."""
        if self.passed is not None or cursor is None:
            return
        if cursor == self.cursor:
            self.passed = number
        elif self.realtime is not None and (cursor_time(cursor) or 0) > self.realtime:
            self.passed = number - 1  # the checkpointed entry is gone (vacuumed): this is new

    def keeps(self, number: int, key: str | None = None) -> bool:
        """Whether the record starting at entry ``number`` (cursor ``key``) is new."""
        return (self.passed is not None and number > self.passed) or key in self.remaining

    def delivered(self, keys: Sequence[str]) -> None:
        done = set(keys)
        self.remaining = [k for k in self.remaining if k not in done]


def journal_positions(
    records: Sequence[tuple[int, str]],
    parser_held: Sequence[tuple[int, str]],
    resume: JournalResume | None,
    cursor: str,
) -> list[JournalPosition]:
    """The position after each of ``records`` (``(entry number, key)``, all new).

    ``cursor`` is the last entry read; ``parser_held`` the ``(entry number, cursor)`` of the
    records the parser still holds. Held cursors are listed in reading order.
    """
    first: list[str] = []  # held from before the checkpoint, in reading order
    if resume is not None:
        if resume.passed is None:
            cursor = resume.cursor
        first = list(resume.remaining)
    newer = [(n, k) for n, k in parser_held if resume is None or resume.keeps(n)]
    out = []
    for i in range(len(records)):
        delivered = {key for _, key in records[: i + 1]}
        held = [key for key in first if key not in delivered]
        seen = set(held)
        for _, key in sorted([*newer, *records[i + 1 :]]):
            if key not in seen and key not in delivered:
                held.append(key)
                seen.add(key)
        out.append(JournalPosition(cursor, tuple(held)))
    return out
