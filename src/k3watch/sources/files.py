"""Audit log files, directories of rotated logs and stdin, read as lines of bytes.

Three steps, each usable alone:

- :func:`resolve_inputs` turns command-line paths into :class:`InputFile` values, expanding a
  directory into its audit logs oldest first (rotated backups, then the live file);
- :func:`open_input` opens one for binary reading, decompressing gzip found by its magic bytes;
- :func:`iter_lines` splits a stream into numbered lines with bounded memory.
"""

from __future__ import annotations

import errno
import io
import os
import re
import stat
import sys
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast

from k3watch.errors import InputError, Location
from k3watch.telemetry import Counters

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

STDIN_NAME = "<stdin>"
GZIP_MAGIC = b"\x1f\x8b"
CHUNK_SIZE = 1024 * 1024

# Extensions of the files a directory expands to (each may also end in ".gz").
AUDIT_EXTENSIONS = (".log", ".json", ".jsonl", ".ndjson")

# kube-apiserver rotates with lumberjack: audit.log → audit-2024-05-01T10-20-30.123.log (UTC).
_LUMBERJACK = re.compile(
    r"(?P<stem>.+)-(?P<stamp>\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}\.\d{3})(?P<ext>\.[^.]+)"
)
# logrotate without dateext: audit.log.1 is newer than audit.log.2.
_NUMBERED = re.compile(r"(?P<live>.+)\.(?P<number>\d+)")

# (live file name, rank, lumberjack timestamp, -logrotate number, file name): see rotation_key.
RotationKey = tuple[str, int, str, int, str]

_OPEN_ERRORS: dict[int, tuple[str, str, str]] = {
    errno.ENOENT: ("not_found", "no such file or directory", "check the path"),
    errno.ENOTDIR: ("not_found", "no such file or directory", "check the path"),
    errno.EACCES: (
        "permission_denied",
        "permission denied",
        "run as a user that can read it; K3s keeps audit logs in a 0700 directory",
    ),
    errno.EPERM: ("permission_denied", "operation not permitted", ""),
    errno.EISDIR: ("is_a_directory", "is a directory", "pass the directory to scan instead"),
}


@dataclass(frozen=True, slots=True)
class InputFile:
    """One input to read: a file on disk or stdin.

    ``name`` is the path as the user gave it (or ``<stdin>``) and is what locations print;
    ``size`` is the on-disk size in bytes, for progress bars (``None`` for stdin and pipes).
    """

    name: str
    path: Path | None
    size: int | None


@dataclass(frozen=True, slots=True)
class OverlongLine:
    """Stands in for a line longer than the limit, which :func:`iter_lines` skipped unread.

    ``length`` is the number of bytes the line had, without its newline.
    """

    length: int


def _os_error(exc: OSError, name: str) -> InputError:
    reason, text, hint = _OPEN_ERRORS.get(
        exc.errno or 0, ("unreadable", exc.strerror or str(exc), "")
    )
    return InputError(f"cannot read: {text}; skipped", Location(name), hint, reason)


def resolve_inputs(
    paths: Sequence[str], on_error: Callable[[InputError], None], counters: Counters
) -> list[InputFile]:
    """Expand command-line paths (files, directories, ``-`` for stdin) into inputs to read.

    A directory expands to the audit logs directly inside it, oldest first (see
    :func:`rotation_key`); hidden files and other names are skipped and counted in
    ``files_skipped``. A path that is missing or unreadable is reported to ``on_error``,
    counted in ``files_failed`` and left out; this function does not raise for bad paths.
    """
    inputs: list[InputFile] = []

    def fail(error: InputError) -> None:
        counters.inc("files_failed", reason=error.reason)
        on_error(error)

    for given in paths:
        if given == "-":
            inputs.append(InputFile(STDIN_NAME, None, None))
            continue
        try:
            info = os.stat(given)
        except OSError as exc:
            fail(_os_error(exc, given))
            continue
        if stat.S_ISDIR(info.st_mode):
            inputs.extend(_expand_directory(given, fail, counters))
        elif not os.access(given, os.R_OK):
            fail(_os_error(PermissionError(errno.EACCES, "permission denied"), given))
        else:
            # Pipes (``<(zcat …)``) and devices are read like files but have no useful size.
            size = info.st_size if stat.S_ISREG(info.st_mode) else None
            inputs.append(InputFile(given, Path(given), size))
    if inputs:
        counters.inc("files", len(inputs))
    return inputs


