"""The parallel half of ingest: parse, redact, match and encode a request body.

Everything here is per event and needs no shared state, so the server runs it in worker
processes (``server.workers``, one per CPU by default), several bodies at a time, while its own
process keeps what must stay in order: de-duplication against the store, the engine's state
(first-seen, counts, sequences), the alerts and the writes. A body crosses to a worker as bytes
and comes back as the store's encoded rows plus, for the few events that matched a rule, their
JSON and the rules they matched.
"""

from __future__ import annotations

import concurrent.futures
import gc
import io
import logging
import multiprocessing
import os
import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Literal

import orjson
import zstandard

from k3watch.errors import InputError, Location
from k3watch.event import Event
from k3watch.parse.audit import AuditParser
from k3watch.process import tune_gc
from k3watch.redact import RedactionConfig, Redactor
from k3watch.rules.engine import EngineOptions, Matcher
from k3watch.rules.model import RuleOrigin, RuleSet
from k3watch.store.base import Encoded, Encoder, IncomingEvent, event_key
from k3watch.store.codec import encode_body
from k3watch.telemetry import Counters

log = logging.getLogger(__name__)
MAX_REPORTED_ERRORS = 100


@dataclass(frozen=True, slots=True)
class Rejected:
    """One piece of a request that could not be taken, with where and why."""

    reason: str
    location: str
    message: str


@dataclass(slots=True)
class Outcome:
    """What became of a request's events."""

    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    truncated: int = 0
    alerts: int = 0
    errors: list[Rejected] = field(default_factory=list)
    failed: str | None = None
    """Set when the request could not be processed at all (the store failed)."""
    refused: tuple[int, str] | None = None
    """HTTP status and reason when the body itself is unusable (cannot be decompressed, too
    large once decompressed): nothing of it was stored."""


ENCODINGS = ("identity", "gzip", "zstd", "deflate")
"""``Content-Encoding`` values the ingest endpoints take."""


def _gunzip(body: bytes, limit: int) -> bytes:
    """All members of a gzip body (concatenated files are one stream), at most ``limit``
    bytes."""
    parts: list[bytes] = []
    size = 0
    rest = body
    while rest and size < limit:
        stream = zlib.decompressobj(wbits=31)
        part = stream.decompress(rest, limit - size)
        parts.append(part)
        size += len(part)
        if not stream.eof:
            if size < limit:
                raise zlib.error("the body ends inside a gzip member")
            break
        rest = stream.unused_data
    return b"".join(parts)


class BodyRefused(Exception):
    """A body that cannot be read at all, with the HTTP status that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def decompress(body: bytes, encoding: str, max_body: int) -> bytes:
    """``body`` decoded from its ``Content-Encoding``; refused (413) past ``max_body`` bytes."""
    try:
        if encoding == "identity":
            data = body
        elif encoding == "gzip":
            data = _gunzip(body, max_body + 1)
        elif encoding == "zstd":
            reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(body))
            data = reader.read(max_body + 1)
        elif encoding == "deflate":
            data = zlib.decompressobj().decompress(body, max_body + 1)
        else:
            raise BodyRefused(415, f"unsupported Content-Encoding {encoding!r}")
    except (zlib.error, zstandard.ZstdError) as exc:
        raise BodyRefused(400, f"cannot decompress the {encoding} body: {exc}") from exc
    if len(data) > max_body:
        raise BodyRefused(413, f"decompressed body over the {max_body}-byte limit")
    return data


@dataclass(frozen=True, slots=True)
class Job:
    """A request body and what a worker needs to know about it."""

    body: bytes
    encoding: str
    """Its ``Content-Encoding``: decompressing is part of the parallel work."""
    format: Literal["audit", "log"]
    node: str
    source: str
    batch_id: str
    received: float
    encoder: Encoder

    @property
    def name(self) -> str:
        return body_name(self.source, self.node, self.batch_id)


def body_name(source: str, node: str, batch_id: str) -> str:
    """How locations name a request body: ``source:node:batch``."""
    return f"{source}:{node or '-'}:{batch_id}"


@dataclass(frozen=True, slots=True)
class Match:
    """An event that matched event rules, for the engine's stateful half."""

    position: int
    """Index of the event in the batch's rows."""
    line: int
    item: int | None
    rules: tuple[int, ...]
    """``EventRule.index`` of each rule matched."""
    body: bytes
    """The event's JSON (redacted)."""
    truncated: bool

    def event(self, name: str) -> Event:
        return Event(orjson.loads(self.body), name, self.line, self.item, self.truncated)


