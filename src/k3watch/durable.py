"""Files that survive a crash or a power cut: written whole or not at all.

Used for everything k3watch must find intact after a restart: checkpoints, the agent's spool
pointers, the K3s files ``k3s setup`` writes.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path

from k3watch.errors import Location, UsageError

log = logging.getLogger(__name__)


def write_atomically(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` (file mode ``mode``): a reader, or the file after a crash,
    sees the old content or the new, never a mix."""
    # The temporary name starts with '.' and ends in '.tmp': nothing that lists the directory
    # for its own files (K3s drop-ins, checkpoints, spool segments) takes it for one.
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    """Make a rename or a new file in ``directory`` durable (its entry is on disk)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_private_db(
    path: Path,
    what: str,
    create: Callable[[sqlite3.Connection], object],
    *,
    explicit: bool = True,
) -> sqlite3.Connection:
    """A small SQLite file nobody else may read (tokens, users, reviews: ``what`` names it in
    errors), made with ``create`` (tables, triggers): mode 0600, WAL, and every commit synced
    (a revocation or a sign-off must survive a power cut). Usable from several threads under
    the caller's lock. With ``explicit``, ``with db:`` makes one transaction; without, the
    caller issues its own ``BEGIN``."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Created 0600 before SQLite opens it; SQLite gives the -wal and -shm files the same
        # mode. Only hashes are stored, but the names and roles are nobody else's business.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        if path.stat().st_mode & 0o077:
            log.warning("%s file %s was readable by others; setting its mode to 0600", what, path)
            os.chmod(path, 0o600)
    except OSError as exc:
        raise UsageError(f"cannot open the {what} file {path}: {exc.strerror or exc}") from exc
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
        db.execute("PRAGMA busy_timeout = 5000")
        create(db)
    except sqlite3.DatabaseError as exc:
        db.close()
        raise UsageError(f"not a k3watch {what} file: {exc}", Location(str(path))) from exc
    if explicit:
        db.isolation_level = "DEFERRED"
    return db