def _expand_directory(
    directory: str, fail: Callable[[InputError], None], counters: Counters
) -> list[InputFile]:
    try:
        with os.scandir(directory) as scan:
            entries = list(scan)
    except OSError as exc:
        fail(_os_error(exc, directory))
        return []
    found: list[tuple[RotationKey, InputFile]] = []
    named = 0  # entries with an audit log name, readable or not
    for entry in entries:
        if entry.name.startswith("."):
            counters.inc("files_skipped", reason="hidden")
            continue
        key = rotation_key(entry.name)
        if key is None:
            counters.inc("files_skipped", reason="not_audit_name")
            continue
        try:
            if not entry.is_file():
                counters.inc("files_skipped", reason="not_a_file")
                continue
            named += 1
            size = entry.stat().st_size
        except OSError as exc:
            fail(_os_error(exc, entry.path))
            continue
        if not os.access(entry.path, os.R_OK):
            fail(_os_error(PermissionError(errno.EACCES, "permission denied"), entry.path))
            continue
        found.append((key, InputFile(entry.path, Path(entry.path), size)))
    if not named:
        fail(
            InputError(
                "no audit log files in this directory (*.log, *.json, *.jsonl, *.ndjson, "
                "rotated or .gz); skipped",
                Location(directory),
                reason="no_audit_files",
            )
        )
    found.sort(key=lambda pair: pair[0])
    return [inp for _, inp in found]


def rotation_key(name: str) -> RotationKey | None:
    """Sort key putting a log's rotated files oldest first and the live file last.

    Files group by the live file they rotate from (``audit.log``); within a group come
    lumberjack backups by timestamp, then logrotate ``.N`` files from the highest N down, then
    the live file. ``None`` means the name is not an audit log name.
    """
    base = name[:-3] if name.endswith(".gz") else name
    numbered = _NUMBERED.fullmatch(base)
    if numbered and numbered["live"].endswith(AUDIT_EXTENSIONS):
        return (numbered["live"], 1, "", -int(numbered["number"]), name)
    if not base.endswith(AUDIT_EXTENSIONS):
        return None
    backup = _LUMBERJACK.fullmatch(base)
    if backup:
        return (backup["stem"] + backup["ext"], 0, backup["stamp"], 0, name)
    return (base, 2, "", 0, name)


def open_input(inp: InputFile, on_progress: Callable[[int], None] | None = None) -> BinaryIO:
    """Open an input for binary reading, decompressing gzip (found by magic bytes, not name).

    ``on_progress(n)`` is called as ``n`` more bytes are read from disk (compressed bytes for
    gzip files), so progress can be shown against :attr:`InputFile.size`. Raises
    :class:`InputError` if the input cannot be opened; close the returned stream when done.
    """
    if inp.path is None:
        return open_stream(sys.stdin.buffer, STDIN_NAME, on_progress, close_raw=False)
    try:
        raw = open(inp.path, "rb", buffering=0)  # noqa: SIM115 - the returned stream owns it
    except OSError as exc:
        raise _os_error(exc, inp.name) from exc
    try:
        return open_stream(raw, inp.name, on_progress)
    except BaseException:
        raw.close()
        raise


def open_stream(
    raw: BinaryIO,
    name: str,
    on_progress: Callable[[int], None] | None = None,
    *,
    close_raw: bool = True,
) -> BinaryIO:
    """Wrap an open binary stream as :func:`open_input` does: count bytes, gunzip if gzip.

    Concatenated gzip members (``cat a.gz b.gz``) are read one after another. Closing the
    returned stream closes ``raw`` unless ``close_raw`` is false (as for stdin).
    """
    try:
        head = raw.read(2)
        # A pipe may hand out one byte at a time.
        while 0 < len(head) < 2 and (more := raw.read(2 - len(head))):
            head += more
    except OSError as exc:
        raise _os_error(exc, name) from exc
    if on_progress is not None and head:
        on_progress(len(head))
    disk = _DiskReader(raw, head, on_progress, close_raw)
    # Unbuffered on purpose: iter_lines reads big chunks, and a BufferedReader would copy each
    # one again and could drop decompressed bytes when a later gzip read fails in the same call.
    # The raw readers implement the reading half of BinaryIO, which typeshed does not declare.
    if head == GZIP_MAGIC:
        return cast(BinaryIO, _GunzipReader(disk, name))
    return cast(BinaryIO, disk)


class _DiskReader(io.RawIOBase):
    """Reads the underlying stream, replaying the sniffed magic bytes and counting progress."""

    def __init__(
        self,
        raw: BinaryIO,
        head: bytes,
        on_progress: Callable[[int], None] | None,
        close_raw: bool,
    ) -> None:
        super().__init__()
        self._raw = raw
        self._head = head
        self._on_progress = on_progress
        self._close_raw = close_raw

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1, /) -> bytes:
        if self._head:
            if size < 0:
                data, self._head = self._head + self._read_raw(-1), b""
            else:
                data, self._head = self._head[:size], self._head[size:]
            return data
        return self._read_raw(size)

    def _read_raw(self, size: int) -> bytes:
        data = self._raw.read(size)
        if self._on_progress is not None and data:
            self._on_progress(len(data))
        return data

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        with memoryview(buffer) as view:
            data = self.read(len(view))
            view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed and self._close_raw:
            self._raw.close()
        super().close()


