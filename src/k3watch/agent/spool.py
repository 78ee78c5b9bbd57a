"""The agent's spool: an append-only queue on disk between the sources and the server.

Every batch the sources produce is written here, and flushed to disk, before the source's
checkpoint moves past it; the forwarder sends it from here and moves the ``acked`` pointer
past it once the server has stored it. A crash, a restart or a server outage therefore loses
nothing that reached the spool, and what is sent again has the same batch id.

On disk (``spool_dir/spool/``, directory 0700, files 0600):

- ``NNNNNNNNNNNN.seg``: segments of frames, numbered in order. A frame is one batch of one
  source: a 16-byte prefix (magic ``K3SF``, header length, body length, CRC-32 of header and
  body, big-endian), a JSON header (source name, server label, format, event count, first
  and last event time, when it was written, the body's encoding) and the body: one JSON
  object per line, compressed (``zstd`` unless ``agent.compression`` says otherwise). It is
  sent as it is stored, so a batch is compressed once however often it is sent, and the
  spool holds many times more events than its size in JSON.
- ``acked.json``: the position (segment, offset) before which every frame is done; written
  atomically (temporary file, fsync, rename) after each acknowledgement. Segments entirely
  before it are deleted.
- ``id``: a random id made when the spool is created. It is part of every batch id, so a
  spool created afresh never re-uses the batch ids of an older one (which the server would
  take for retries and drop).

When the spool outgrows its size limit the oldest segments are deleted even if unsent; how
many events were lost and from which time range is logged and counted
(``dropped{spool_full}``). A frame cut short by a crash during an append is found when the
spool is opened, cut away, logged and counted (``torn_frames``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import gzip
import logging
import os
import re
import secrets
import struct
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import zstandard

from k3watch.durable import fsync_directory, write_atomically
from k3watch.event import format_time
from k3watch.telemetry import Counters

log = logging.getLogger(__name__)

# Characters a batch id may not hold (the server takes [A-Za-z0-9._:-]).
_BATCH_UNSAFE = re.compile(r"[^A-Za-z0-9._:-]")

MAGIC = b"K3SF"
PREFIX = struct.Struct(">4sIII")  # magic, header length, body length, CRC-32
MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 1024 * 1024 * 1024
DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
MIN_SEGMENT_BYTES = 64 * 1024
SUFFIX = ".seg"
ACKED_FILE = "acked.json"
ID_FILE = "id"
ZSTD, GZIP, IDENTITY = "zstd", "gzip", "identity"
ENCODINGS = (ZSTD, GZIP, IDENTITY)
LOCK_FILE = "lock"

# (segment number, byte offset): frames before it are done.
Cursor = tuple[int, int]


class SpoolError(Exception):
    """A frame that cannot be read back (damaged on disk)."""


class SpoolBusyError(OSError):
    """Another process has the spool open."""


@dataclass(frozen=True, slots=True)
class FrameHeader:
    """What a frame holds: ``count`` events of the source ``source`` (filed on the server
    under ``label``, read as ``format``), written at ``written``, with event times from
    ``first_time`` to ``last_time`` when known (epoch seconds)."""

    source: str
    label: str
    format: str
    count: int
    first_time: float | None = None
    last_time: float | None = None
    written: float = 0.0
    encoding: str = IDENTITY
    """How the body is compressed: ``zstd``, ``gzip`` or ``identity`` (the HTTP names)."""

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "source": self.source,
                "label": self.label,
                "format": self.format,
                "count": self.count,
                "first_time": self.first_time,
                "last_time": self.last_time,
                "written": self.written,
                "encoding": self.encoding,
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> FrameHeader:
        obj: Any = orjson.loads(data)
        if type(obj) is not dict:
            raise ValueError("the frame header is not a JSON object")
        return cls(
            source=str(obj["source"]),
            label=str(obj["label"]),
            format=str(obj["format"]),
            count=int(obj["count"]),
            first_time=_number(obj.get("first_time")),
            last_time=_number(obj.get("last_time")),
            written=_number(obj.get("written")) or 0.0,
            encoding=_encoding(obj.get("encoding", IDENTITY)),
        )


def _encoding(value: object) -> str:
    if value not in ENCODINGS:
        raise ValueError(f"unknown body encoding {value!r}")
    return str(value)


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@dataclass(frozen=True, slots=True)
class Frame:
    """One batch read back from the spool, at ``offset`` in ``segment`` (up to ``end``)."""

    segment: int
    offset: int
    end: int
    header: FrameHeader
    body: bytes

    @property
    def cursor(self) -> Cursor:
        return (self.segment, self.offset)

    @property
    def lines(self) -> list[bytes]:
        """The events, one JSON object each (without newline)."""
        return decompress(self.body, self.header.encoding).splitlines()


def compress(data: bytes, encoding: str) -> bytes:
    """``data`` compressed as ``encoding`` (``zstd`` at level 1, ``gzip`` at level 1)."""
    if encoding == ZSTD:
        return _zstd_compressor().compress(data)
    if encoding == GZIP:
        return gzip.compress(data, compresslevel=1)
    return data


def decompress(data: bytes, encoding: str) -> bytes:
    if encoding == ZSTD:
        return zstandard.ZstdDecompressor().decompress(data)
    if encoding == GZIP:
        return gzip.decompress(data)
    return data


_compressors = threading.local()


def _zstd_compressor() -> zstandard.ZstdCompressor:
    # One per thread (a compressor is not thread-safe), kept: making one allocates its tables.
    compressor: zstandard.ZstdCompressor | None = getattr(_compressors, "zstd", None)
    if compressor is None:
        compressor = _compressors.zstd = zstandard.ZstdCompressor(level=1)
    return compressor


def encode_frame(header: FrameHeader, lines: Sequence[bytes]) -> list[bytes]:
    """A frame's parts: prefix, header and body (``lines`` joined by newlines, compressed as
    ``header.encoding``)."""
    head = header.encode()
    body = compress(b"\n".join(lines) + b"\n", header.encoding) if lines else b""
    crc = zlib.crc32(body, zlib.crc32(head))
    return [PREFIX.pack(MAGIC, len(head), len(body), crc), head, body]


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
        self.encoding = _encoding(encoding)
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
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SpoolBusyError(
                errno.EAGAIN, "another agent is using this spool", str(self.directory)
            ) from None
        self._lock_fd = fd
        numbers = sorted(
            int(p.name[: -len(SUFFIX)])
            for p in self.directory.glob(f"*{SUFFIX}")
            if p.name[: -len(SUFFIX)].isdigit()
        )
        # Without segments the spool starts afresh, with an id of its own: its batch ids
        # must not be taken for those of a spool deleted before it.
        self.id = self._load_id() if numbers else self._new_id()
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

    def _load_id(self) -> str:
        path = self.directory / ID_FILE
        try:
            text = path.read_text(encoding="ascii").strip()
            if text.isalnum() and 4 <= len(text) <= 16:
                return text
        except (OSError, UnicodeDecodeError):
            pass
        return self._new_id()

    def _new_id(self) -> str:
        spool_id = secrets.token_hex(4)
        write_atomically(self.directory / ID_FILE, spool_id.encode())
        return spool_id

    def _load_acked(self) -> Cursor:
        path = self.directory / ACKED_FILE
        try:
            obj = orjson.loads(path.read_bytes())
            segment, offset = obj["segment"], obj["offset"]
            if type(segment) is int and type(offset) is int and segment >= 0 and offset >= 0:
                return (segment, offset)
            raise ValueError(f"not a position: {obj!r}")
        except FileNotFoundError:
            return (0, 0)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self.counters.inc("failed", reason="invalid_acked")
            log.warning(
                "spool: cannot read %s (%s); sending the whole spool again (the server drops "
                "what it already has)",
                path,
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
        return self.directory / f"{number:012d}{SUFFIX}"

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
                        located = _read_header(stream, offset, size)
                        if verify:
                            _read_body(stream, located)
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
                _write_all(self._fd, parts)
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
                located = _read_header(stream, offset, size)
                body = _read_body(stream, located)
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
        segment, offset = self._acked
        write_atomically(
            self.directory / ACKED_FILE, orjson.dumps({"segment": segment, "offset": offset})
        )

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


@dataclass(frozen=True, slots=True)
class _Located:
    """A frame's header as found on disk, and where its parts are."""

    header: FrameHeader
    head: bytes
    crc: int
    end: int
    body_length: int


