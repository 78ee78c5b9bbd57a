"""The ingest pipeline: one thread that takes request bodies in order of arrival and runs
parse → redact → de-duplicate → detect → store (events and alerts in one transaction) →
deliver.

Requests wait in a bounded queue measured in events; when it is full, ``submit`` refuses and the
HTTP layer answers 503 so that the sender retries. Detection only sees events stored for the
first time, so a retried batch never raises an alert twice.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from k3watch.alert import Alert
from k3watch.alerting.delivery import AlertContext, Dispatcher
from k3watch.alerting.silence import ActiveSilences, alert_labels
from k3watch.alerting.suppress import Suppressor
from k3watch.errors import InputError, Location
from k3watch.event import Event, parse_time
from k3watch.parse.audit import AuditParser
from k3watch.redact import Redactor
from k3watch.rules.engine import Engine
from k3watch.rules.model import RuleSet
from k3watch.store.base import AlertRecord, Batch, IncomingEvent, Store, event_key
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


@dataclass(slots=True)
class Request:
    """A body to ingest, and who to tell when it is done."""

    body: bytes
    cluster: str
    node: str
    source: str
    batch_id: str
    format: Literal["audit", "log"]
    done: Callable[[Outcome], None]
    estimate: int = 1
    received: float = field(default_factory=time.time)
    prepared: Prepared | None = None
    """Set by ``Pipeline.prepare`` when the body was parsed before it was queued."""


@dataclass(slots=True)
class Prepared:
    """A request's events, parsed and redacted, with their identities."""

    events: list[Event]
    incoming: list[IncomingEvent]
    outcome: Outcome


def estimate_events(body: bytes) -> int:
    """A cheap count of the events in a body, to bound the queue before parsing."""
    return max(1, body.count(b'"auditID"'), body.count(b"\n"))


