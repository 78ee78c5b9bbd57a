"""Checkpoints: where each source resumes after a restart, one small JSON file per source.

A checkpoint is written atomically (a temporary file in the same directory, flushed to disk,
then renamed over the old one, and the directory flushed too), so a crash leaves either the old
checkpoint or the new one, never a mix. Files are created with mode 0600 in a 0700 directory:
they name log files and journal cursors, which are nobody else's business.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson

from k3watch.durable import write_atomically
from k3watch.errors import InputError, Location
from k3watch.sources.base import FilePosition, Fingerprint, HeldRecord, JournalPosition, Position

CHECKPOINT_VERSION = 1


class CheckpointStore:
    """The checkpoints of one agent, in ``directory`` (created 0700 when missing).

    Safe to use from several threads: saves of one store are serialized.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self._lock = threading.Lock()

    def path_for(self, name: str) -> Path:
        """The file holding source ``name``'s checkpoint (the name percent-encoded)."""
        return self.directory / f"{quote(name, safe='')}.json"

    def load(self, name: str) -> Position:
        """The position saved for source ``name``; ``None`` if there is none.

        Raises :class:`InputError` (reason ``invalid_checkpoint``) when the file exists but
        cannot be read as a checkpoint; the caller decides how to start then.
        """
        path = self.path_for(name)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise InputError(
                f"cannot read checkpoint ({exc.strerror or exc})",
                Location(str(path)),
                "check the checkpoint directory's owner and mode",
                "invalid_checkpoint",
            ) from exc
        try:
            obj = orjson.loads(data)
            if not isinstance(obj, dict) or obj.get("version") != CHECKPOINT_VERSION:
                raise ValueError(f"not a version {CHECKPOINT_VERSION} checkpoint")
            return position_from_json(obj)
        except (ValueError, TypeError, KeyError) as exc:
            raise InputError(
                f"damaged checkpoint ({exc})",
                Location(str(path)),
                "delete the file to start this source afresh",
                "invalid_checkpoint",
            ) from exc

    def save(self, name: str, position: Position) -> None:
        """Persist ``position`` for source ``name`` atomically; ``None`` is not saved."""
        if position is None:
            return
        obj = {"version": CHECKPOINT_VERSION, "source": name, **position_to_json(position)}
        data = orjson.dumps(obj)
        final = self.path_for(name)
        with self._lock:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_atomically(final, data)

    def remove(self, name: str) -> None:
        """Forget source ``name``'s checkpoint (it starts afresh next time)."""
        with self._lock:
            self.path_for(name).unlink(missing_ok=True)


def position_to_json(position: FilePosition | JournalPosition) -> dict[str, Any]:
    """A position as a JSON object (without the version and source name)."""
    if isinstance(position, FilePosition):
        return {
            "kind": "file",
            "path": position.path,
            "inode": position.inode,
            "fingerprint": {
                "size": position.fingerprint.size,
                "sha256": position.fingerprint.sha256,
            },
            "offset": position.offset,
            "line": position.line,
            "held": [[h.offset, h.line, h.index] for h in position.held],
        }
    return {"kind": "journal", "cursor": position.cursor, "held": list(position.held)}


def position_from_json(obj: dict[str, Any]) -> FilePosition | JournalPosition:
    """The position :func:`position_to_json` wrote; ``ValueError`` for anything else."""
    kind = obj.get("kind")
    if kind == "file":
        fingerprint = obj["fingerprint"]
        held = tuple(
            HeldRecord(_count(h[0]), _count(h[1]), _count(h[2])) for h in _list(obj["held"])
        )
        return FilePosition(
            path=_string(obj["path"]),
            inode=_count(obj["inode"]),
            fingerprint=Fingerprint(_count(fingerprint["size"]), _string(fingerprint["sha256"])),
            offset=_count(obj["offset"]),
            line=_count(obj["line"]),
            held=tuple(sorted(held, key=lambda h: h.offset)),
        )
    if kind == "journal":
        return JournalPosition(
            cursor=_string(obj["cursor"]),
            held=tuple(_string(cursor) for cursor in _list(obj["held"])),
        )
    raise ValueError(f"unknown checkpoint kind {kind!r}")


def _count(value: object) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(f"expected a non-negative integer, got {value!r}")
    return value


def _string(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    return value


def _list(value: object) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"expected an array, got {value!r}")
    return value
