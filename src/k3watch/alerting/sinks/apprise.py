"""Chat, mail and paging services through Apprise: one message per alert, written for people.

Apprise knows how to talk to Slack, Microsoft Teams, Discord, Mattermost, e-mail
(``mailto://``), PagerDuty, Opsgenie and many more; k3watch only formats the message. The URL
carries the service's credentials, so it never appears in logs or error messages.

Values that come from the audit log (user names, object names) are escaped in Markdown
bodies: an attacker who names a pod ``[click me](https://evil)`` must not get a link into the
security channel.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import apprise

from k3watch.alert import Severity
from k3watch.alerting.config import AppriseConfig, seconds
from k3watch.alerting.sinks.destination import DeliveryError, Notification
from k3watch.errors import Location, UsageError
from k3watch.telemetry import Counters

# Characters that start Markdown markup (links, emphasis, code, HTML); '.' and '-' are left
# alone: inside a line they create nothing, and escaping them makes names hard to read.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]()#|<>~])")
_NOTIFY_TYPES = {
    Severity.CRITICAL: apprise.NotifyType.FAILURE,
    Severity.HIGH: apprise.NotifyType.FAILURE,
    Severity.MEDIUM: apprise.NotifyType.WARNING,
}


class AppriseDestination:
    """Sends each alert as one notification to the services of one Apprise URL.

    An Apprise URL can name several recipients; if some of them fail, the alert is sent to
    all of them again on retry (at-least-once).
    """

    max_batch = 8

    def __init__(self, config: AppriseConfig, *, counters: Counters | None = None) -> None:
        self.config = config
        self.name = config.name
        self.counters = counters or Counters(f"destination_{config.name}")
        asset = apprise.AppriseAsset(app_id="k3watch", app_desc="k3watch security alerts")
        self._apprise = apprise.Apprise(asset=asset)
        if not self._apprise.add(config.url):
            # The URL is not shown: it usually contains a token.
            raise UsageError(
                "the Apprise URL is not valid or its service is not available",
                Location(f"destination {config.name}"),
                "check the URL's scheme and fields against Apprise's documentation",
            )

    def deliver(self, notifications: Sequence[Notification]) -> None:
        """Notify each alert in turn; the first failure stops the batch."""
        for index, notification in enumerate(notifications):
            try:
                self._notify(notification)
            except DeliveryError as exc:
                exc.delivered = index
                raise

    def _notify(self, notification: Notification) -> None:
        markdown = self.config.format == "markdown"
        result = self._apprise.notify(
            body=message_body(notification, markdown=markdown),
            title=message_title(notification),
            notify_type=_NOTIFY_TYPES.get(notification.severity, apprise.NotifyType.INFO),
            body_format=apprise.NotifyFormat.MARKDOWN if markdown else apprise.NotifyFormat.TEXT,
            timeout=seconds(self.config.timeout),
        )
        if result:
            return
        problems = [e.message for e in result.logs() if e.level in ("WARNING", "ERROR")]
        raise DeliveryError(
            self.name,
            "; ".join(problems[-3:]) or f"Apprise reported {result.status.name.lower()}",
            reason=f"apprise_{result.status.name.lower()}",
        )

    def close(self) -> None:
        self._apprise.clear()


def message_title(n: Notification) -> str:
    """``[HIGH] Secrets listed across all namespaces (prod-eu-1)``."""
    where = f" ({n.cluster})" if n.cluster else ""
    update = " — update" if n.update else ""
    return f"[{n.severity.label.upper()}] {n.title}{where}{update}"


def message_body(n: Notification, *, markdown: bool) -> str:
    """What happened, where, how often, what to do and where to look."""
    esc = _escape if markdown else str
    bold = (lambda s: f"**{s}**") if markdown else str
    lines = [bold(esc(n.summary or n.title)), ""]
    facts = [
        ("Severity", n.severity.label),
        ("Cluster", n.cluster),
        ("Namespace", n.namespace),
        ("Count", _count(n)),
        ("Group", ", ".join(f"{k}={v}" for k, v in sorted(n.group.items()))),
        ("ATT&CK", ", ".join((*n.attack, *n.tactics))),
        ("Rule", f"{n.title} ({n.rule_id})"),
    ]
    lines += [f"- {name}: {esc(value)}" for name, value in facts if value]
    if n.response:
        # The rule's own text (trusted, often with `kubectl …` in backticks): not escaped.
        lines += ["", bold("What to do"), n.response]
    if n.link:
        lines += ["", f"[Open in k3watch]({n.link})" if markdown else f"Open in k3watch: {n.link}"]
    return "\n".join(lines)


def _count(n: Notification) -> str:
    first, last = n.alert.get("first_seen") or "", n.alert.get("last_seen") or ""
    if n.count == 1 or not first:
        return f"{n.count}" + (f" at {first}" if first else "")
    return f"{n.count} between {first} and {last}"


def _escape(text: str) -> str:
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)
