"""The agent's spool: an append-only queue on disk between the sources and the server.

Every batch the sources produce is written here, and flushed to disk, before the source's
checkpoint moves past it; the forwarder sends it from here and moves the ``acked`` pointer
past it once the server has stored it. A crash, a restart or a server outage therefore loses
nothing that reached the spool, and what is sent again has the same batch id.

The files are described in :mod:`k3watch.agent.spool_directory`, the frames that hold the
batches in :mod:`k3watch.agent.spool_format`.

When the spool outgrows its size limit the oldest segments are deleted even if unsent; how
many events were lost and from which time range is logged and counted
(``dropped{spool_full}``). A frame cut short by a crash during an append is found when the
spool is opened, cut away, logged and counted (``torn_frames``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from k3watch.agent.spool_directory import (
    ACKED_FILE,
    SUFFIX,
    SpoolBusyError,
    load_id,
    new_id,
    open_directory,
    read_acked,
    segment_numbers,
    segment_path,
    store_acked,
    write_all,
)
from k3watch.agent.spool_format import (
    IDENTITY,
    PREFIX,
    Cursor,
    Frame,
    FrameHeader,
    SpoolError,
    check_encoding,
    compress,
    decompress,
    encode_frame,
    read_body,
    read_header,
)
from k3watch.durable import fsync_directory
from k3watch.event import format_time
from k3watch.telemetry import Counters

# The spool, and the frame and file names its callers use with it.
__all__ = [
    "ACKED_FILE",
    "IDENTITY",
    "PREFIX",
    "SUFFIX",
    "Cursor",
    "Frame",
    "FrameHeader",
    "Spool",
    "SpoolBusyError",
    "SpoolError",
    "compress",
    "decompress",
]

log = logging.getLogger(__name__)

# Characters a batch id may not hold (the server takes [A-Za-z0-9._:-]).
_BATCH_UNSAFE = re.compile(r"[^A-Za-z0-9._:-]")

DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
MIN_SEGMENT_BYTES = 64 * 1024


@dataclass(slots=True)
class _Scan:
    """What reading a segment's frame headers found."""

    end: int = 0  # where the last good frame ends
    frames: int = 0
    events: int = 0
    first_time: float | None = None
    last_time: float | None = None
    damaged: str = ""  # why the scan stopped before the end of the file, if it did


