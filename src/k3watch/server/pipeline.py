"""The ingest pipeline. Each request body is parsed, redacted, matched against the event rules
and encoded for the store in worker processes (``server.prepare``), several at a time; one
thread then takes the prepared bodies in order of arrival and runs de-duplicate → the engine's
stateful half (first-seen, counts, sequences) → store (events and alerts in one transaction) →
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
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Literal

from k3watch.alert import Alert
from k3watch.alerting.delivery import AlertContext, Dispatcher, SuppressedDelivery
from k3watch.alerting.silence import ActiveSilences, alert_labels
from k3watch.alerting.suppress import Suppressor
from k3watch.rules.engine import Engine
from k3watch.rules.model import RuleSet
from k3watch.server.prepare import Job, Outcome, Preparation, Prepared, body_name
from k3watch.store.base import AlertRecord, Batch, IngestErrors, Store
from k3watch.telemetry import Counters

log = logging.getLogger(__name__)
COUNTED_BATCHES = 10_000


@dataclass(slots=True)
class Request:
    """A body to ingest, and who to tell when it is done."""

    body: bytes
    """As received (``encoding`` says how it is compressed)."""
    cluster: str
    node: str
    source: str
    batch_id: str
    format: Literal["audit", "log"]
    done: Callable[[Outcome], None]
    encoding: str = "identity"
    estimate: int = 1
    received: float = field(default_factory=time.time)
    prepared: Future[Prepared] | None = None
    """Set by ``Pipeline.submit``: the body being parsed, redacted, matched and encoded."""

    @property
    def name(self) -> str:
        return body_name(self.source, self.node, self.batch_id)


def estimate_events(body: bytes, encoding: str = "identity") -> int:
    """A cheap count of the events in a body, to bound the queue before parsing (compressed
    bodies are assumed to hold one event per 64 bytes, more than audit events compress to)."""
    if encoding != "identity":
        return max(1, len(body) // 64)
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
        preparation: Preparation,
        silences: ActiveSilences,
        suppress_window: float = 600.0,
        queue_events: int = 200_000,
        counters: Counters | None = None,
        redaction_counters: Counters | None = None,
    ) -> None:
        self.store = store
        self.ruleset = ruleset
        self.engine = engine
        self.dispatcher = dispatcher
        self.preparation = preparation
        self.silences = silences
        self.counters = counters or Counters("ingest")
        self.redaction_counters = redaction_counters or Counters("redaction")
        self.suppressor = Suppressor(suppress_window, counters=Counters("suppress"))
        self.delivery = SuppressedDelivery(self.suppressor)
        self.queue_events = queue_events
        self.detect_seconds = 0.0
        self.alerts_by_rule: dict[tuple[str, str], int] = {}
        self._counted: OrderedDict[tuple[str, str, str, str], None] = OrderedDict()
        """Batches whose rejected input was counted (the newest ``COUNTED_BATCHES``)."""
        self._queue: queue.Queue[Request | None] = queue.Queue()
        self._queued = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # --- the HTTP side ---

    @property
    def queued_events(self) -> int:
        return self._queued

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def submit(self, request: Request) -> bool:
        """Queue a request and start preparing its body; False (and nothing queued) when the
        queue is full."""
        request.estimate = estimate_events(request.body, request.encoding)
        with self._lock:
            if self._queued and self._queued + request.estimate > self.queue_events:
                self.counters.inc("refused", request.estimate, reason="queue_full")
                return False
            self._queued += request.estimate
            # in order of arrival: the worker thread takes them from the queue in this order
            request.prepared = self.preparation.submit(
                Job(
                    request.body,
                    request.encoding,
                    request.format,
                    request.node,
                    request.source,
                    request.batch_id,
                    request.received,
                    self.store.encoder(),
                )
            )
            self._queue.put(request)
        return True

    def start(self) -> None:
        self.preparation.start()
        self._thread = threading.Thread(target=self._run, name="k3watch-ingest", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish what is queued, then close open alert windows."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout)
        self._thread = None
        self.preparation.close()
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

    def process(self, request: Request) -> Outcome:
        """Run one prepared request through the rest of the pipeline, in order (the worker
        thread): de-duplicate, detect, store, deliver."""
        if request.prepared is None:
            raise ValueError(f"batch {request.batch_id} was not submitted")
        prepared = request.prepared.result()
        self.counters.add(prepared.counts.get("ingest", []))
        self.redaction_counters.add(prepared.counts.get("redaction", []))
        rows, outcome = prepared.rows, prepared.outcome
        if outcome.refused is not None:
            self.counters.inc("refused", reason=f"http_{outcome.refused[0]}")
            self._count_errors(request, {f"http_{outcome.refused[0]}": 1})
            return outcome
        if outcome.rejected:
            reasons: dict[str, int] = {}
            for name, reason, value in prepared.counts.get("ingest", []):
                if name == "rejected" and value:
                    reasons[reason or "other"] = reasons.get(reason or "other", 0) + value
            unnamed = outcome.rejected - sum(reasons.values())
            if unnamed > 0:
                reasons["other"] = reasons.get("other", 0) + unnamed
            self._count_errors(request, reasons)
        new = self.store.unseen(rows) if len(rows) else []
        records: list[AlertRecord] = []
        deliveries: list[tuple[Alert, AlertContext]] = []
        engine = self.engine
        started = time.perf_counter()
        engine.passed(0, prepared.first_time, None)  # the very first event starts the clock
        if prepared.matches:
            keys = rows.keys
            first: dict[str, int] | None = None
            if len(set(keys)) != len(keys):  # a key repeated in the batch is one event
                first = {}
                for position, key in enumerate(keys):
                    first.setdefault(key, position)
            name = request.name
            for match in prepared.matches:
                position = match.position
                if not new[position] or (first is not None and first[keys[position]] != position):
                    continue
                rules = [engine.rule(index) for index in match.rules]
                for alert in engine.matched(match.event(name), rules):
                    self._on_alert(alert, request.cluster, records, deliveries)
        for alert in engine.passed(sum(new), None, prepared.last_time):
            self._on_alert(alert, request.cluster, records, deliveries)
        if engine.clock is not None:
            deliveries.extend(self.delivery.expire(engine.clock))
        self.detect_seconds += time.perf_counter() - started
        batch = Batch(
            request.batch_id,
            request.cluster,
            request.node,
            request.source,
            rows,
            request.received,
        )
        result = self.store.write(batch, records)
        outcome.accepted = result.stored
        outcome.duplicates = result.duplicates
        outcome.alerts = len(records)
        self.counters.inc("stored", result.stored)
        self.counters.inc("duplicates", result.duplicates)
        if self.dispatcher is not None and deliveries:
            self.dispatcher.submit_all(deliveries)
        return outcome

    def _count_errors(self, request: Request, reasons: dict[str, int]) -> None:
        """Keep the rejected input of a request in the store, per hour, origin and reason,
        for the review report's pipeline health (a failure here does not fail the batch). A
        batch sent again (the sender did not get the answer) is counted once, when the first
        try is among the last ``COUNTED_BATCHES`` counted."""
        key = (request.cluster, request.node, request.source, request.batch_id)
        if key in self._counted:
            return
        self._counted[key] = None
        if len(self._counted) > COUNTED_BATCHES:
            self._counted.popitem(last=False)
        errors = [
            IngestErrors(request.received, request.cluster, request.node, request.source, r, n)
            for r, n in sorted(reasons.items())
            if n > 0
        ]
        try:
            self.store.add_ingest_errors(errors)
        except Exception:
            log.exception("counting the rejected input of batch %s failed", request.batch_id)
            self.counters.inc("failed", reason="ingest_errors")

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
        context = AlertContext.of_rule(rule.info if rule is not None else None, cluster)
        deliveries.extend(self.delivery.add(alert, context))


def _group_text(group: dict[str, Any], word: str) -> str | None:
    for name, value in group.items():
        if word in name.lower() and isinstance(value, str):
            return value
    return None
