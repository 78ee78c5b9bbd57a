"""A generic JSON webhook: each alert is POSTed as its JSON contract (``Alert.to_dict()``),
signed so that the receiver can tell it came from k3watch and is not a replay.

Headers of each request:

- ``X-K3watch-Timestamp``: Unix time (seconds) at which the request was signed;
- ``X-K3watch-Signature: sha256=<hex>``: HMAC-SHA256, keyed with the shared secret, of
  ``<timestamp>.<body>`` (the timestamp, a full stop, then the raw body bytes). Signing the
  timestamp with the body is what makes it useful against replays: a captured request
  cannot be given a fresh timestamp without the secret;
- ``Idempotency-Key``: the same for every delivery of the same alert state, so that a
  receiver can ignore the repeats that at-least-once delivery implies;
- ``X-K3watch-Cluster``, when the cluster is known.

A receiver recomputes the HMAC over the bytes it received, compares in constant time, and
refuses timestamps older than a few minutes (``verify_signature`` does exactly that).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Sequence

import orjson

from k3watch.alerting.config import WebhookConfig, seconds
from k3watch.alerting.sinks.destination import DeliveryError, Notification
from k3watch.alerting.sinks.transport import HttpPoster
from k3watch.telemetry import Counters

SIGNATURE_HEADER = "X-K3watch-Signature"
TIMESTAMP_HEADER = "X-K3watch-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
CLUSTER_HEADER = "X-K3watch-Cluster"
DEFAULT_TOLERANCE = 300.0


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-K3watch-Signature`` value for ``body`` sent at ``timestamp``."""
    message = str(timestamp).encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> bool:
    """What a receiver checks: a well-formed, fresh timestamp and a matching signature."""
    if not timestamp or not signature or not timestamp.isdigit():
        return False
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, int(timestamp), body), signature)


class WebhookDestination:
    """POSTs one alert per request, so each body is exactly one alert contract."""

    max_batch = 16  # alerts per outbox batch, each still sent as its own request

    def __init__(
        self,
        config: WebhookConfig,
        *,
        counters: Counters | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.name = config.name
        self.counters = counters or Counters(f"destination_{config.name}")
        self._clock = clock
        headers = {**config.headers, "Content-Type": "application/json"}
        self._http = HttpPoster(
            config.name, timeout=seconds(config.timeout), tls=config.tls, headers=headers
        )

    def deliver(self, notifications: Sequence[Notification]) -> None:
        """POST each alert in turn; the first failure stops the batch and says how many got
        through, so only the rest is retried."""
        for index, notification in enumerate(notifications):
            try:
                self._http.post(self.config.url, *self.request(notification))
            except DeliveryError as exc:
                exc.delivered = index
                raise

    def request(self, notification: Notification) -> tuple[bytes, dict[str, str]]:
        """The body and headers of ``notification``'s request, signed now."""
        body = orjson.dumps(notification.alert)
        timestamp = int(self._clock())
        headers = {
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(self.config.secret, timestamp, body),
            IDEMPOTENCY_HEADER: notification.idempotency_key,
        }
        if notification.cluster:
            headers[CLUSTER_HEADER] = notification.cluster
        return body, headers

    def close(self) -> None:
        self._http.close()
