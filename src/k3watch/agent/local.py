"""Rules evaluated on the node itself (``agent.local_rules``): the events the agent reads go
through the redactor and the engine before they are spooled, and the alerts go to the
configuration's destinations through the same suppression and persistent outbox as the
server's, so an edge node alerts while its server is out of reach.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from k3watch.alert import Alert
from k3watch.alerting.config import AlertingConfig
from k3watch.alerting.delivery import AlertContext, Dispatcher, SuppressedDelivery
from k3watch.alerting.suppress import Suppressor
from k3watch.redact import RedactionConfig, Redactor
from k3watch.rules.engine import Engine
from k3watch.rules.firstseen import BaselineStore
from k3watch.rules.model import RuleSet
from k3watch.sources.base import Item
from k3watch.telemetry import Counters

log = logging.getLogger(__name__)


class LocalRules:
    """The engine, suppression and delivery of one agent."""

    def __init__(
        self,
        ruleset: RuleSet,
        alerting: AlertingConfig,
        redaction: RedactionConfig,
        *,
        directory: Path,
        cluster: str,
        suppress_window: float,
    ) -> None:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.ruleset = ruleset
        self.cluster = cluster
        self.counters = Counters("local_rules")
        self.redactor = Redactor(redaction, Counters("redaction"))
        baseline = BaselineStore(directory / "first-seen.sqlite")
        self.engine = Engine(ruleset, counters=Counters("engine"), baseline=baseline)
        self.delivery = SuppressedDelivery(
            Suppressor(suppress_window, counters=Counters("suppress"))
        )
        self.dispatcher = Dispatcher.from_config(alerting, data_dir=directory)

    def start(self) -> None:
        self.dispatcher.start()

    def observe(self, items: Sequence[Item]) -> None:
        """Redact and evaluate polled items (before they are spooled)."""
        alerts: list[Alert] = []
        for item in items:
            event = item.event
            if self.redactor.redact(event.raw):
                event.data = None  # the line as read holds what was redacted
                self.counters.inc("redacted_events")
            alerts.extend(self.engine.process(event))
        for alert in alerts:
            self._raised(alert)
        if self.engine.clock is not None:
            self._submit(self.delivery.expire(self.engine.clock))

    def close(self) -> None:
        """End of the stream: decide open windows, deliver what is pending, stop delivery."""
        for alert in self.engine.flush():
            self._raised(alert)
        self._submit(self.delivery.drain())
        self.dispatcher.flush()
        self.dispatcher.close()

    def _raised(self, alert: Alert) -> None:
        self.counters.inc("alerts", reason=alert.rule_id)
        rule = self.ruleset.get(alert.rule_id)
        context = AlertContext.of_rule(rule.info if rule is not None else None, self.cluster)
        self._submit(self.delivery.add(alert, context))

    def _submit(self, deliveries: list[tuple[Alert, AlertContext]]) -> None:
        if deliveries:
            self.dispatcher.submit_all(deliveries)