class _GunzipReader(io.RawIOBase):
    """Decompresses gzip members one after another, without limit on the member count.

    Damage becomes an :class:`InputError` (``invalid_gzip``, ``truncated_gzip``) only after
    every byte that could be decompressed has been returned, so a file cut mid-write still
    yields its complete lines.
    """

    def __init__(self, disk: _DiskReader, name: str) -> None:
        super().__init__()
        self._disk = disk
        self._name = name
        self._inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1, /) -> bytes:
        if size < 0:
            return self.readall()
        while True:
            data = self._next_input()
            if data is None:
                return b""
            try:
                # max_length bounds the output, so a small compressed bomb cannot flood memory.
                out = self._inflater.decompress(data, size)
            except zlib.error as exc:
                raise InputError(
                    f"corrupt gzip data ({exc}); rest of the file skipped",
                    Location(self._name),
                    reason="invalid_gzip",
                ) from exc
            if out:
                return out

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        with memoryview(buffer) as view:
            data = self.read(len(view))
            view[: len(data)] = data
        return len(data)

    def _next_input(self) -> bytes | None:
        """The next compressed bytes to feed; ``None`` at a clean end of the last member."""
        inflater = self._inflater
        if inflater.unconsumed_tail:
            return inflater.unconsumed_tail
        if not inflater.eof:
            data = self._disk.read(CHUNK_SIZE)
            if not data:
                raise InputError(
                    "gzip data ends early (file truncated or still being written); "
                    "rest of the file skipped",
                    Location(self._name),
                    reason="truncated_gzip",
                )
            return data
        rest = inflater.unused_data
        while not rest.lstrip(b"\0"):
            # Like gzip(1), allow zero padding after the last member.
            rest = self._disk.read(CHUNK_SIZE)
            if not rest:
                return None
        # Another member follows (``cat a.gz b.gz > c.gz`` is valid gzip).
        self._inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        return rest.lstrip(b"\0")

    def close(self) -> None:
        self._disk.close()
        super().close()


def iter_lines(
    stream: BinaryIO, max_line_bytes: int, chunk_size: int = CHUNK_SIZE
) -> Iterator[tuple[int, bytes | OverlongLine]]:
    """Yield ``(line number, line)`` for each line of ``stream``, numbered from 1.

    Lines come without their ``\\n`` (and without a ``\\r`` before it); a last line without a
    newline is yielded too. A line longer than ``max_line_bytes`` is not kept: it is skipped
    up to its newline and yielded as an :class:`OverlongLine`, so memory stays near
    ``max_line_bytes`` plus two chunks whatever the input.
    """
    read = stream.read
    lineno = 0
    parts: list[bytes] = []  # the start of a line whose newline has not been read yet
    held = 0  # bytes in parts
    skipped = 0  # > 0 while discarding an over-long line up to its newline
    limit = max_line_bytes + 1  # room for a "\r" that will be stripped
    while chunk := read(chunk_size):
        lines = chunk.split(b"\n")
        tail = lines.pop()
        if skipped:
            if not lines:
                skipped += len(tail)
                continue
            lineno += 1
            yield lineno, OverlongLine(skipped + len(lines[0]))
            skipped = 0
            del lines[0]
        elif parts:
            if not lines:
                parts.append(tail)
                held += len(tail)
                if held > limit:
                    skipped, parts, held = held, [], 0
                continue
            parts.append(lines[0])
            lines[0] = b"".join(parts)
            parts = []
        if lines:
            first = lines[0]
            if (
                len(first) > max_line_bytes
                or len(chunk) > max_line_bytes
                or b"\r" in chunk
                or first.endswith(b"\r")
            ):
                for line in lines:
                    lineno += 1
                    yield lineno, _checked(line, max_line_bytes)
            else:
                # The common case: no line to check or strip, so hand the list out at C speed.
                yield from zip(count(lineno + 1), lines)
                lineno += len(lines)
        held = len(tail)
        if held > limit:
            skipped, held = held, 0
        elif tail:
            parts = [tail]
    if skipped:
        yield lineno + 1, OverlongLine(skipped)
    elif parts:
        yield lineno + 1, _checked(b"".join(parts), max_line_bytes)


def _checked(line: bytes, max_line_bytes: int) -> bytes | OverlongLine:
    if line.endswith(b"\r"):
        line = line[:-1]
    if len(line) > max_line_bytes:
        return OverlongLine(len(line))
    return line