def _read_header(stream: Any, offset: int, size: int) -> _Located:
    """The header of the frame at ``offset`` (the stream is then at its body)."""
    stream.seek(offset)
    prefix = stream.read(PREFIX.size)
    if len(prefix) < PREFIX.size:
        raise SpoolError("incomplete frame prefix")
    magic, head_length, body_length, crc = PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise SpoolError("no frame starts here")
    if head_length > MAX_HEADER_BYTES or body_length > MAX_BODY_BYTES:
        raise SpoolError("frame lengths out of range")
    end = offset + PREFIX.size + head_length + body_length
    if end > size:
        raise SpoolError("frame cut short")
    head = stream.read(head_length)
    try:
        header = FrameHeader.decode(head)
    except (ValueError, KeyError, TypeError) as exc:
        raise SpoolError(f"unreadable frame header: {exc}") from exc
    return _Located(header, head, crc, end, body_length)


def _read_body(stream: Any, located: _Located) -> bytes:
    """The body of a frame whose header was just read, its CRC checked."""
    body: bytes = stream.read(located.body_length)
    if len(body) != located.body_length or zlib.crc32(body, zlib.crc32(located.head)) != (
        located.crc
    ):
        raise SpoolError("checksum mismatch")
    return body


def _write_all(fd: int, parts: list[bytes]) -> None:
    """Write every part, in order (without joining them: a batch is a megabyte or so)."""
    views = [memoryview(part) for part in parts if part]
    while views:
        written = os.writev(fd, views)
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if views and written:
            views[0] = views[0][written:]
