"""The ``journald`` source: ``journalctl --follow --all --output=json``, resumed by cursor.

journalctl runs as a child process (:class:`~k3watch.sources.process.LineProcess`: its lines
go through a bounded queue, so a slow consumer makes journalctl wait rather than lose entries)
and :meth:`JournaldSource.poll` parses them with the registry's ``journald`` parser. If
journalctl dies it is started again after a back-off, after the cursor of the last entry read,
so nothing is read twice in one run.

Matches: journalctl ANDs matches on different fields and ORs terms separated by ``+``;
``-u`` cannot be ORed with other matches (its units are ANDed with them). The source therefore
writes the unit matches as fields: ``_SYSTEMD_UNIT=k3s.service _SYSTEMD_UNIT=k3s-agent.service
+ _PID=1 UNIT=k3s.service UNIT=k3s-agent.service + _TRANSPORT=kernel`` reads what the units
log, what systemd logs about them (starts, exits, restarts) and the kernel's messages.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from k3watch.errors import InputError, Location, UsageError
from k3watch.event import Event
from k3watch.parse.logs import DEFAULT_MAX_LINE_BYTES
from k3watch.parse.registry import create_parser
from k3watch.sources.base import (
    DEFAULT_MAX_ITEMS,
    Item,
    JournalPosition,
    Position,
    check_start_at,
)
from k3watch.sources.checkpoint import CheckpointStore
from k3watch.sources.lines import held_origins
from k3watch.sources.process import CUT, END, LineProcess
from k3watch.sources.resume import JournalResume, journal_positions
from k3watch.telemetry import Counters

DEFAULT_UNITS = ("k3s.service", "k3s-agent.service")
_CURSOR = b'"__CURSOR":"'
_TICK = 0.1  # how often a waiting poll looks at restarts and idle records


def journal_matches(
    units: Sequence[str], kernel: bool, extra: Sequence[Sequence[str]] = ()
) -> list[str]:
    """journalctl match arguments for ``units`` (their logs and systemd's about them), the
    kernel transport, and ``extra`` terms (each a list of ``FIELD=value``), ORed together."""
    names = [unit if "." in unit else f"{unit}.service" for unit in units]
    terms: list[list[str]] = []
    if names:
        terms.append([f"_SYSTEMD_UNIT={unit}" for unit in names])
        terms.append(["_PID=1", *(f"UNIT={unit}" for unit in names)])
    if kernel:
        terms.append(["_TRANSPORT=kernel"])
    terms.extend(list(term) for term in extra if term)
    args: list[str] = []
    for term in terms:
        if args:
            args.append("+")
        args.extend(term)
    return args


class JournaldSource:
    """Reads the systemd journal through journalctl; see the module and docs/sources.md.

    ``units`` (``k3s`` means ``k3s.service``) and ``kernel`` choose the entries, ``matches``
    adds terms of journalctl matches. ``directory`` / ``files`` read copied journal files
    instead of the system's. Without ``follow`` (``--once``) journalctl runs to the end of the
    journal and the source is then done. A first start reads from ``start_at`` (``beginning``
    or ``end``) or from ``since`` (any time journalctl's ``--since`` takes).
    """

    def __init__(
        self,
        *,
        name: str = "journald",
        units: Sequence[str] = DEFAULT_UNITS,
        kernel: bool = True,
        matches: Sequence[Sequence[str]] = (),
        directory: str | None = None,
        files: Sequence[str] = (),
        follow: bool = True,
        start_at: str = "beginning",
        since: str | None = None,
        journalctl: str = "journalctl",
        checkpoints: CheckpointStore | None = None,
        restart_delay: float = 1.0,
        max_restart_delay: float = 60.0,
        idle_flush: float = 2.0,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        queue_lines: int = 10_000,
        parser_options: dict[str, Any] | None = None,
        counters: Counters | None = None,
        parser_counters: Counters | None = None,
        on_error: Callable[[InputError], None] | None = None,
    ) -> None:
        self.name = name
        self.counters = counters or Counters("source")
        self.parser_counters = parser_counters or Counters("parse")
        self.on_error = on_error or (lambda error: None)
        self.follow = follow
        self.start_at = check_start_at(start_at)
        self.since = since
        self.journalctl = journalctl
        self.directory = directory
        self.files = tuple(files)
        self.matches = journal_matches(units, kernel, matches)
        self.restart_delay = restart_delay
        self.max_restart_delay = max_restart_delay
        self.idle_flush = idle_flush
        self.max_line_bytes = max_line_bytes
        options = dict(parser_options or {})
        options.setdefault("max_line_bytes", max_line_bytes)
        self.parser = create_parser("journald", self.parser_counters, self.on_error, **options)
        self._store = checkpoints
        self.queue_lines = queue_lines
        self._outbox: deque[Item] = deque()
        self._process: LineProcess | None = None
        self._resume: JournalResume | None = None
        self._started_at: float | None = None  # wall-clock time of the first start
        self._loaded = False
        self._last_cursor: str | None = None
        self._seq = 0
        self._delay = restart_delay
        self._restart_at: float | None = None
        self._last_line = time.monotonic()
        self._finished = False
        self._closed = False

    # -- the Source protocol -----------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self._closed or (self._finished and not self._outbox)

    @property
    def pid(self) -> int | None:
        """The running journalctl's process id."""
        return self._process.pid if self._process is not None else None

    def poll(self, max_items: int = DEFAULT_MAX_ITEMS, timeout: float = 0.0) -> list[Item]:
        deadline = time.monotonic() + timeout
        while len(self._outbox) < max_items and not (self._closed or self._finished):
            self._run()
            left = deadline - time.monotonic()
            wait = 0.0 if self._outbox or left <= 0 else min(left, _TICK)
            got = self._process.get(wait) if self._process is not None else None
            if got is None:
                if self._process is None and wait > 0:
                    time.sleep(wait)  # waiting to restart journalctl
                self._idle()
                if self._outbox or time.monotonic() >= deadline:
                    break
                continue
            kind, data = got
            if kind == END:
                self._ended()
            else:
                self._line(data, kind == CUT)
        count = min(max_items, len(self._outbox))
        return [self._outbox.popleft() for _ in range(count)]

    def commit(self, position: Position) -> None:
        if position is not None and not isinstance(position, JournalPosition):
            raise TypeError(f"{self.name}: not a journal position: {position!r}")
        if self._store is not None:
            self._store.save(self.name, position)

    def close(self) -> None:
        self._closed = True
        process, self._process = self._process, None
        if process is not None:
            process.stop()

    # -- the journalctl process ----------------------------------------------------------------

    def command(self) -> list[str]:
        """The journalctl command the next start runs (reading the checkpoint first)."""
        if not self._loaded:
            self._load()
        args = [self.journalctl, "--all", "--output=json", "--no-pager", "--quiet"]
        if self.follow:
            args.append("--follow")
        if self.directory is not None:
            args.append(f"--directory={self.directory}")
        args.extend(f"--file={file}" for file in self.files)
        if self._last_cursor is not None:
            args.append(f"--after-cursor={self._last_cursor}")
        elif self._resume is not None and self._resume.remaining:
            args.append(f"--cursor={self._resume.remaining[0]}")
        elif self._resume is not None:
            args.append(f"--after-cursor={self._resume.cursor}")
        else:
            args.extend(self._first_start())
        return [*args, *self.matches]

    def _first_start(self) -> list[str]:
        if self.since is not None:
            return [f"--since={self.since}"]
        if self.start_at == "beginning":
            return ["--no-tail"]
        if self._started_at is None:
            return ["--lines=0"]
        # A restart before the first entry must not skip what was logged in between.
        return [f"--since=@{int(self._started_at)}"]

    def _run(self) -> None:
        """Start journalctl if it is not running (first start, or a restart that is due)."""
        if self._process is not None or self._closed or self._finished:
            return
        if self._restart_at is not None and time.monotonic() < self._restart_at:
            return
        command = self.command()
        if self._started_at is None:
            self._started_at = time.time()
        self._restart_at = None
        try:
            self._process = LineProcess(
                command,
                max_line_bytes=self.max_line_bytes,
                queue_lines=self.queue_lines,
                name=self.name,
            )
        except OSError as exc:
            raise UsageError(
                f"cannot run {self.journalctl}: {exc.strerror or exc}",
                hint="install systemd's journalctl, or set the journalctl option to its path",
            ) from exc

    def _load(self) -> None:
        self._loaded = True
        if self._store is None:
            return
        try:
            position = self._store.load(self.name)
        except InputError as exc:
            self._fail(exc)
            return
        if isinstance(position, JournalPosition):
            self._resume = JournalResume(position)

    def _ended(self) -> None:
        """journalctl's output ended: the end of the journal (--once) or it died."""
        process, self._process = self._process, None
        if process is None:
            return
        status, message = process.wait()
        if self._closed:
            return
        if not self.follow and status == 0:
            self._flush()
            self._finished = True
            return
        bad_cursor = status != 0 and "cursor" in message.lower()
        if bad_cursor and self._last_cursor is None and self._resume is not None:
            # A cursor journalctl cannot seek to (damaged, another machine's): start afresh
            # at once, as on a first start.
            self._resume = None
            self._fail(
                InputError(
                    f"journalctl cannot use the checkpointed cursor ({message}); "
                    "starting as on a first start",
                    Location(self.name),
                    reason="invalid_cursor",
                )
            )
            return
        self._fail(
            InputError(
                f"journalctl exited with status {status}"
                + (f": {message}" if message else "")
                + (f"; restarting in {self._delay:g} s" if self.follow else ""),
                Location(self.name),
                reason="journalctl_exited",
            )
        )
        if not self.follow:
            self._flush()
            self._finished = True
            return
        self.counters.inc("restarts")
        self._restart_at = time.monotonic() + self._delay
        self._delay = min(self._delay * 2, self.max_restart_delay)

    # -- entries, records and positions --------------------------------------------------------

    def _line(self, data: bytes, cut: bool) -> None:
        self._seq += 1
        self._last_line = time.monotonic()
        self._delay = self.restart_delay  # journalctl works again: back-off starts over
        self.counters.inc("lines")
        self.counters.inc("bytes", len(data) + 1)
        cursor = _cursor_of(data)
        if cut:
            self.parser.report(
                "line_too_long",
                f"journal entry is over the {self.max_line_bytes}-byte limit; dropped",
                Location(self.name, self._seq),
                "raise max_line_bytes",
            )
        if self._resume is not None:
            self._resume.see(self._seq, cursor)
        events = self.parser.parse_line(data, self.name, self._seq, self._seq, truncated=cut)
        if cursor is not None:
            self._last_cursor = cursor
        self._emit(events)

    def _idle(self) -> None:
        if time.monotonic() - self._last_line >= self.idle_flush:
            self._flush()

    def _flush(self) -> None:
        events = self.parser.flush()
        if events:
            self._emit(events)

    def _emit(self, events: list[Event]) -> None:
        resume = self._resume
        kept = events
        if resume is not None:
            kept = [e for e in events if resume.keeps(e.line, _key(e))]
            if len(kept) < len(events):
                self.counters.inc("suppressed", len(events) - len(kept), reason="already_delivered")
        if not kept:
            return
        records = [(event.line, _key(event)) for event in kept]
        held = [(o.line, o.cursor) for o in held_origins(self.parser) if o.cursor is not None]
        positions = journal_positions(records, held, resume, self._last_cursor or "")
        for event, position in zip(kept, positions, strict=True):
            self._outbox.append(Item(event, position))
        self.counters.inc("items", len(kept))
        if resume is not None:
            resume.delivered([key for _, key in records])

    def _fail(self, error: InputError) -> None:
        self.counters.inc("failed", reason=error.reason)
        self.on_error(error)


def _cursor_of(line: bytes) -> str | None:
    start = line.find(_CURSOR)
    if start < 0:
        return None
    start += len(_CURSOR)
    end = line.find(b'"', start)
    return line[start:end].decode("ascii", "replace") if end > 0 else None


def _key(event: Event) -> str:
    key = event.raw.get("_key")
    return key if isinstance(key, str) else f"{event.source}@{event.line}"
