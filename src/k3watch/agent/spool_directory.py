"""The spool's directory and its files, and the writes that put frames into segments.

On disk (``spool_dir/spool/``, directory 0700, files 0600):

- ``NNNNNNNNNNNN.seg``: segments of frames (see :mod:`k3watch.agent.spool_format`), numbered
  in order.
- ``acked.json``: the position (segment, offset) before which every frame is done; written
  atomically (temporary file, fsync, rename) after each acknowledgement. Segments entirely
  before it are deleted.
- ``id``: a random id made when the spool is created. It is part of every batch id, so a
  spool created afresh never re-uses the batch ids of an older one (which the server would
  take for retries and drop).
- ``lock``: locked by the process that has the spool open.
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
from pathlib import Path

import orjson

from k3watch.agent.spool_format import Cursor
from k3watch.durable import write_atomically

SUFFIX = ".seg"
ACKED_FILE = "acked.json"
ID_FILE = "id"
LOCK_FILE = "lock"


class SpoolBusyError(OSError):
    """Another process has the spool open."""


def open_directory(directory: Path) -> int:
    """Create ``directory`` if needed and lock it; the lock file's descriptor (closing it
    releases the lock). SpoolBusyError when another process holds the lock."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise SpoolBusyError(
            errno.EAGAIN, "another agent is using this spool", str(directory)
        ) from None
    return fd


def segment_numbers(directory: Path) -> list[int]:
    """The numbers of the segments in ``directory``, in order."""
    return sorted(
        int(p.name[: -len(SUFFIX)])
        for p in directory.glob(f"*{SUFFIX}")
        if p.name[: -len(SUFFIX)].isdigit()
    )


def segment_path(directory: Path, number: int) -> Path:
    return directory / f"{number:012d}{SUFFIX}"


def load_id(directory: Path) -> str:
    """The spool's id; a new one when the file is missing or not an id."""
    path = directory / ID_FILE
    try:
        text = path.read_text(encoding="ascii").strip()
        if text.isalnum() and 4 <= len(text) <= 16:
            return text
    except (OSError, UnicodeDecodeError):
        pass
    return new_id(directory)


def new_id(directory: Path) -> str:
    spool_id = secrets.token_hex(4)
    write_atomically(directory / ID_FILE, spool_id.encode())
    return spool_id


def read_acked(directory: Path) -> Cursor:
    """The acknowledged position; ``(0, 0)`` when none was stored. Raises OSError, ValueError,
    KeyError or TypeError when the file cannot be read or holds no position."""
    try:
        obj = orjson.loads((directory / ACKED_FILE).read_bytes())
    except FileNotFoundError:
        return (0, 0)
    segment, offset = obj["segment"], obj["offset"]
    if type(segment) is int and type(offset) is int and segment >= 0 and offset >= 0:
        return (segment, offset)
    raise ValueError(f"not a position: {obj!r}")


def store_acked(directory: Path, acked: Cursor) -> None:
    segment, offset = acked
    write_atomically(directory / ACKED_FILE, orjson.dumps({"segment": segment, "offset": offset}))


def write_all(fd: int, parts: list[bytes]) -> None:
    """Write every part, in order (without joining them: a batch is a megabyte or so)."""
    views = [memoryview(part) for part in parts if part]
    while views:
        written = os.writev(fd, views)
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if views and written:
            views[0] = views[0][written:]
