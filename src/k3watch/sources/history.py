"""A log file's history as a reading plan: the files still to read, oldest first.

Each planned file is opened when it is planned, so that a rotation happening meanwhile cannot
take it away (an open descriptor reads a renamed or deleted file to its end). The live file is
planned last; if it does not exist yet it is opened when its turn comes.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from k3watch.errors import InputError, Location
from k3watch.sources.base import FilePosition, Fingerprint
from k3watch.sources.files import _os_error
from k3watch.sources.lines import LineSplitter
from k3watch.sources.resume import FileResume
from k3watch.sources.rotation import (
    FINGERPRINT_BYTES,
    OpenedFile,
    find_file,
    fingerprint_of,
    inode_of,
    last_line_start,
    list_backups,
    open_file,
    read_head,
    skip_to,
)


@dataclass(slots=True)
class Planned:
    """A file to read (``opened`` None: open the live path when its turn comes).

    ``known`` (for a live file not opened yet): the fingerprints of the backups there were
    when it was planned; any other backup found when it is opened was rotated in between.
    """

    opened: OpenedFile | None
    live: bool
    resume: FilePosition | None = None
    from_end: bool = False
    known: frozenset[str] = frozenset()


class Segment:
    """The file being read: where reading is, its first bytes, what was delivered before."""

    __slots__ = (
        "_fingerprint",
        "head",
        "last_data",
        "live",
        "opened",
        "read_offset",
        "resume",
        "rotated",
        "size_seen",
        "split",
        "stat_seen",
    )

    def __init__(self, opened: OpenedFile, live: bool, split: LineSplitter, head: bytes) -> None:
        self.opened = opened
        self.live = live
        self.split = split
        self.head = head  # the first bytes, for the fingerprint
        self.read_offset = split.offset  # bytes read (uncompressed), the partial line included
        self.size_seen = split.offset  # the largest size seen: a file only shrinks if truncated
        self.stat_seen = (-1, 0)  # (size, mtime) when last checked for a truncation
        self.resume: FileResume | None = None
        self.rotated = False  # renamed away while read live: the writer may add a little more
        self.last_data = time.monotonic()
        self._fingerprint: tuple[bytes, Fingerprint] | None = None

    def fingerprint(self) -> Fingerprint:
        # Asked for every emitted batch; the head rarely changes, and a SHA-256 per call was a
        # measurable share of the agent's CPU. ``head`` is replaced, never mutated, on change.
        cached = self._fingerprint
        if cached is not None and cached[0] is self.head:
            return cached[1]
        value = fingerprint_of(self.head)
        self._fingerprint = (self.head, value)
        return value

    def take(self, data: bytes) -> None:
        """Account for ``data`` just read."""
        if self.read_offset < FINGERPRINT_BYTES and len(self.head) == self.read_offset:
            self.head += data[: FINGERPRINT_BYTES - len(self.head)]
        self.read_offset += len(data)
        self.size_seen = max(self.size_seen, self.read_offset)
        self.last_data = time.monotonic()

    def restart(self, max_line_bytes: int) -> None:
        """Read the (truncated) file again from its start."""
        self.opened.raw.seek(0)
        self.split = LineSplitter(max_line_bytes)
        self.read_offset = self.size_seen = 0
        self.head = b""
        self.resume = None


class Plan:
    """The files of ``path``'s history still to read, oldest first."""

    def __init__(self, path: str, fail: Callable[[InputError], None]) -> None:
        self.path = path
        self.fail = fail
        self.queue: deque[Planned] = deque()

    def __bool__(self) -> bool:
        return bool(self.queue)

    def add(
        self, path: str | Path, *, live: bool, resume: FilePosition | None = None
    ) -> Planned | None:
        """Open ``path`` now and plan it (a backup that cannot be opened is reported)."""
        try:
            opened: OpenedFile | None = open_file(path)
        except OSError as exc:
            if not live:
                self.fail(_os_error(exc, str(path)))
                return None
            opened = None
        planned = Planned(opened, live, resume)
        if opened is None:
            planned.known = self._backup_fingerprints()
        self.queue.append(planned)
        return planned

    def first_start(self, *, read_backups: bool, from_end: bool) -> None:
        """No checkpoint: the live file (from its start or end), its backups first if asked."""
        if read_backups:
            for backup in list_backups(Path(self.path)):
                self.add(backup, live=False)
        live = self.add(self.path, live=True)
        assert live is not None
        # A file that does not exist yet is all new when it appears.
        live.from_end = from_end and live.opened is not None

    def resume(self, position: FilePosition) -> bool:
        """Plan from a checkpoint: the rest of its file wherever it is now, every backup rotated
        after it, the live file. ``False`` if the checkpointed file is gone."""
        try:
            live: OpenedFile | None = open_file(self.path)
        except OSError:
            live = None
        if live is not None and _is_at(live, position):
            self.queue.append(Planned(live, True, position))
            return True
        live_inode = live.inode if live is not None else None
        backups = [b for b in list_backups(Path(self.path)) if inode_of(b) != live_inode]
        found = find_file(backups, position.inode, position.fingerprint, position.offset)
        if found is not None:
            self.add(backups[found], live=False, resume=position)
            self.backups_after(backups, found)
        else:
            self.fail(
                InputError(
                    "the checkpointed file is neither the live file nor a backup any more "
                    "(deleted while the agent was down?); reading the live file from its start",
                    Location(position.path, position.line),
                    "keep more backups (audit-log-maxbackup) or restart the agent sooner",
                    "checkpoint_file_gone",
                )
            )
        rest = Planned(live, True)
        if live is None:
            rest.known = self._backup_fingerprints()
        self.queue.append(rest)
        return found is not None

    def after_rename(self, inode: int, fingerprint: Fingerprint | None) -> None:
        """The live file (``inode``) was renamed: the backups rotated after it, the new file."""
        now_at_path = inode_of(self.path)
        backups = [b for b in list_backups(Path(self.path)) if inode_of(b) != now_at_path]
        found = find_file(backups, inode, fingerprint)
        if found is not None:
            self.backups_after(backups, found, live=False)
        self.add(self.path, live=True)

    def backups_after(self, backups: list[Path], index: int, *, live: bool = False) -> None:
        """Plan ``backups[index + 1:]`` (and the live file when ``live``)."""
        for backup in backups[index + 1 :]:
            self.add(backup, live=False)
        if live:
            self.add(self.path, live=True)

    def open_next(self, max_line_bytes: int, *, follow: bool) -> Segment | None:
        """The next file as a segment positioned where to read; ``None`` if there is none now.

        Raises :class:`InputError` when the live file cannot be opened (it stays planned
        when following) or a backup cannot be positioned (it is dropped).
        """
        if not self.queue:
            return None
        planned = self.queue[0]
        opened = planned.opened
        if opened is None:
            try:
                opened = open_file(self.path)
            except OSError as exc:
                if not follow:
                    self.queue.popleft()
                raise _os_error(exc, self.path) from exc
            planned.opened = opened
            if self._plan_missed(planned):
                return self.open_next(max_line_bytes, follow=follow)
        self.queue.popleft()
        offset, line = 0, 1
        if planned.resume is not None:
            offset, line = planned.resume.resume_offset, planned.resume.resume_line
        elif planned.from_end:
            fd = opened.raw.fileno()
            offset, line = last_line_start(fd, os.fstat(fd).st_size)
        try:
            reached = skip_to(opened, offset)
            head = b"" if offset == 0 else _head(opened)
        except InputError:
            opened.close()
            raise
        if reached < offset:
            self.fail(
                InputError(
                    f"the file ends at byte {reached}, before the checkpoint's {offset}; "
                    "reading on from its end",
                    Location(opened.path),
                    reason="checkpoint_beyond_end",
                )
            )
        segment = Segment(opened, planned.live, LineSplitter(max_line_bytes, reached, line), head)
        if planned.resume is not None:
            segment.resume = FileResume(planned.resume)
        return segment

    def _backup_fingerprints(self) -> frozenset[str]:
        heads = (read_head(b) for b in list_backups(Path(self.path)))
        return frozenset(fingerprint_of(h).sha256 for h in heads if h)

    def _plan_missed(self, live: Planned) -> bool:
        """Plan, before the live file just opened, the backups rotated while it was not open
        (it did not exist yet, or had been renamed away). ``True`` if there were some."""
        assert live.opened is not None
        missed = []
        for backup in list_backups(Path(self.path)):
            head = read_head(backup)
            new = head and fingerprint_of(head).sha256 not in live.known
            if new and inode_of(backup) != live.opened.inode:
                missed.append(backup)
        if not missed:
            return False
        self.queue.popleft()
        rest = list(self.queue)
        self.queue.clear()
        for backup in missed:
            self.add(backup, live=False)
        self.queue.append(live)
        self.queue.extend(rest)
        return True

    def close(self) -> None:
        while self.queue:
            opened = self.queue.popleft().opened
            if opened is not None:
                opened.close()


def _is_at(live: OpenedFile, position: FilePosition) -> bool:
    """Whether the open live file is the checkpointed one, still holding its offset."""
    fd = live.raw.fileno()
    head = os.pread(fd, position.fingerprint.size, 0)
    return (
        live.inode == position.inode
        and os.fstat(fd).st_size >= position.offset
        and hashlib.sha256(head).hexdigest() == position.fingerprint.sha256
    )


def _head(opened: OpenedFile) -> bytes:
    if opened.compressed:
        return read_head(opened.path) or b""
    return os.pread(opened.raw.fileno(), FINGERPRINT_BYTES, 0)
