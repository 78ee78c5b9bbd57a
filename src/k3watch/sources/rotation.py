"""Rotated backups of a log file, and telling files apart by inode and by content.

Two rotation schemes write the backups of a live file ``dir/name.ext``:

- renaming: the API server (lumberjack) renames ``audit.log`` to
  ``audit-2026-03-02T10-11-12.123.log`` and may gzip it (``--audit-log-compress``);
  logrotate renames to ``name.ext.1`` (shifting ``.1`` to ``.2``…) or, with ``dateext``, to
  ``name.ext-20260302``, compressed or not;
- ``copytruncate``: logrotate copies the file to a backup and truncates it in place, so the
  live file keeps its inode.

A file is recognised wherever it went by its inode (a rename keeps it) and by its
:class:`~k3watch.sources.base.Fingerprint` (a copy or a compressed backup keeps it).
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

from k3watch.errors import InputError
from k3watch.sources.base import Fingerprint
from k3watch.sources.files import GZIP_MAGIC, open_stream

# Bytes of a file's first line that identify it (a K3s audit line has its auditID in these).
FINGERPRINT_BYTES = 1024
CHUNK_SIZE = 1024 * 1024

_LUMBERJACK_STAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}\.\d{3}")
_DATE_STAMP = re.compile(r"\d{4}-?\d{2}-?\d{2}(?:[-_T]?\d+)*")

# (rank, timestamp, -number): timestamped backups by time, then .N from high to low.
BackupKey = tuple[int, str, int]


def backup_key(live_name: str, name: str) -> BackupKey | None:
    """Where ``name`` sorts among the backups of ``live_name``; ``None`` if it is not one."""
    base = name.removesuffix(".gz")
    if base == live_name:
        return None if name == base else (0, "~", 0)  # "name.gz": compressed in place
    stem, ext = os.path.splitext(live_name)
    if base.startswith(stem + "-") and base.endswith(ext):
        stamp = base[len(stem) + 1 : len(base) - len(ext)]
        if _LUMBERJACK_STAMP.fullmatch(stamp):
            return (0, stamp, 0)
    if base.startswith(live_name + "-"):
        stamp = base[len(live_name) + 1 :]
        if _DATE_STAMP.fullmatch(stamp):
            return (0, stamp, 0)
    if base.startswith(live_name + "."):
        number = base[len(live_name) + 1 :]
        if number.isdigit():
            return (1, "", -int(number))
    return None


def list_backups(live: Path) -> list[Path]:
    """The rotated backups of ``live`` in its directory, oldest first.

    A backup present both plain and gzip-compressed (compression in progress) is listed once,
    plain: the compressed one may be incomplete.
    """
    try:
        with os.scandir(live.parent) as scan:
            entries = [e for e in scan if not e.name.startswith(".")]
    except OSError:
        return []
    names = {e.name for e in entries}
    found: list[tuple[BackupKey, Path]] = []
    for entry in entries:
        key = backup_key(live.name, entry.name)
        if key is None or (entry.name.endswith(".gz") and entry.name[:-3] in names):
            continue
        try:
            if not entry.is_file():
                continue
        except OSError:
            continue
        found.append((key, Path(entry.path)))
    found.sort()
    return [path for _, path in found]


def fingerprint_of(head: bytes) -> Fingerprint:
    """The fingerprint of a file whose first bytes are ``head`` (its first line, capped)."""
    newline = head.find(b"\n", 0, FINGERPRINT_BYTES)
    size = newline + 1 if newline >= 0 else min(len(head), FINGERPRINT_BYTES)
    return Fingerprint(size, hashlib.sha256(head[:size]).hexdigest())


def head_complete(head: bytes) -> bool:
    """Whether ``head`` holds all the bytes its fingerprint covers (a later read adds none)."""
    return len(head) >= FINGERPRINT_BYTES or b"\n" in head


@dataclass(slots=True)
class OpenedFile:
    """A file open for reading: its descriptor, a stream of its (uncompressed) bytes."""

    path: str
    raw: BinaryIO
    stream: BinaryIO
    inode: int
    compressed: bool

    def close(self) -> None:
        self.stream.close()
        self.raw.close()


def open_file(path: str | Path) -> OpenedFile:
    """Open ``path``, decompressing gzip (found by its magic bytes). Raises OSError."""
    raw = cast(BinaryIO, open(path, "rb", buffering=0))  # noqa: SIM115 - OpenedFile owns it
    try:
        info = os.fstat(raw.fileno())
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(21, "Is a directory", str(path))
        compressed = os.pread(raw.fileno(), 2, 0) == GZIP_MAGIC
        stream = open_stream(raw, str(path), close_raw=False) if compressed else raw
    except BaseException:
        raw.close()
        raise
    return OpenedFile(str(path), raw, stream, info.st_ino, compressed)


def skip_to(opened: OpenedFile, offset: int) -> int:
    """Move to ``offset`` (uncompressed bytes); returns the offset reached (less at its end).

    May raise :class:`~k3watch.errors.InputError` for damaged gzip data.
    """
    if not opened.compressed:
        return opened.raw.seek(offset)
    done = 0
    while done < offset:
        data = opened.stream.read(min(CHUNK_SIZE, offset - done))
        if not data:
            break
        done += len(data)
    return done


def read_head(path: str | Path) -> bytes | None:
    """The first :data:`FINGERPRINT_BYTES` uncompressed bytes of ``path`` (``None``: unreadable)."""
    try:
        opened = open_file(path)
    except OSError:
        return None
    try:
        head = b""
        while len(head) < FINGERPRINT_BYTES:
            data = opened.stream.read(FINGERPRINT_BYTES - len(head))
            if not data:
                break
            head += data
        return head
    except (OSError, InputError):
        return head  # what came before damaged data still identifies the file
    finally:
        opened.close()


def same_content(path: str | Path, fingerprint: Fingerprint) -> bool:
    """Whether ``path`` starts with the bytes ``fingerprint`` was taken of."""
    head = read_head(path)
    return (
        head is not None
        and len(head) >= fingerprint.size
        and hashlib.sha256(head[: fingerprint.size]).hexdigest() == fingerprint.sha256
    )


def inode_of(path: str | Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def find_file(
    candidates: list[Path], inode: int, fingerprint: Fingerprint | None, min_size: int = 0
) -> int | None:
    """The index of the candidate that is the file (``inode``, ``fingerprint``) or a copy of it.

    The same inode with the same first bytes wins; else the first candidate with the same first
    bytes (a copy, or a compressed backup) and, when not compressed, at least ``min_size``
    bytes. Without a fingerprint only the inode is compared. ``None`` when it is in none.
    """
    for index, path in enumerate(candidates):
        if inode_of(path) == inode and (fingerprint is None or same_content(path, fingerprint)):
            return index
    if fingerprint is None:
        return None
    for index, path in enumerate(candidates):
        if same_content(path, fingerprint):
            try:
                with open(path, "rb") as file:
                    compressed = file.read(2) == GZIP_MAGIC
                    size = os.fstat(file.fileno()).st_size
            except OSError:
                continue
            if compressed or size >= min_size:
                return index
    return None


def last_line_start(fd: int, size: int) -> tuple[int, int]:
    """``(offset, line number)`` of the start of the incomplete last line of a file of ``size``
    bytes (``size`` itself when it ends with a newline): where reading "from the end" starts."""
    lines = 0
    position = 0
    last_newline = -1
    while position < size:
        data = os.pread(fd, min(CHUNK_SIZE, size - position), position)
        if not data:
            break
        lines += data.count(b"\n")
        found = data.rfind(b"\n")
        if found >= 0:
            last_newline = position + found
        position += len(data)
    return last_newline + 1, lines + 1
