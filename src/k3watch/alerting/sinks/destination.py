"""What the outbox hands to a remote destination, and how a destination says it failed.

A ``Notification`` is one alert as it was queued: the alert's JSON contract
(``Alert.to_dict()``) plus what the dispatcher knew at that moment (cluster, the rule's
"what to do", the link back). It is stored as JSON in the outbox, so it survives a restart
and is delivered as it was queued, whatever has changed since.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import msgspec

from k3watch.alert import Alert, Severity
from k3watch.errors import K3watchError, Location
from k3watch.telemetry import Counters

NAMESPACE_FIELD = "objectRef.namespace"


class Notification(msgspec.Struct, frozen=True, kw_only=True):
    """One alert queued for delivery, with the context needed to render it for any receiver."""

    alert: dict[str, Any]
    """The alert contract (``Alert.to_dict()``), exactly as JSON receivers get it."""
    first_seen: float | None = None
    """Epoch seconds of the alert's first event (the contract holds it as text)."""
    last_seen: float | None = None
    """Epoch seconds of the alert's latest event."""
    cluster: str = ""
    """Cluster the alert's events came from ("" when unknown)."""
    response: str = ""
    """The rule's "what to do" text, for the responder."""
    description: str = ""
    """The rule's description."""
    link: str = ""
    """URL of the alert in the k3watch UI ("" when no external URL is configured)."""
    update: bool = False
    """True when this alert was delivered before and only its count and last_seen changed."""

    @classmethod
    def of(
        cls,
        alert: Alert,
        *,
        cluster: str = "",
        response: str = "",
        description: str = "",
        link: str = "",
        update: bool = False,
    ) -> Notification:
        """Snapshot ``alert`` (it may keep changing after it is queued)."""
        return cls(
            alert=alert.to_dict(),
            first_seen=alert.first_seen,
            last_seen=alert.last_seen,
            cluster=cluster,
            response=response,
            description=description,
            link=link,
            update=update,
        )

    def to_json(self) -> bytes:
        """The stored form."""
        return msgspec.json.encode(self)

    @classmethod
    def from_json(cls, data: bytes) -> Notification:
        """Read back the stored form."""
        return msgspec.json.decode(data, type=cls)

    @property
    def rule_id(self) -> str:
        return str(self.alert["rule_id"])

    @property
    def title(self) -> str:
        return str(self.alert["title"])

    @property
    def summary(self) -> str:
        return str(self.alert.get("summary", ""))

    @property
    def severity(self) -> Severity:
        return Severity.parse(str(self.alert["severity"]))

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(self.alert.get("tags", ()))

    @property
    def attack(self) -> tuple[str, ...]:
        """ATT&CK technique ids (``T1609``)."""
        return tuple(self.alert.get("attack", ()))

    @property
    def tactics(self) -> tuple[str, ...]:
        """ATT&CK tactics from the tags (``attack.credential-access`` → ``credential-access``).

        Technique, group and software tags (``attack.t1609``, ``attack.g0007``,
        ``attack.s0002``) are letter-and-number ids, not tactics.
        """
        out = []
        for tag in self.tags:
            name = tag.split(".", 1)[1] if tag.startswith("attack.") else ""
            if name and not (name[:1] in "tgs" and name[1:2].isdigit()):
                out.append(name)
        return tuple(out)

    @property
    def group(self) -> dict[str, Any]:
        return dict(self.alert.get("group") or {})

    @property
    def namespace(self) -> str:
        """The Kubernetes namespace the alert is about, when its group has one."""
        value = self.group.get(NAMESPACE_FIELD)
        return str(value) if value not in (None, "") else ""

    @property
    def fingerprint(self) -> str:
        return str(self.alert["fingerprint"])

    @property
    def count(self) -> int:
        return int(self.alert.get("count", 1))

    @property
    def idempotency_key(self) -> str:
        """Same alert, same state → same key: receivers use it to drop repeated deliveries.

        The fingerprint names the rule and group; count and last_seen tell successive
        updates (and successive suppression windows) of that alert apart.
        """
        last = round(self.last_seen * 1000) if self.last_seen is not None else 0
        return f"{self.fingerprint}-{self.count}-{last}"


class DeliveryError(K3watchError):
    """A delivery attempt that failed.

    ``reason`` is a short machine name used as the ``failed{reason}`` counter label
    (``connection``, ``timeout``, ``tls``, ``http_503``…). ``permanent`` means that sending the
    same alerts again cannot succeed (the receiver rejected them as invalid): the outbox drops
    them instead of retrying. ``retry_after`` is the receiver's own hint, in seconds.
    ``delivered`` says how many notifications at the start of the batch did get through
    before the failure (destinations that send one at a time set it), so that only the rest
    is sent again.
    """

    def __init__(
        self,
        destination: str,
        message: str,
        *,
        reason: str,
        permanent: bool = False,
        retry_after: float | None = None,
        hint: str = "",
    ) -> None:
        super().__init__(message, Location(f"destination {destination}"), hint)
        self.destination = destination
        self.reason = reason
        self.permanent = permanent
        self.retry_after = retry_after
        self.delivered = 0


class Destination(Protocol):
    """A remote receiver of alerts, fed by the outbox.

    ``deliver`` either delivers every notification it is given or raises ``DeliveryError``;
    the outbox then keeps the undelivered ones for a retry. A receiver may still see an alert
    twice (a request that timed out may have arrived): delivery is at-least-once. The
    outbox calls ``deliver`` from one thread at a time per destination, never with more than
    ``max_batch`` notifications. ``counters`` holds what the outbox and
    the destination count for it (``sent``, ``failed{reason}``, ``dropped{reason}``).
    """

    name: str
    max_batch: int
    counters: Counters

    def deliver(self, notifications: Sequence[Notification]) -> None: ...

    def close(self) -> None: ...