class Spool:
    """The spool in ``directory`` (see the module); thread-safe.

    ``max_size`` bounds the bytes of all segments together; a segment is closed once it
    reaches ``segment_bytes`` (by default 64 MiB, or an eighth of ``max_size`` when that is
    smaller, so that the oldest data is dropped in small steps). Frame bodies are compressed
    as ``encoding`` (``zstd``, ``gzip`` or ``identity``).
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        max_size: int,
        segment_bytes: int | None = None,
        encoding: str = IDENTITY,
        counters: Counters | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.encoding = check_encoding(encoding)
        self.max_size = max_size
        if segment_bytes is None:
            segment_bytes = min(DEFAULT_SEGMENT_BYTES, max(MIN_SEGMENT_BYTES, max_size // 8))
        self.segment_bytes = segment_bytes
        self.counters = counters or Counters("spool")
        self._lock = threading.Condition()
        self._sizes: dict[int, int] = {}  # segment → bytes, in order
        self._fd: int | None = None  # the segment appended to (the last one)
        self._backlog_events = 0
        self._backlog_frames = 0
        self._closed = False
        self._lock_fd: int | None = None
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    # -- opening -----------------------------------------------------------------------------

    def _open(self) -> None:
        self._lock_fd = open_directory(self.directory)
        numbers = segment_numbers(self.directory)
        # Without segments the spool starts afresh, with an id of its own: its batch ids
        # must not be taken for those of a spool deleted before it.
        self.id = load_id(self.directory) if numbers else new_id(self.directory)
        acked = self._load_acked()
        for number in numbers:
            if number < acked[0]:
                self._path(number).unlink(missing_ok=True)  # done; a crash came first
            else:
                self._sizes[number] = self._path(number).stat().st_size
        if not self._sizes:
            # A number never used before: batch ids are made from it.
            acked = (acked[0] + 1, 0)
            self._new_segment(acked[0])
        else:
            newest = next(reversed(self._sizes))
            self._recover_tail(newest)
            first = next(iter(self._sizes))
            acked = max(acked, (first, 0))
            if acked[1] > self._sizes[acked[0]]:
                log.warning(
                    "spool: the acknowledged position is past the end of segment %d; "
                    "taking the segment as done",
                    acked[0],
                )
                acked = (acked[0], self._sizes[acked[0]])
            self._fd = os.open(self._path(newest), os.O_WRONLY | os.O_APPEND)
        self._acked = acked
        self._recount()
        self._normalize()

    def _load_acked(self) -> Cursor:
        try:
            return read_acked(self.directory)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self.counters.inc("failed", reason="invalid_acked")
            log.warning(
                "spool: cannot read %s (%s); sending the whole spool again (the server drops "
                "what it already has)",
                self.directory / ACKED_FILE,
                exc,
            )
            return (0, 0)

    def _recover_tail(self, number: int) -> None:
        """Cut a frame left incomplete by a crash from the end of the last segment."""
        scan = self._scan(number, 0, verify=True)
        size = self._sizes[number]
        if scan.end == size:
            return
        with open(self._path(number), "r+b") as out:
            out.truncate(scan.end)
            out.flush()
            os.fsync(out.fileno())
        self._sizes[number] = scan.end
        self.counters.inc("torn_frames")
        self.counters.inc("torn_bytes", size - scan.end)
        log.warning(
            "spool: segment %d ended in an incomplete frame (%s; %d bytes), probably written "
            "during a crash; cut it away. Its events were never confirmed to their source, "
            "which sends them again if it can.",
            number,
            scan.damaged or "cut short",
            size - scan.end,
            extra={"fields": {"segment": number, "bytes": size - scan.end}},
        )

    def _recount(self) -> None:
        events = frames = 0
        for number in self._sizes:
            if number < self._acked[0]:
                continue
            start = self._acked[1] if number == self._acked[0] else 0
            scan = self._scan(number, start)
            events += scan.events
            frames += scan.frames
        self._backlog_events = events
        self._backlog_frames = frames

    # -- files -------------------------------------------------------------------------------

    def _path(self, number: int) -> Path:
        return segment_path(self.directory, number)

    def _new_segment(self, number: int) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd = os.open(
            self._path(number), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600
        )
        self._sizes[number] = 0
        fsync_directory(self.directory)

    def _delete(self, number: int) -> None:
        self._path(number).unlink(missing_ok=True)
        self._sizes.pop(number, None)

    def _scan(self, number: int, start: int, *, verify: bool = False) -> _Scan:
        """Read the frame headers of segment ``number`` from ``start`` (and check the
        CRCs when ``verify``)."""
        scan = _Scan(end=start)
        size = self._sizes.get(number, 0)
        try:
            with open(self._path(number), "rb") as stream:
                offset = start
                while offset < size:
                    try:
                        located = read_header(stream, offset, size)
                        if verify:
                            read_body(stream, located)
                        header, end = located.header, located.end
                    except SpoolError as exc:
                        scan.damaged = str(exc)
                        break
                    scan.frames += 1
                    scan.events += header.count
                    if scan.first_time is None:
                        scan.first_time = header.first_time
                    scan.last_time = header.last_time or scan.last_time
                    offset = scan.end = end
        except FileNotFoundError:
            pass
        return scan

    # -- appending -----------------------------------------------------------------------------

    def append(self, header: FrameHeader, lines: Sequence[bytes]) -> Cursor:
        """Write one frame and flush it to disk; its position. Raises OSError when it cannot
        be written (nothing of it is kept then)."""
        if header.encoding != self.encoding:
            header = dataclasses.replace(header, encoding=self.encoding)
        parts = encode_frame(header, lines)
        length = sum(len(part) for part in parts)
        with self._lock:
            if self._closed:
                raise OSError("the spool is closed")
            number = next(reversed(self._sizes))
            if self._sizes[number] >= self.segment_bytes:
                self._rotate(number)
                number += 1
            assert self._fd is not None
            offset = self._sizes[number]
            try:
                write_all(self._fd, parts)
                os.fsync(self._fd)
            except OSError:
                self.counters.inc("failed", reason="write")
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, offset)
                raise
            self._sizes[number] = offset + length
            self._backlog_events += header.count
            self._backlog_frames += 1
            self.counters.inc("frames")
            self.counters.inc("events", header.count)
            self.counters.inc("bytes", length)
            self._enforce_limit()
            self._lock.notify_all()
            return (number, offset)

    def _rotate(self, number: int) -> None:
        self._new_segment(number + 1)
        self._normalize()

    def _enforce_limit(self) -> None:
        """Delete the oldest segments, sent or not, until the spool fits its size limit."""
        lost = _Scan()
        segments = 0
        while sum(self._sizes.values()) > self.max_size:
            oldest = next(iter(self._sizes))
            newest = next(reversed(self._sizes))
            if oldest == newest:
                if self._sizes[oldest] == 0:
                    break
                self._rotate(oldest)  # the segment being written goes too
                continue
            if oldest >= self._acked[0]:
                start = self._acked[1] if oldest == self._acked[0] else 0
                scan = self._scan(oldest, start)
                lost.events += scan.events
                lost.frames += scan.frames
                if lost.first_time is None:
                    lost.first_time = scan.first_time
                lost.last_time = scan.last_time or lost.last_time
            self._delete(oldest)
            segments += 1
            following = next(iter(self._sizes))
            self._acked = max(self._acked, (following, 0))
        if not segments:
            return
        self._store_acked()
        self._backlog_events = max(0, self._backlog_events - lost.events)
        self._backlog_frames = max(0, self._backlog_frames - lost.frames)
        self.counters.inc("evicted_segments", segments)
        if lost.events:
            self.counters.inc("dropped", lost.events, reason="spool_full")
            log.warning(
                "spool full (limit %d bytes): dropped the %d oldest unsent events "
                "(%d batches, event times %s to %s) to make room; the server is unreachable "
                "or too slow, or agent.spool_max_size is too small",
                self.max_size,
                lost.events,
                lost.frames,
                format_time(lost.first_time) or "unknown",
                format_time(lost.last_time) or "unknown",
                extra={
                    "fields": {
                        "dropped_events": lost.events,
                        "first_time": format_time(lost.first_time),
                        "last_time": format_time(lost.last_time),
                    }
                },
            )

    # -- reading and acknowledging ---------------------------------------------------------------

    def read(self, cursor: Cursor | None = None) -> Frame | None:
        """The first frame at or after ``cursor`` (the acknowledged position when ``None`` or
        earlier); ``None`` when there is none yet.

        A damaged frame is logged, counted (``dropped{corrupt}``) and skipped with the rest of
        its segment, as nothing after it can be trusted to start a frame.
        """
        with self._lock:
            number, offset = max(cursor or self._acked, self._acked)
            while True:
                following = [n for n in self._sizes if n >= number]
                if not following:
                    return None
                if following[0] != number:
                    number, offset = following[0], 0
                size = self._sizes[number]
                if offset < size:
                    break
                if number == next(reversed(self._sizes)):
                    return None
                number, offset = number + 1, 0
        try:
            return self._read_frame(number, offset, size)
        except SpoolError as exc:
            self._skip_damaged(number, offset, str(exc))
            return self.read((number + 1, 0))

    def _read_frame(self, number: int, offset: int, size: int) -> Frame:
        try:
            with open(self._path(number), "rb") as stream:
                located = read_header(stream, offset, size)
                body = read_body(stream, located)
        except FileNotFoundError as exc:  # deleted since: the spool was full
            raise SpoolError("the segment was deleted") from exc
        return Frame(number, offset, located.end, located.header, body)

    def _skip_damaged(self, number: int, offset: int, why: str) -> None:
        with self._lock:
            if not self._path(number).exists():
                return  # deleted to make room: already counted
            if number == next(reversed(self._sizes)):
                self._rotate(number)
            self._acked = max(self._acked, (number + 1, 0))
            self._delete(number)
            self._store_acked()
            before = self._backlog_events
            self._recount()
            lost = max(0, before - self._backlog_events)
            self.counters.inc("dropped", lost, reason="corrupt")
            self.counters.inc("corrupt_segments")
            self._lock.notify_all()
        log.error(
            "spool: segment %d is damaged at offset %d (%s); skipped the rest of it "
            "(at least %d events lost)",
            number,
            offset,
            why,
            lost,
            extra={"fields": {"segment": number, "offset": offset, "dropped_events": lost}},
        )

    def ack(self, frame: Frame) -> None:
        """The server stored ``frame``: move the acknowledged position past it, durably."""
        with self._lock:
            if frame.cursor < self._acked:
                return  # dropped meanwhile to make room (and counted then)
            in_order = frame.cursor == self._acked
            self._acked = (frame.segment, frame.end)
            if in_order:
                self._backlog_events = max(0, self._backlog_events - frame.header.count)
                self._backlog_frames = max(0, self._backlog_frames - 1)
            else:
                self._recount()  # frames were skipped: count what is left
            self.counters.inc("acked_frames")
            self.counters.inc("acked_events", frame.header.count)
            self._normalize()
            self._store_acked()
            self._lock.notify_all()

    def _normalize(self) -> None:
        """Step the pointer over finished segments and delete them."""
        newest = next(reversed(self._sizes))
        number, offset = self._acked
        while number < newest and offset >= self._sizes.get(number, 0):
            following = [n for n in self._sizes if n > number]
            number, offset = following[0], 0
        self._acked = (number, offset)
        for old in [n for n in self._sizes if n < number]:
            self._delete(old)

    def _store_acked(self) -> None:
        store_acked(self.directory, self._acked)

    # -- waiting and state -----------------------------------------------------------------------

    def wait(
        self, cursor: Cursor | None, timeout: float, stop: threading.Event | None = None
    ) -> None:
        """Wait up to ``timeout`` seconds for a frame after ``cursor``, a close, or ``stop``
        (see :meth:`wake`)."""
        with self._lock:
            self._lock.wait_for(
                lambda: (
                    self._closed
                    or (stop is not None and stop.is_set())
                    or self._has_after(cursor or self._acked)
                ),
                timeout,
            )

    def wake(self) -> None:
        """Wake the threads in :meth:`wait` and :meth:`wait_drained` to look again."""
        with self._lock:
            self._lock.notify_all()

    def _has_after(self, cursor: Cursor) -> bool:
        number, offset = max(cursor, self._acked)
        return any(n > number and size for n, size in self._sizes.items()) or (
            offset < self._sizes.get(number, 0)
        )

    def wait_drained(self, timeout: float, stop: threading.Event | None = None) -> bool:
        """Wait until every frame is acknowledged (or ``stop`` is set); whether every frame
        is."""
        with self._lock:
            self._lock.wait_for(
                lambda: self._backlog_frames == 0 or (stop is not None and stop.is_set()),
                timeout,
            )
            return self._backlog_frames == 0

    @property
    def acked(self) -> Cursor:
        with self._lock:
            return self._acked

    @property
    def backlog_events(self) -> int:
        """Events written and not acknowledged yet."""
        return self._backlog_events

    @property
    def backlog_frames(self) -> int:
        return self._backlog_frames

    @property
    def size(self) -> int:
        """Bytes of all segments (acknowledged frames of the current segment included)."""
        with self._lock:
            return sum(self._sizes.values())

    @property
    def backlog_bytes(self) -> int:
        """Bytes of the frames not acknowledged yet."""
        with self._lock:
            number, offset = self._acked
            return sum(s for n, s in self._sizes.items() if n >= number) - offset

    def batch_id(self, node: str, frame: Frame) -> str:
        """The id the server knows the frame by: the same each time it is sent."""
        name = _BATCH_UNSAFE.sub("_", node)[:48]
        return f"{name}-{self.id}-{frame.segment}-{frame.offset}"

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)  # releases the lock
                self._lock_fd = None
            self._lock.notify_all()
