"""The dispatcher: routes alerts to destinations through the outbox, and the worker threads that
deliver what the outbox holds.

```python
dispatcher = Dispatcher.from_config(config.alerting, data_dir=Path("/var/lib/k3watch"))
dispatcher.start()                                   # one delivery thread per destination
dispatcher.submit(alert, AlertContext(cluster="prod", response=rule.response))
...
dispatcher.close()                                   # stops the threads; the queue stays on disk
```

``submit`` only writes to the outbox (a few milliseconds, never the network), so detection is
never slowed down by a slow or unreachable destination. What the rule says to do, its
description and the cluster are not part of ``Alert``: the caller passes them in an
``AlertContext``, and they are frozen into the queued notification.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec

from k3watch.alert import Alert
from k3watch.alerting.config import (
    AlertingConfig,
    AlertmanagerConfig,
    AppriseConfig,
    FileConfig,
    SyslogConfig,
    WebhookConfig,
)
from k3watch.alerting.config import (
    Destination as DestinationConfig,
)
from k3watch.alerting.outbox import Entry, Outbox, OutboxItem
from k3watch.alerting.routing import Candidate, Route, rejection
from k3watch.alerting.sinks.destination import DeliveryError, Destination, Notification
from k3watch.alerting.suppress import Suppressor
from k3watch.rules.model import RuleInfo
from k3watch.telemetry import Counters

log = logging.getLogger(__name__)
ROUTE_ALL = Route()


@dataclass(frozen=True, slots=True)
class AlertContext:
    """What the caller knows about an alert that the ``Alert`` itself does not carry."""

    cluster: str = ""
    """Cluster the alert's events came from (the dispatcher's default cluster when empty)."""
    response: str = ""
    """The rule's "what to do" (``RuleInfo.response``), shown to responders."""
    description: str = ""
    """The rule's description (``RuleInfo.description``)."""
    update: bool = False
    """True when this alert was submitted before and only its count/last_seen changed."""

    @classmethod
    def of_rule(cls, info: RuleInfo | None, cluster: str) -> AlertContext:
        """The context of an alert of the rule described by ``info`` (None: a rule gone)."""
        if info is None:
            return cls(cluster=cluster)
        return cls(cluster=cluster, response=info.response, description=info.description)


class SuppressedDelivery:
    """What to deliver of a stream of alerts under a ``Suppressor``: the first alert of each
    window at once, and, when the window ends with repeats merged into it, one update."""

    def __init__(self, suppressor: Suppressor) -> None:
        self.suppressor = suppressor
        # fingerprint → (count when delivered, context) of the open windows delivered
        self._sent: dict[str, tuple[int, AlertContext]] = {}

    def add(self, alert: Alert, context: AlertContext) -> list[tuple[Alert, AlertContext]]:
        opened, closed = self.suppressor.add(alert)
        # The windows it closed first: one of them may have the fingerprint it opens again.
        out = self._updates(closed)
        if opened is not None:
            self._sent[opened.fingerprint] = (opened.count, context)
            out.append((opened, context))
        return out

    def expire(self, now: float | None) -> list[tuple[Alert, AlertContext]]:
        """Updates of the windows that ended at or before ``now`` (event time)."""
        return self._updates(self.suppressor.expire(now))

    def drain(self) -> list[tuple[Alert, AlertContext]]:
        """End of the stream: updates of every open window."""
        return self._updates(self.suppressor.drain())

    def _updates(self, closed: list[Alert]) -> list[tuple[Alert, AlertContext]]:
        out = []
        for alert in closed:
            sent = self._sent.pop(alert.fingerprint, None)
            if sent is not None and alert.count > sent[0]:
                out.append((alert, dataclasses.replace(sent[1], update=True)))
        return out


@dataclass(frozen=True, slots=True)
class Target:
    """A destination and the route that decides which alerts it gets."""

    destination: Destination
    route: Route = ROUTE_ALL


def build_destination(config: DestinationConfig, counters: Counters | None = None) -> Destination:
    """The destination a configuration entry describes."""
    # Imported here so that an unused destination's library (apprise) is never loaded.
    if isinstance(config, AlertmanagerConfig):
        from k3watch.alerting.sinks.alertmanager import AlertmanagerDestination

        return AlertmanagerDestination(config, counters=counters)
    if isinstance(config, WebhookConfig):
        from k3watch.alerting.sinks.webhook import WebhookDestination

        return WebhookDestination(config, counters=counters)
    if isinstance(config, AppriseConfig):
        from k3watch.alerting.sinks.apprise import AppriseDestination

        return AppriseDestination(config, counters=counters)
    if isinstance(config, SyslogConfig):
        from k3watch.alerting.sinks.syslog import SyslogDestination

        return SyslogDestination(config, counters=counters)
    if isinstance(config, FileConfig):
        from k3watch.alerting.sinks.jsonl_file import JsonLinesFileDestination

        return JsonLinesFileDestination(config, counters=counters)
    raise TypeError(f"unknown destination type {type(config).__name__}")