@dataclass(slots=True)
class Prepared:
    """A body, parsed, redacted, matched and encoded."""

    rows: Encoded
    matches: list[Match]
    first_time: float | None
    """Event time of the first event that has one (it starts the engine's clock)."""
    last_time: float | None
    """The latest event time in the body."""
    outcome: Outcome
    counts: dict[str, list[tuple[str, str, int]]]
    """Counter increments by component (``ingest``, ``redaction``), for the server's metrics."""


class Preparer:
    """Prepares bodies; one per worker process (or one in the server, with ``workers: 0``)."""

    def __init__(
        self,
        ruleset: RuleSet,
        redaction: RedactionConfig,
        max_event_bytes: int,
        max_body: int,
    ) -> None:
        self.max_body = max_body
        self.matcher = Matcher(ruleset, EngineOptions().skip_stages)
        self.counters = Counters("ingest")
        self.redaction_counters = Counters("redaction")
        self.redactor = Redactor(redaction, self.redaction_counters)
        self.max_event_bytes = max_event_bytes

    def prepare(self, job: Job) -> Prepared:
        outcome = Outcome()
        try:
            data = decompress(job.body, job.encoding, self.max_body)
        except BodyRefused as exc:
            outcome.refused = (exc.status, str(exc))
            return Prepared(job.encoder.encode([]), [], None, None, outcome, {})
        name = job.name
        events = self._parse(data, job.format, name, outcome)
        redactor, matcher, counters = self.redactor, self.matcher, self.counters
        incoming: list[IncomingEvent] = []
        matches: list[Match] = []
        first: float | None = None
        last: float | None = None
        for position, event in enumerate(events):
            raw = event.raw
            body: bytes | None = event.data
            if redactor.redact(raw):
                counters.inc("redacted_events")
                body = None
            when = event.time  # the receive time when the event has none
            if when is None:
                when = job.received
            else:
                if first is None:
                    first = when
                if last is None or when > last:
                    last = when
            key = event_key(raw, _fallback_key(raw, job, position))
            if body is None or event.truncated:
                body = encode_body(raw)
            incoming.append(IncomingEvent(key, when, raw, body, event.truncated))
            if event.truncated:
                outcome.truncated += 1
                counters.inc("truncated")
            if not matcher.skips(raw):
                rules = matcher.match(raw)
                if rules:
                    indexes = tuple(rule.index for rule in rules)
                    matches.append(
                        Match(position, event.line, event.item, indexes, body, event.truncated)
                    )
        rows = job.encoder.encode(incoming)
        counts = {
            "ingest": counters.drain(),
            "redaction": self.redaction_counters.drain(),
        }
        return Prepared(rows, matches, first, last, outcome, counts)

    def _parse(
        self, body: bytes, fmt: Literal["audit", "log"], name: str, outcome: Outcome
    ) -> list[Event]:
        def rejected(error: InputError) -> None:
            if error.reason == "event_too_large":
                return  # kept, truncated, and counted as such
            outcome.rejected += 1
            self.counters.inc("rejected", reason=error.reason)
            if len(outcome.errors) < MAX_REPORTED_ERRORS:
                outcome.errors.append(Rejected(error.reason, str(error.location), error.message))

        if fmt == "audit":
            parser = AuditParser(self.counters, rejected, max_event_bytes=self.max_event_bytes)
            return list(parser.parse_bytes(body, name))
        return log_events(body, name, self.max_event_bytes, rejected)


def _fallback_key(raw: dict[str, object], job: Job, index: int) -> str:
    key = raw.get("_key")
    if isinstance(key, str) and key:
        # The same file and offset exist on every node: the node is part of the identity.
        return f"{job.node}:{job.source}:{key}"
    return f"{job.batch_id}#{index}"


