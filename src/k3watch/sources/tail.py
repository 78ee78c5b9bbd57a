"""The ``file`` source: follow a log file through its rotations, resuming from a checkpoint.

Reading order is always the file's history, oldest first: on start, the rest of the
checkpointed file (found by inode or fingerprint, even renamed or gzip-compressed), then every
backup rotated after it, then the live file. While following, a rename (a new inode at the
path) is finished through the descriptor still open, then the backups rotated since, then the
new live file from its start; a truncation in place (``copytruncate``) is finished from the
copy when one is found among the backups, then the live file is read again from its start.

A line is handed to the parser only once its newline has arrived; the incomplete last line of
a rotated backup is complete (nobody writes to it any more) and is read at its end.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from k3watch.errors import InputError, Location
from k3watch.parse.audit import DEFAULT_MAX_EVENT_BYTES
from k3watch.sources.base import (
    DEFAULT_MAX_ITEMS,
    FilePosition,
    Fingerprint,
    Item,
    Position,
    check_start_at,
)
from k3watch.sources.checkpoint import CheckpointStore
from k3watch.sources.files import _os_error
from k3watch.sources.history import Plan, Segment
from k3watch.sources.lines import LogLines, Record, line_decoder
from k3watch.sources.resume import file_positions, held_after
from k3watch.sources.rotation import (
    CHUNK_SIZE,
    find_file,
    head_complete,
    list_backups,
    open_file,
    skip_to,
)
from k3watch.telemetry import Counters


class FileSource:
    """Follows one log file (``path``) and its rotated backups; see the module and docs/sources.md.

    ``format`` is ``audit`` or a parser name of :mod:`k3watch.parse.registry` (options in
    ``parser_options``). Without ``follow`` (``--once``) the source reads what is there and is
    then done; a live file's incomplete last line is left for the next run. ``start_at``
    (``beginning`` or ``end``) and ``read_backups`` apply to a first start without checkpoint.
    ``rotate_wait`` is how long a file renamed away is still read for late writes; ``idle_flush``
    how long a parser may hold a record waiting for continuation lines.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        format: str,
        name: str | None = None,
        checkpoints: CheckpointStore | None = None,
        follow: bool = True,
        start_at: str = "beginning",
        read_backups: bool = False,
        poll_interval: float = 0.25,
        rotate_wait: float = 1.0,
        idle_flush: float = 2.0,
        max_line_bytes: int | None = None,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        parser_options: dict[str, Any] | None = None,
        counters: Counters | None = None,
        parser_counters: Counters | None = None,
        on_error: Callable[[InputError], None] | None = None,
    ) -> None:
        self.path = str(path)
        self.name = name or self.path
        self.format = format
        self.counters = counters or Counters("source")
        self.parser_counters = parser_counters or Counters("parse")
        self.on_error = on_error or (lambda error: None)
        self.follow = follow
        self.start_at = check_start_at(start_at)
        self.read_backups = read_backups
        self.poll_interval = poll_interval
        self.rotate_wait = rotate_wait
        self.idle_flush = idle_flush
        self._store = checkpoints
        self._decoder = line_decoder(
            format,
            self.parser_counters,
            self.on_error,
            max_line_bytes=max_line_bytes,
            max_event_bytes=max_event_bytes,
            parser_options=parser_options,
        )
        self._max_line = self._decoder.parser.max_line_bytes
        self._segment: Segment | None = None
        self._plan = Plan(self.path, self._fail)
        self._outbox: deque[Item] = deque()
        self._started = False
        self._finished = False  # --once: everything there was has been read
        self._closed = False
        self._reported: set[str] = set()  # open errors reported since the last success
        self._last_line = time.monotonic()
        # The parser whose records carry a ``_key`` (audit events have none), and the
        # fingerprint it was last told the key's start for (see _name_keys).
        self._keyed = self._decoder.parser if isinstance(self._decoder, LogLines) else None
        self._keys_for: Fingerprint | None = None

    # -- the Source protocol -----------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self._closed or (self._finished and not self._outbox)

    def poll(self, max_items: int = DEFAULT_MAX_ITEMS, timeout: float = 0.0) -> list[Item]:
        deadline = time.monotonic() + timeout
        while True:
            self._fill(max_items)
            left = deadline - time.monotonic()
            if self._outbox or self._finished or self._closed or left <= 0:
                break
            time.sleep(min(self.poll_interval, left))
        count = min(max_items, len(self._outbox))
        return [self._outbox.popleft() for _ in range(count)]

    def commit(self, position: Position) -> None:
        if position is not None and not isinstance(position, FilePosition):
            raise TypeError(f"{self.name}: not a file position: {position!r}")
        if self._store is not None:
            self._store.save(self.name, position)

    def close(self) -> None:
        self._closed = True
        if self._segment is not None:
            self._segment.opened.close()
            self._segment = None
        self._plan.close()

    # -- planning what to read -----------------------------------------------------------------

    def _start(self) -> None:
        self._started = True
        position: Position = None
        if self._store is not None:
            try:
                position = self._store.load(self.name)
            except InputError as exc:
                self._fail(exc)
        if not isinstance(position, FilePosition):
            self._plan.first_start(read_backups=self.read_backups, from_end=self.start_at == "end")
        elif not self._plan.resume(position):
            self.counters.inc("dropped", reason="checkpoint_file_gone")

    def _open_next(self) -> bool:
        first = self._plan.queue[0] if self._plan else None
        try:
            segment = self._plan.open_next(self._max_line, follow=self.follow)
        except InputError as exc:
            if self._plan and self._plan.queue[0] is first:
                self._fail_once(exc)  # the live file, still planned: tried again next poll
                return False
            self._fail(exc)
            return True
        if segment is None:
            return False
        self._reported.clear()
        self._segment = segment
        return True

    # -- reading -------------------------------------------------------------------------------

    def _fill(self, max_items: int) -> None:
        if self._closed or self._finished:
            return
        if not self._started:
            self._start()
        while len(self._outbox) < max_items:
            segment = self._segment
            if segment is None:
                if self._open_next():
                    continue
                if not self._plan and not self.follow:
                    self._finished = True
                break
            if not self._step(segment):
                break
        idle = time.monotonic() - self._last_line >= self.idle_flush
        if self.follow and self._segment is not None and idle and self._decoder.held():
            self._flush(self._segment)

    def _step(self, segment: Segment) -> bool:
        """Read what there is; ``False`` when there is nothing to do now."""
        if segment.live and self._truncated(segment):
            return True
        try:
            data = segment.opened.stream.read(CHUNK_SIZE)
        except InputError as exc:  # damaged gzip data in a backup
            self._fail(exc)
            self._finish(segment)
            return True
        except OSError as exc:
            self._fail(_os_error(exc, segment.opened.path))
            self._finish(segment)
            return True
        if data:
            self._take(segment, data)
            return True
        if segment.live:
            if self._renamed(segment):
                return True
            if not self.follow:
                self._flush(segment)
                self._finished = not self._plan
            return False
        late = time.monotonic() - segment.last_data < self.rotate_wait
        if self.follow and segment.rotated and late:
            return False  # the writer may still be adding its last lines
        self._finish(segment)
        return True

    def _take(self, segment: Segment, data: bytes) -> None:
        segment.take(data)
        self.counters.inc("bytes", len(data))
        lines = segment.split.feed(data)
        if not lines:
            return
        self._name_keys(segment)
        self.counters.inc("lines", len(lines))
        self._last_line = segment.last_data
        decode = self._decoder.decode
        path = segment.opened.path
        items = 0  # counted once for the whole chunk rather than once a record (hot path)
        for line in lines:
            records = decode(line, path)
            if records:
                items += self._emit(segment, records, line.end, line.number + 1)
        if items:
            self.counters.inc("items", items)

    def _flush(self, segment: Segment) -> None:
        self._name_keys(segment)
        records = self._decoder.flush()
        if records:
            items = self._emit(segment, records, segment.split.offset, segment.split.line)
            if items:
                self.counters.inc("items", items)

    def _finish(self, segment: Segment) -> None:
        """The end of a file that will not grow: its last line counts even without newline."""
        line = segment.split.finish()
        if line is not None:
            self._name_keys(segment)
            self.counters.inc("lines")
            records = self._decoder.decode(line, segment.opened.path)
            if records and (items := self._emit(segment, records, line.end, line.number + 1)):
                self.counters.inc("items", items)
        self._flush(segment)
        segment.opened.close()
        self._segment = None

    # -- rotation --------------------------------------------------------------------------------

    def _truncated(self, segment: Segment) -> bool:
        """Detect and handle a truncation in place (copytruncate); ``True`` if there was one."""
        fd = segment.opened.raw.fileno()
        info = os.fstat(fd)
        size = info.st_size
        if (size, info.st_mtime_ns) == segment.stat_seen:
            return False
        segment.stat_seen = (size, info.st_mtime_ns)
        if size >= segment.size_seen:
            segment.size_seen = size
            if not head_complete(segment.head):
                return False
            fingerprint = segment.fingerprint()
            head = os.pread(fd, fingerprint.size, 0)
            if hashlib.sha256(head).hexdigest() == fingerprint.sha256:
                return False
        self.counters.inc("rotations", reason="truncated")
        if self._switch_to_copy(segment):
            return True
        self.counters.inc("dropped", reason="truncated_without_copy")
        self._fail(
            InputError(
                "file truncated and no copy of it found among the backups; lines written "
                "just before the truncation may be lost; reading again from its start",
                Location(segment.opened.path, segment.split.line),
                reason="truncated_without_copy",
            )
        )
        self._flush(segment)
        segment.restart(self._max_line)
        return True

    def _switch_to_copy(self, segment: Segment) -> bool:
        """Continue ``segment`` in the backup copied from it, then the backups after that
        copy, then the live file again from its start."""
        if not head_complete(segment.head):
            return False
        backups = list_backups(Path(self.path))
        found = find_file(backups, -1, segment.fingerprint(), segment.read_offset)
        if found is None:
            return False
        try:
            copy = open_file(backups[found])
            if skip_to(copy, segment.read_offset) != segment.read_offset:
                copy.close()
                return False
        except (OSError, InputError):
            return False
        segment.opened.close()
        segment.opened = copy
        segment.live = False
        self._plan.backups_after(backups, found, live=True)
        return True

    def _renamed(self, segment: Segment) -> bool:
        """At the end of the live file: was it renamed away? Then plan what came after it."""
        try:
            now_at_path: int | None = os.stat(self.path).st_ino
        except OSError:
            now_at_path = None
        if now_at_path == segment.opened.inode:
            return False
        self.counters.inc("rotations", reason="renamed")
        segment.live = False
        segment.rotated = True
        segment.last_data = time.monotonic()
        fingerprint = segment.fingerprint() if head_complete(segment.head) else None
        self._plan.after_rename(segment.opened.inode, fingerprint)
        return True

    # -- items and positions ---------------------------------------------------------------------

    def _emit(self, segment: Segment, records: list[Record], offset: int, line: int) -> int:
        """Queue ``records`` (the reading is now at ``offset``), each with its position; the
        number queued (the caller counts them)."""
        resume = segment.resume
        opened = segment.opened
        if resume is None and len(records) == 1:
            # The common case: one record, nothing to suppress; the parser holds at most the
            # records after it (see file_positions).
            record = records[0]
            fingerprint = segment.fingerprint()
            held = held_after(record, self._decoder.held()) if self._decoder.holds else ()
            position = FilePosition(opened.path, opened.inode, fingerprint, offset, line, held)
            self._outbox.append(Item(record.event, position))
            return 1
        kept = records
        if resume is not None:
            kept = [r for r in records if resume.keeps(r.offset, r.index)]
            if len(kept) < len(records):
                self.counters.inc(
                    "suppressed", len(records) - len(kept), reason="already_delivered"
                )
        if not kept:
            return 0
        fingerprint = segment.fingerprint()
        positions = file_positions(kept, self._decoder.held(), resume, offset, line)
        for record, (at, at_line, held) in zip(kept, positions, strict=True):
            position = FilePosition(opened.path, opened.inode, fingerprint, at, at_line, held)
            self._outbox.append(Item(record.event, position))
        if resume is not None:
            resume.delivered(kept)
        return len(kept)

    def _name_keys(self, segment: Segment) -> None:
        """Before the parser emits records of ``segment``: a log record's ``_key`` names the
        file by its path and fingerprint, so that it stays the same when the record is read
        again from a backup. The parser builds the key so as it emits the record, from the
        segment's fingerprint at that moment (a key made here over the parser's, once per
        record, was a measurable share of the agent's CPU). Audit events have no key; a
        journal entry keeps its cursor, which names it anywhere.
        """
        parser = self._keyed
        if parser is None:
            return
        fingerprint = segment.fingerprint()
        if fingerprint is not self._keys_for:  # changes rarely (the cached one is returned)
            self._keys_for = fingerprint
            parser.key_prefix = f"{self.path}#{fingerprint.sha256[:16]}@"

    # -- errors ----------------------------------------------------------------------------------

    def _fail(self, error: InputError) -> None:
        self.counters.inc("failed", reason=error.reason)
        self.on_error(error)

    def _fail_once(self, error: InputError) -> None:
        if error.reason not in self._reported:
            self._reported.add(error.reason)
            self._fail(error)