class Dispatcher:
    """Takes alerts (new or updated), applies each destination's route, queues them in the
    outbox and has them delivered in the background. Also a ``Sink`` (``emit``/``close``)."""

    def __init__(
        self,
        outbox: Outbox,
        targets: Sequence[Target],
        *,
        external_url: str = "",
        cluster: str = "",
        idle_poll: float = 5.0,
    ) -> None:
        names = [t.destination.name for t in targets]
        if len(set(names)) != len(names):
            raise ValueError(f"destination names must be unique: {names}")
        self.outbox = outbox
        for target in targets:
            outbox.use_counters(target.destination.name, target.destination.counters)
        self.targets = tuple(targets)
        self.external_url = external_url.rstrip("/")
        self.cluster = cluster
        self.counters = Counters("dispatch")
        self.worker = DeliveryWorker(outbox, [t.destination for t in targets], idle_poll=idle_poll)

    @classmethod
    def from_config(
        cls, config: AlertingConfig, *, data_dir: Path, clock: Callable[[], float] = time.time
    ) -> Dispatcher:
        """Destinations, routes and outbox as configured; the outbox file defaults to
        ``data_dir/outbox.sqlite``."""
        targets = [
            Target(build_destination(d), Route.from_config(d.route)) for d in config.destinations
        ]
        outbox = Outbox.from_config(
            config.outbox, config.outbox.path or data_dir / "outbox.sqlite", clock=clock
        )
        return cls(outbox, targets, external_url=config.external_url, cluster=config.cluster)

    def link(self, alert: Alert) -> str:
        """The alert's page in the k3watch UI ("" without an external URL)."""
        return f"{self.external_url}/alerts/{alert.fingerprint}" if self.external_url else ""

    def submit(self, alert: Alert, context: AlertContext | None = None) -> list[str]:
        """Queue ``alert`` for every destination whose route takes it; return their names."""
        return self.submit_all([(alert, context or AlertContext())])[0]

    def submit_all(self, alerts: Sequence[tuple[Alert, AlertContext]]) -> list[list[str]]:
        """Queue several alerts in one outbox transaction; the destinations of each."""
        entries: list[Entry] = []
        routed: list[list[str]] = []
        woken: set[str] = set()
        for alert, context in alerts:
            cluster = context.cluster or self.cluster
            candidate = Candidate(
                alert.rule_id, alert.severity, alert.tags, cluster, context.update
            )
            self.counters.inc("submitted")
            names: list[str] = []
            for target in self.targets:
                reason = rejection(target.route, candidate)
                if reason is not None:
                    target.destination.counters.inc("skipped", reason=reason)
                else:
                    names.append(target.destination.name)
            routed.append(names)
            if not names:
                self.counters.inc("unrouted")
                continue
            notification = Notification.of(
                alert,
                cluster=cluster,
                response=context.response,
                description=context.description,
                link=self.link(alert),
                update=context.update,
            )
            payload = notification.to_json()
            key = notification.idempotency_key
            entries.extend(Entry(name, key, payload, int(alert.severity)) for name in names)
            woken.update(names)
        if entries:
            self.outbox.enqueue(entries)
            self.worker.wake(sorted(woken))
        return routed

    def emit(self, alert: Alert) -> None:
        """``Sink`` protocol: submit without context."""
        self.submit(alert)

    def start(self) -> None:
        """Start delivering in the background (one thread per destination)."""
        self.worker.start()

    def flush(self, now: float | None = None) -> int:
        """Deliver everything due now, in this thread; return how many alerts were delivered."""
        return self.worker.run_once(now)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the worker, close the destinations and the outbox (queued alerts stay)."""
        self.worker.stop(timeout)
        for target in self.targets:
            target.destination.close()
        self.outbox.close()

    def snapshot(self) -> dict[str, int]:
        """Every counter of the dispatcher, the outbox and the destinations."""
        out: dict[str, int] = self.counters.snapshot() | self.outbox.counters.snapshot()
        for target in self.targets:
            out |= target.destination.counters.snapshot()
        return out

    def __enter__(self) -> Dispatcher:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class DeliveryWorker:
    """Delivers what the outbox holds: one thread per destination, so that a slow or dead
    destination never delays the others; each waits for new alerts or its next retry."""

    def __init__(
        self,
        outbox: Outbox,
        destinations: Sequence[Destination],
        *,
        idle_poll: float = 5.0,
        housekeeping: float = 300.0,
    ) -> None:
        self.outbox = outbox
        self.destinations = {d.name: d for d in destinations}
        self.idle_poll = idle_poll
        self.housekeeping = housekeeping
        self._wakeups = {name: threading.Event() for name in self.destinations}
        # One delivery at a time per destination, even when flush() runs beside the threads:
        # destinations keep connections, and the same due items must not be sent twice.
        self._busy = {name: threading.Lock() for name in self.destinations}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def start(self) -> None:
        """Start the threads (once); queued alerts left by a previous run are delivered first."""
        if self._threads:
            return
        self._stop.clear()
        self.outbox.expire_unserved(self.destinations)
        for index, name in enumerate(self.destinations):
            thread = threading.Thread(
                target=self._loop, args=(name, index == 0), name=f"k3watch-deliver-{name}"
            )
            thread.daemon = True  # never keeps the process alive; the outbox keeps the alerts
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop the threads after their current attempt; True when all of them ended."""
        self._stop.set()
        for event in self._wakeups.values():
            event.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            log.warning("delivery threads still busy after %.0fs: %s", timeout, ", ".join(alive))
        self._threads = [t for t in self._threads if t.is_alive()]
        return not alive

    def wake(self, names: Iterable[str] | None = None) -> None:
        """New alerts were queued for ``names`` (all destinations when None)."""
        for name in self.destinations if names is None else names:
            event = self._wakeups.get(name)
            if event is not None:
                event.set()

    def run_once(self, now: float | None = None) -> int:
        """Deliver every due item of every destination in this thread; return how many were
        delivered. Items that fail are rescheduled, so this always ends."""
        delivered = 0
        for name in self.destinations:
            while True:
                attempted, done = self.deliver_due(name, now)
                delivered += done
                if not attempted:
                    break
        return delivered

    def deliver_due(self, name: str, now: float | None = None) -> tuple[int, int]:
        """One batch of ``name``'s due items: (how many were attempted, how many delivered)."""
        destination = self.destinations[name]
        with self._busy[name]:
            now = self.outbox.clock() if now is None else now
            items = self.outbox.due(name, destination.max_batch, now)
            if not items:
                return 0, 0
            usable, notifications = [], []
            for item in items:
                try:
                    notifications.append(Notification.from_json(item.payload))
                    usable.append(item)
                except msgspec.DecodeError as exc:
                    self.outbox.drop([item], "corrupt", str(exc))
            return len(items), self._attempt(destination, usable, notifications, now)

    def _attempt(
        self,
        destination: Destination,
        items: Sequence[OutboxItem],
        notifications: Sequence[Notification],
        now: float,
        *,
        split: bool = True,
    ) -> int:
        if not items:
            return 0
        try:
            destination.deliver(notifications)
        except Exception as exc:
            error = exc if isinstance(exc, DeliveryError) else _unexpected(destination, exc)
            done = min(max(error.delivered, 0), len(items))
            self.outbox.delivered(items[:done])
            rest, rest_notifications = items[done:], notifications[done:]
            if error.permanent and split and len(rest) > 1:
                # Find the alert the receiver refuses: send the rest one by one.
                return done + sum(
                    self._attempt(destination, [i], [n], now, split=False)
                    for i, n in zip(rest, rest_notifications, strict=True)
                )
            self.outbox.failed(rest, error, now)
            log.warning(
                "destination %s: %d alert(s) not delivered (attempt %d): %s",
                destination.name,
                len(rest),
                rest[0].attempts + 1,
                error,
            )
            return done
        self.outbox.delivered(items)
        return len(items)

    def _loop(self, name: str, keeps_house: bool) -> None:
        wakeup = self._wakeups[name]
        last_housekeeping = time.monotonic()
        while not self._stop.is_set():
            wakeup.clear()
            try:
                attempted, _ = self.deliver_due(name)
                if keeps_house and time.monotonic() - last_housekeeping >= self.housekeeping:
                    last_housekeeping = time.monotonic()
                    self.outbox.expire_unserved(self.destinations)
            except Exception:
                # The outbox itself failed (disk full, database locked): keep the thread
                # alive and try again later rather than stop delivering for good.
                log.exception("destination %s: delivery loop error", name)
                attempted = 0
            if attempted:
                continue
            wakeup.wait(self._idle_wait(name))

    def _idle_wait(self, name: str) -> float:
        try:
            due = self.outbox.next_attempt(name)
        except Exception:
            return self.idle_poll
        if due is None:
            return self.idle_poll
        return min(self.idle_poll, max(0.0, due - float(self.outbox.clock())))


def _unexpected(destination: Destination, exc: Exception) -> DeliveryError:
    """A destination bug or an error it did not classify: retried like any failure."""
    log.error("destination %s raised %r", destination.name, exc, exc_info=exc)
    return DeliveryError(destination.name, f"unexpected error: {exc!r}", reason="error")
