"""What every live source shares: the :class:`Source` protocol, its items and their positions.

A node agent reads from live sources (``audit_file``, ``file``, ``journald``, ``webhook``,
``stdin``). Each hands out :class:`Item` values: an event and the :data:`Position` just after
it. A source never moves its own checkpoint forward when it emits; the agent calls
:meth:`Source.commit` with the position of the last item of a batch once that batch is safe:
fsync'ed in the agent's disk spool, whose own pointer then moves only when the server has
acknowledged the batch. After a crash a source therefore re-delivers the items after the last
committed position (at-least-once), and never an item before it.

A position says which records have been delivered, as "everything before ``offset``
(``cursor``) except the records in ``held``": a parser that joins continuation lines holds a
record until its writer's next line, so records do not come out in the order their first
lines were read, and resuming must re-read from the oldest held one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from k3watch.errors import UsageError
from k3watch.event import Event
from k3watch.telemetry import Counters

# Where a first start reads from when there is no checkpoint.
START_AT = ("beginning", "end")

# Default number of items one poll returns at most.
DEFAULT_MAX_ITEMS = 1000


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """A file's identity by content: the SHA-256 of its first ``size`` bytes.

    The bytes are those of the first line (with its newline) but at most
    :data:`~k3watch.sources.rotation.FINGERPRINT_BYTES`, uncompressed; they are the same
    whether the file is the live log, a renamed backup, a copy or a gzip-compressed backup.
    """

    size: int
    sha256: str


# Positions, held records and items are made for every record a file source reads; a frozen
# dataclass takes about three times as long to build as a plain slotted one, so these are not
# frozen, though nothing changes one once made (sources and the agent only pass them on).


@dataclass(slots=True)
class HeldRecord:
    """A record that starts before a position's offset but was not delivered.

    ``offset`` and ``line`` are where its first line starts; ``index`` is how many records
    starting on that line were delivered already (a line of an ``EventList`` gives several).
    Not changed once made (see above).
    """

    offset: int
    line: int
    index: int = 0


@dataclass(slots=True)
class FilePosition:
    """Where a file source stands after an item.

    ``path`` is where the file was when read (the live path or a backup), ``inode`` and
    ``fingerprint`` identify it wherever it has moved since. Every record that starts before
    ``offset`` (in uncompressed bytes, at a line start; ``line`` is that line's number) was
    delivered, except those in ``held`` (sorted by offset), from which reading resumes.
    Not changed once made (see above).
    """

    path: str
    inode: int
    fingerprint: Fingerprint
    offset: int
    line: int
    held: tuple[HeldRecord, ...] = ()

    @property
    def resume_offset(self) -> int:
        """The offset reading resumes at: the first held record, else ``offset``."""
        return self.held[0].offset if self.held else self.offset

    @property
    def resume_line(self) -> int:
        return self.held[0].line if self.held else self.line


@dataclass(frozen=True, slots=True)
class JournalPosition:
    """Where the journald source stands after an item.

    Every entry up to and including ``cursor`` was delivered, except the records that start
    at the entries in ``held`` (in journal order), from the first of which reading resumes.
    """

    cursor: str
    held: tuple[str, ...] = ()


# ``None`` for sources that cannot resume (webhook, stdin).
Position = FilePosition | JournalPosition | None


@dataclass(slots=True)
class Item:
    """One event from a source and the source's position just after it.

    Events of component logs and the journal carry a stable ``_key`` in ``event.raw`` (the
    same when the record is read again after a restart), for de-duplication by the server;
    audit events are de-duplicated by ``auditID`` and ``stage``. Not changed once made (see
    above).
    """

    event: Event
    position: Position


@runtime_checkable
class Source(Protocol):
    """A live input of the node agent.

    ``poll`` returns up to ``max_items`` items, waiting at most ``timeout`` seconds when none
    is ready (0: do not wait). ``done`` turns true once a source run in ``--once`` mode has
    handed out everything there was (and for a stream, at its end); a following source is
    done only once closed. ``commit`` persists a position the agent got from an item, once its
    batch is safe (in the agent's spool, or acknowledged by the server when there is none);
    positions must be committed in the order they were emitted.
    ``counters`` counts what the source read, emitted, dropped (by reason) and failed.
    """

    name: str
    counters: Counters

    @property
    def done(self) -> bool: ...

    def poll(self, max_items: int = DEFAULT_MAX_ITEMS, timeout: float = 0.0) -> list[Item]: ...

    def commit(self, position: Position) -> None: ...

    def close(self) -> None: ...


def check_start_at(start_at: str) -> str:
    """Validate a ``start_at`` option (``beginning`` or ``end``)."""
    if start_at not in START_AT:
        raise UsageError(
            f"start_at must be one of {', '.join(START_AT)}, got {start_at!r}",
            hint="'beginning' reads what is there on a first start, 'end' only what comes next",
        )
    return start_at