def log_events(
    body: bytes,
    name: str,
    max_event_bytes: int,
    rejected: Callable[[InputError], None],
) -> list[Event]:
    """Component-log events: one JSON object per line (as the agent sends them)."""
    events: list[Event] = []
    for number, line in enumerate(body.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            rejected(InputError(f"invalid JSON: {exc}", Location(name, number), reason="json"))
            continue
        if type(obj) is not dict:
            rejected(
                InputError("expected a JSON object", Location(name, number), reason="not_object")
            )
            continue
        truncated = False
        if len(line) > max_event_bytes:
            message = obj.get("message")
            if isinstance(message, str):
                obj["message"] = message[: max_event_bytes // 2]
            truncated = True
        events.append(Event(obj, name, number, truncated=truncated))
    return events


# --- worker processes ---


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """What a worker process needs to build its ``Preparer`` (picklable)."""

    rules: RuleOrigin
    rule_ids: tuple[str, ...]
    """The event rules' ids in index order: a worker that loads different rules (a rule file
    changed since the server loaded it) refuses to start."""
    redaction: RedactionConfig
    max_event_bytes: int
    max_body: int


_worker: Preparer | None = None


def _start_worker(spec: WorkerSpec) -> None:
    global _worker
    _exit_with_parent()
    ruleset = spec.rules.load()
    ids = tuple(rule.id for rule in ruleset.event_rules)
    if ids != spec.rule_ids:
        raise RuntimeError("the rule files changed while the server started; restart it")
    _worker = Preparer(ruleset, spec.redaction, spec.max_event_bytes, spec.max_body)
    tune_gc()
    # A body's events are tens of thousands of new objects that all live until the body is
    # done and are then freed by reference counting: collections in between would walk them
    # for nothing (measured on parsing alone: about 25% faster). Cycles are collected between
    # bodies.
    gc.disable()


_jobs = 0


def _exit_with_parent() -> None:
    """End this worker when the server process is gone (killed, crashed): nothing else would
    tell it, and it would wait for work forever."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="k3watch-parent-watch", daemon=True).start()


def _run_job(job: Job) -> Prepared:
    global _jobs
    if _worker is None:
        raise RuntimeError("worker not started")
    try:
        return _worker.prepare(job)
    finally:
        _jobs += 1
        if not _jobs % 64:
            gc.collect(1)


def _ready() -> int:
    """Called once per worker at start-up, so that each loads the rules before the first body
    arrives."""
    if _worker is None:
        raise RuntimeError("worker not started")
    time.sleep(0.2)  # hold this worker so that the next call reaches another one
    return os.getpid()


class Preparation:
    """Runs ``Preparer.prepare`` for the pipeline: in worker processes, or in one thread of
    the server's own process."""

    def __init__(
        self,
        ruleset: RuleSet,
        redaction: RedactionConfig,
        *,
        max_event_bytes: int,
        max_body: int,
        workers: int,
    ) -> None:
        self.workers = workers if ruleset.origin is not None else 0
        self._local = (
            None if self.workers else Preparer(ruleset, redaction, max_event_bytes, max_body)
        )
        self._spec = WorkerSpec(
            ruleset.origin or RuleOrigin((), False, (), (), ()),
            tuple(rule.id for rule in ruleset.event_rules),
            redaction,
            max_event_bytes,
            max_body,
        )
        self._lock = threading.Lock()
        self._executor = self._new_executor()

    def _new_executor(self) -> concurrent.futures.Executor:
        if not self.workers:
            return concurrent.futures.ThreadPoolExecutor(1, "k3watch-prepare")
        return concurrent.futures.ProcessPoolExecutor(
            self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(self._spec,),
        )

    def start(self) -> None:
        """Start the worker processes and wait until each has loaded the rules."""
        if not self.workers:
            return
        waiting = [self._executor.submit(_ready) for _ in range(self.workers)]
        try:
            for future in waiting:
                future.result(timeout=300)
        except BrokenProcessPool as exc:
            raise RuntimeError(
                "the ingest workers could not start (their error is logged above); "
                "server.workers: 0 runs ingest in the server process"
            ) from exc

    def submit(self, job: Job) -> concurrent.futures.Future[Prepared]:
        if self._local is not None:
            return self._executor.submit(self._local.prepare, job)
        with self._lock:
            try:
                return self._executor.submit(_run_job, job)
            except BrokenProcessPool:
                # A worker died (killed, out of memory): its bodies failed and their senders
                # retry; start new workers for what comes next.
                log.error("an ingest worker process died; starting new ones")
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = self._new_executor()
                return self._executor.submit(_run_job, job)

    def pids(self) -> list[int]:
        """Process ids of the running workers (none with ``workers: 0``)."""
        if not isinstance(self._executor, concurrent.futures.ProcessPoolExecutor):
            return []
        processes = self._executor._processes or {}  # the pool's own table of its workers
        return sorted(p.pid for p in processes.values() if p.pid is not None and p.is_alive())

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
