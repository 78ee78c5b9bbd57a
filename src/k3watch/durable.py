"""Files that survive a crash or a power cut: written whole or not at all.

Used for everything k3watch must find intact after a restart: checkpoints, the agent's spool
pointers, the K3s files ``k3s setup`` writes.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


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
