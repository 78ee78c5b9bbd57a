"""Prometheus Alertmanager, through its v2 API: ``POST {url}/api/v2/alerts`` with a JSON list of
postable alerts.

Labels (what Alertmanager routes, groups, silences and de-duplicates on):

======================  ===================================================================
``alertname``           the rule title as a slug, or the rule id (``alertname`` option)
``rule_id``             the Sigma rule id, stable across title edits
``severity``            informational, low, medium, high, critical
``cluster``             when known
``namespace``           the alert group's ``objectRef.namespace``, when it has one
``attack_technique``    ATT&CK technique ids, comma-separated (``T1552.007,T1609``)
``attack_tactic``       ATT&CK tactics from the tags (``credential-access``)
``k3watch_fingerprint`` the alert's fingerprint: one Alertmanager alert per k3watch alert
extra labels            from the configuration
======================  ===================================================================

Annotations: ``summary``, ``title``, ``description`` and ``runbook`` (the rule's "what to
do") when known, ``count``, ``first_seen``, ``last_seen``, ``group`` (JSON) and
``idempotency_key``. ``generatorURL`` links back to the alert in k3watch, ``startsAt`` is the
first event's time. Alertmanager itself de-duplicates by label set, so a repeated delivery
only refreshes the alert it already has.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from k3watch.alerting.config import AlertmanagerConfig, seconds
from k3watch.alerting.sinks.destination import Notification
from k3watch.alerting.sinks.transport import HttpPoster
from k3watch.telemetry import Counters

MAX_BATCH = 64
_NOT_WORD = re.compile(r"[^a-z0-9]+")


class AlertmanagerDestination:
    """Posts batches of alerts to one Alertmanager (or to one member of an HA cluster)."""

    max_batch = MAX_BATCH

    def __init__(
        self,
        config: AlertmanagerConfig,
        *,
        counters: Counters | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.name = config.name
        self.counters = counters or Counters(f"destination_{config.name}")
        self.url = config.url.rstrip("/") + "/api/v2/alerts"
        self._clock = clock
        auth: httpx.Auth | None = None
        headers = {"Content-Type": "application/json"}
        if config.username and config.password:
            auth = httpx.BasicAuth(config.username, config.password)
        elif config.bearer_token:
            headers["Authorization"] = f"Bearer {config.bearer_token}"
        self._http = HttpPoster(
            config.name,
            timeout=seconds(config.timeout),
            tls=config.tls,
            auth=auth,
            headers=headers,
        )

    def deliver(self, notifications: Sequence[Notification]) -> None:
        """Post every notification in one request; raise DeliveryError when it is refused."""
        body = orjson.dumps([self.postable(n) for n in notifications])
        self._http.post(self.url, body, {})

    def postable(self, notification: Notification) -> dict[str, Any]:
        """One alert in Alertmanager's ``postableAlert`` shape."""
        n = notification
        labels: dict[str, str] = dict(self.config.extra_labels)
        labels.update(
            alertname=slug(n.title) if self.config.alertname == "title" else n.rule_id,
            rule_id=n.rule_id,
            severity=n.severity.label,
            k3watch_fingerprint=n.fingerprint,
        )
        optional = {
            "cluster": n.cluster,
            "namespace": n.namespace,
            "attack_technique": ",".join(n.attack),
            "attack_tactic": ",".join(n.tactics),
        }
        labels.update({k: v for k, v in optional.items() if v})
        annotations = {
            "summary": n.summary or n.title,
            "title": n.title,
            "description": n.description,
            "runbook": n.response,
            "count": str(n.count),
            "first_seen": str(n.alert.get("first_seen", "")),
            "last_seen": str(n.alert.get("last_seen", "")),
            "group": orjson.dumps(n.group, option=orjson.OPT_SORT_KEYS).decode(),
            "idempotency_key": n.idempotency_key,
        }
        alert: dict[str, Any] = {
            "labels": labels,
            "annotations": {k: v for k, v in annotations.items() if v},
        }
        if n.link:
            alert["generatorURL"] = n.link
        if n.first_seen is not None:
            alert["startsAt"] = rfc3339(n.first_seen)
        if self.config.ends_after is not None:
            # From delivery time, not last_seen: a replayed (old) alert must still show up.
            alert["endsAt"] = rfc3339(self._clock() + seconds(self.config.ends_after))
        return alert

    def close(self) -> None:
        self._http.close()


def slug(title: str) -> str:
    """A title as a label-friendly identifier: ``Secrets listed (all)`` → ``secrets_listed_all``."""
    return _NOT_WORD.sub("_", title.lower()).strip("_") or "k3watch_alert"


def rfc3339(epoch: float) -> str:
    """Epoch seconds as the RFC 3339 UTC time Alertmanager expects (milliseconds)."""
    moment = datetime.fromtimestamp(epoch, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