class Pipeline:
    """Owns the engine, the suppressor and the writing side of the store."""

    def __init__(
        self,
        store: Store,
        ruleset: RuleSet,
        engine: Engine,
        dispatcher: Dispatcher | None,
        *,
        redactor: Redactor,
        silences: ActiveSilences,
        suppress_window: float = 600.0,
        max_event_bytes: int = 1024 * 1024,
        queue_events: int = 200_000,
        counters: Counters | None = None,
    ) -> None:
        self.store = store
        self.ruleset = ruleset
        self.engine = engine
        self.dispatcher = dispatcher
        self.redactor = redactor
        self.silences = silences
        self.counters = counters or Counters("ingest")
        self.suppressor = Suppressor(suppress_window, counters=Counters("suppress"))
        self.max_event_bytes = max_event_bytes
        self.queue_events = queue_events
        self.detect_seconds = 0.0
        self.alerts_by_rule: dict[tuple[str, str], int] = {}
        self._queue: queue.Queue[Request | None] = queue.Queue()
        self._queued = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._contexts: dict[str, AlertContext] = {}
        self._delivered_counts: dict[str, int] = {}

    # --- the HTTP side ---

    @property
    def queued_events(self) -> int:
        return self._queued

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def has_room(self, events: int) -> bool:
        """Whether ``events`` more would fit in the queue now."""
        return not self._queued or self._queued + events <= self.queue_events

    def submit(self, request: Request) -> bool:
        """Queue a request; False (and nothing queued) when the queue is full."""
        if request.prepared is not None:
            request.estimate = max(1, len(request.prepared.events))
        else:
            request.estimate = estimate_events(request.body)
        with self._lock:
            if self._queued and self._queued + request.estimate > self.queue_events:
                self.counters.inc("refused", request.estimate, reason="queue_full")
                return False
            self._queued += request.estimate
        self._queue.put(request)
        return True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="k3watch-ingest", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish what is queued, then close open alert windows."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout)
        self._thread = None
        self.engine.baseline.flush()

    # --- the worker ---

    def _run(self) -> None:
        while True:
            request = self._queue.get()
            if request is None:
                return
            try:
                outcome = self.process(request)
            except Exception as exc:  # a store failure must not kill ingest for good
                log.exception("ingest of batch %s failed", request.batch_id)
                self.counters.inc("failed", reason=type(exc).__name__)
                outcome = Outcome(failed=f"{type(exc).__name__}: {exc}")
            finally:
                with self._lock:
                    self._queued -= request.estimate
            try:
                request.done(outcome)
            except Exception:
                log.exception("ingest callback failed")

    def prepare(self, request: Request) -> Prepared:
        """Parse and redact a request's body (any thread; the HTTP layer does it before
        queueing, so that parsing overlaps with the store's writes, which release the GIL)."""
        outcome = Outcome()
        events = self._parse(request, outcome)
        incoming: list[IncomingEvent] = []
        for index, event in enumerate(events):
            raw = event.raw
            if self.redactor.redact(raw):
                self.counters.inc("redacted_events")
            fallback = _fallback_key(raw, request, index)
            when = event.time
            if when is None:
                when = parse_time(raw.get("time")) or request.received
            incoming.append(
                IncomingEvent(event_key(raw, fallback), when, raw, None, event.truncated)
            )
            if event.truncated:
                outcome.truncated += 1
                self.counters.inc("truncated")
        return Prepared(events, incoming, outcome)

    def process(self, request: Request) -> Outcome:
        """Run one request through the rest of the pipeline, in order (the worker thread)."""
        prepared = request.prepared or self.prepare(request)
        events, incoming, outcome = prepared.events, prepared.incoming, prepared.outcome
        new = self.store.unseen([e.key for e in incoming]) if incoming else []
        seen: set[str] = set()
        records: list[AlertRecord] = []
        deliveries: list[tuple[Alert, AlertContext]] = []
        started = time.perf_counter()
        for event, item, is_new in zip(events, incoming, new, strict=True):
            if not is_new or item.key in seen:
                continue
            seen.add(item.key)
            for alert in self.engine.process(event):
                self._on_alert(alert, request.cluster, records, deliveries)
        if self.engine.clock is not None:
            for alert in self.suppressor.expire(self.engine.clock):
                self._on_closed(alert, deliveries)
        self.detect_seconds += time.perf_counter() - started
        batch = Batch(
            request.batch_id,
            request.cluster,
            request.node,
            request.source,
            incoming,
            request.received,
        )
        result = self.store.write(batch, records)
        outcome.accepted = result.stored
        outcome.duplicates = result.duplicates
        outcome.alerts = len(records)
        self.counters.inc("stored", result.stored)
        self.counters.inc("duplicates", result.duplicates)
        if self.dispatcher is not None:
            for alert, context in deliveries:
                self.dispatcher.submit(alert, context)
        return outcome

    def _parse(self, request: Request, outcome: Outcome) -> list[Event]:
        def rejected(error: InputError) -> None:
            if error.reason == "event_too_large":
                return  # kept, truncated, and counted as such
            outcome.rejected += 1
            self.counters.inc("rejected", reason=error.reason)
            if len(outcome.errors) < MAX_REPORTED_ERRORS:
                outcome.errors.append(Rejected(error.reason, str(error.location), error.message))

        name = f"{request.source}:{request.node or '-'}:{request.batch_id}"
        if request.format == "audit":
            parser = AuditParser(self.counters, rejected, max_event_bytes=self.max_event_bytes)
            return list(parser.parse_bytes(request.body, name))
        return _log_events(request.body, name, self.max_event_bytes, rejected)

    def _on_alert(
        self,
        alert: Alert,
        cluster: str,
        records: list[AlertRecord],
        deliveries: list[tuple[Alert, AlertContext]],
    ) -> None:
        sample = alert.sample
        namespace = _group_text(alert.group, "namespace") or (sample.namespace if sample else None)
        user = _group_text(alert.group, "user") or (sample.user if sample else None)
        labels = alert_labels(
            alert.rule_id,
            alert.title,
            alert.severity.label,
            cluster,
            namespace,
            user,
            alert.tags,
            alert.group,
        )
        silence = self.silences.match(labels)
        records.append(
            AlertRecord(
                fingerprint=alert.fingerprint,
                rule_id=alert.rule_id,
                title=alert.title,
                severity=alert.severity.label,
                tags=alert.tags,
                cluster=cluster,
                group=alert.group,
                summary=alert.summary,
                first_seen=alert.first_seen or time.time(),
                last_seen=alert.last_seen or alert.first_seen or time.time(),
                count=alert.count,
                event_keys=tuple(alert.event_ids),
                namespace=namespace,
                user=user,
                silenced_by=silence.id if silence is not None else None,
            )
        )
        key = (alert.rule_id, alert.severity.label)
        self.alerts_by_rule[key] = self.alerts_by_rule.get(key, 0) + 1
        if silence is not None:
            self.counters.inc("alerts_silenced")
            return
        rule = self.ruleset.get(alert.rule_id)
        self._contexts[alert.fingerprint] = AlertContext(
            cluster=cluster,
            response=rule.info.response if rule is not None else "",
            description=rule.info.description if rule is not None else "",
        )
        opened, closed = self.suppressor.add(alert)
        if opened is not None:
            self._delivered_counts[opened.fingerprint] = opened.count
            deliveries.append((opened, self._contexts[opened.fingerprint]))
        for done in closed:
            self._on_closed(done, deliveries)

    def _on_closed(self, alert: Alert, deliveries: list[tuple[Alert, AlertContext]]) -> None:
        """A suppression window ended: deliver an update when repeats were merged into it."""
        delivered = self._delivered_counts.pop(alert.fingerprint, alert.count)
        context = self._contexts.pop(alert.fingerprint, AlertContext())
        if alert.count > delivered:
            deliveries.append(
                (
                    alert,
                    AlertContext(context.cluster, context.response, context.description, True),
                )
            )


def _fallback_key(raw: dict[str, Any], request: Request, index: int) -> str:
    key = raw.get("_key")
    if isinstance(key, str) and key:
        # The same file and offset exist on every node: the node is part of the identity.
        return f"{request.node}:{request.source}:{key}"
    return f"{request.batch_id}#{index}"


def _group_text(group: dict[str, Any], word: str) -> str | None:
    for name, value in group.items():
        if word in name.lower() and isinstance(value, str):
            return value
    return None


def _log_events(
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
